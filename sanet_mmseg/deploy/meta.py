# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""``deploy.json``, the meta file of an artefact: its schema and the one
reader that checks it (types and ranges with ``jsonschema``, then what a
schema cannot say: classes, palette and class count agree, the precision is
one the backend runs, the files are the backend's and lie inside the
artefact folder)."""
import json
import os.path as osp
from typing import Callable, Optional, Sequence

from .registry import backend_files as registered_files

META_FILE = 'deploy.json'
#: A file or folder name inside the artefact: no separator, no '..'.
PLAIN_NAME = r'^[A-Za-z0-9_][A-Za-z0-9_.-]*$'
_NAME = {'type': 'string', 'pattern': PLAIN_NAME}
_BYTE = {'type': 'integer', 'minimum': 0, 'maximum': 255}
_TRIPLE = {'type': 'array', 'minItems': 3, 'maxItems': 3}

#: The JSON schema of ``deploy.json`` (labels are painted through a
#: 256-entry palette, hence at most 256 classes).
SCHEMA = {
    'type': 'object',
    'required': ['backend', 'precision', 'files', 'input', 'preprocess',
                 'align_corners', 'num_classes', 'classes', 'palette'],
    'properties': {
        'backend': {'type': 'string'},
        'precision': {'type': 'string'},
        'model_dir': _NAME,
        'files': {'type': 'array', 'items': _NAME, 'minItems': 1,
                  'uniqueItems': True},
        'input': {
            'type': 'object',
            'required': ['name', 'shape'],
            'properties': {
                'name': {'type': 'string', 'minLength': 1},
                'shape': {
                    'oneOf': [{'type': 'null'}, {
                        'type': 'array',
                        'prefixItems': [{'const': 1}, {'const': 3}],
                        'items': {'type': 'integer', 'minimum': 1},
                        'minItems': 4, 'maxItems': 4}]},
                'layout': {'const': 'NCHW'},
                'dtype': {'const': 'float32'}}},
        'output': {'type': 'object',
                   'properties': {'name': {'type': 'string'}}},
        'preprocess': {
            'type': 'object',
            'required': ['mean', 'std', 'bgr_to_rgb'],
            'properties': {
                'mean': dict(_TRIPLE, items={'type': 'number'}),
                'std': dict(_TRIPLE, items={'type': 'number',
                                            'exclusiveMinimum': 0}),
                'bgr_to_rgb': {'type': 'boolean'}}},
        'align_corners': {'type': 'boolean'},
        'num_classes': {'type': 'integer', 'minimum': 1, 'maximum': 256},
        'classes': {'type': 'array', 'minItems': 1, 'maxItems': 256,
                    'items': {'type': 'string'}},
        'palette': {'type': 'array', 'items': dict(_TRIPLE, items=_BYTE)},
        'calibration': {'type': ['object', 'null']},
        'accuracy': {'type': ['object', 'null']},
        'source': {'type': 'object'},
        'versions': {'type': 'object'},
    },
}


class ArtefactError(ValueError):
    """A ``deploy.json`` (or what it names) that is not a valid artefact;
    the message names the file and the key."""


def _fail(meta_path: str, key: str, problem: str):
    raise ArtefactError(f'{meta_path}: key {key!r}: {problem}')


def _inside(path: str, folder: str) -> bool:
    """Whether ``path``, symlinks resolved, lies inside ``folder``."""
    real, top = osp.realpath(path), osp.realpath(folder)
    return osp.commonpath([real, top]) == top and real != top


def validate_meta(meta: dict, meta_path: str,
                  backend_files: Callable[[str, str], Sequence[str]]
                  ) -> None:
    """Check an artefact's meta data; raise :class:`ArtefactError` naming
    ``meta_path`` and the key at fault.

    Args:
        meta (dict): The parsed ``deploy.json``.
        meta_path (str): Its path (for the messages and the folder).
        backend_files (Callable): ``(backend, precision)`` -> the model
            files that backend writes; raises ValueError naming the choices
            for an unknown backend or a precision it does not run.
    """
    try:  # only here: the core install (the CUDA checks) lacks it
        import jsonschema
    except ImportError as e:
        raise ImportError(
            f'{e}: reading an artefact needs the deploy extra (pip install '
            "-e '.[deploy]')") from e
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(SCHEMA).iter_errors(meta))
    if error is not None:
        key = '.'.join(map(str, error.absolute_path)) or '(top level)'
        _fail(meta_path, key, error.message)
    try:
        files = list(backend_files(meta['backend'], meta['precision']))
    except ValueError as e:
        _fail(meta_path, 'backend/precision', str(e))
    if sorted(meta['files']) != sorted(files):
        _fail(meta_path, 'files', f'{meta["backend"]} artefacts hold '
              f'{files}, not {meta["files"]}')
    num = meta['num_classes']
    for key in ('classes', 'palette'):
        if len(meta[key]) != num:
            _fail(meta_path, key, f'{len(meta[key])} entries for '
                  f'num_classes {num}')
    folder = osp.dirname(meta_path)
    model_dir = osp.join(folder, meta.get('model_dir', ''))
    for name in meta['files']:
        path = osp.join(model_dir, name)
        if not osp.lexists(path):
            _fail(meta_path, 'files', f'{path} is missing (an interrupted '
                  'copy?)')
        if not _inside(path, folder):
            _fail(meta_path, 'files', f'{path} points outside the artefact '
                  f'folder, to {osp.realpath(path)}')
        if not osp.isfile(path):
            _fail(meta_path, 'files', f'{path} is not a file')


def meta_path_of(path: str) -> str:
    """The ``deploy.json`` of an artefact given as its folder or the
    file."""
    if osp.basename(path) == META_FILE and not osp.isdir(path):
        return path
    return osp.join(path, META_FILE)


def read_meta(path: str,
              backend_files: Optional[Callable] = None) -> dict:
    """The checked meta data of an artefact (:func:`validate_meta`), with
    ``folder`` (the artefact's) and ``paths`` (its model files) added.

    Args:
        path (str): The artefact's folder or its ``deploy.json``.
        backend_files (Callable, optional): See :func:`validate_meta`;
            None: the registered backends'. Default: None.
    """
    meta_path = meta_path_of(path)
    folder = osp.dirname(meta_path)
    if not osp.isfile(meta_path):
        raise FileNotFoundError(
            f'no {META_FILE} in {folder or "."}: not an artefact written by '
            'tools/deployment/export.py')
    if osp.islink(meta_path) and not _inside(meta_path, folder):
        raise ArtefactError(f'{meta_path} is a link out of the artefact')
    try:
        with open(meta_path) as f:
            meta = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise ArtefactError(f'{meta_path} is not JSON: {e}') from None
    validate_meta(meta, meta_path, backend_files or registered_files)
    meta['folder'] = folder
    model_dir = osp.join(folder, meta.get('model_dir', ''))
    meta['paths'] = [osp.join(model_dir, name) for name in meta['files']]
    return meta

# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Replacing the artefact in a folder so that a crash at any moment leaves
the complete old or the complete new one.

Layout: the folder holds ``deploy.json`` and one version folder it names
(``model_dir``, e.g. ``20261203-104512-3fa1c2``) with the model files. An
export writes the new model files into a temporary ``.export-*`` folder,
renames it to a new version folder, then replaces ``deploy.json`` with
``os.replace`` (atomic): until that rename the old ``deploy.json`` names the
old, complete version; after it the new one names the new. Only then are
the old version and anything else an export writes removed. Entries an
export leaves when killed (a temporary folder, an unnamed version, a
temporary meta file) are never read and are removed by the next export
into the folder. Exports into one folder take turns (``flock`` on it).
"""
import json
import os
import os.path as osp
import re
import secrets
import shutil
import signal
import time
from contextlib import contextmanager
from typing import Iterator, Optional, Sequence

from ..fileio import atomic_path
from .meta import META_FILE

#: Set to a crash point's name to SIGKILL the export there (crash tests).
CRASH_ENV = 'SANET_EXPORT_CRASH_AT'
CRASH_POINTS = ('onnx', 'model', 'version', 'swap', 'swapped', 'clean')
TEMP_PREFIX = '.export-'
VERSION = re.compile(r'^\d{8}-\d{6}-[0-9a-f]{6}$')
META_TEMP = re.compile(r'^\.' + re.escape(META_FILE) + r'\.\d+\.tmp$')


def crash_point(name: str) -> None:
    """SIGKILL this process if ``$SANET_EXPORT_CRASH_AT`` is ``name``."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _ours(name: str, model_files: Sequence[str]) -> bool:
    """Whether an export writes entries called ``name``."""
    return (name == META_FILE or name.startswith(TEMP_PREFIX)
            or bool(VERSION.match(name) or META_TEMP.match(name))
            or name in model_files)


def _current(folder: str) -> Optional[str]:
    """The version folder the folder's ``deploy.json`` names ('' for the
    files beside it; None without a readable one)."""
    try:
        with open(osp.join(folder, META_FILE)) as f:
            model_dir = json.load(f).get('model_dir', '')
    except (OSError, ValueError, AttributeError):
        return None
    return model_dir if isinstance(model_dir, str) else None


def _remove(path: str) -> None:
    if osp.isdir(path) and not osp.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


def _clean(folder: str, keep: Optional[str], model_files: Sequence[str],
           point: Optional[str] = None) -> None:
    """Remove what an export wrote besides ``deploy.json`` and the version
    ``keep`` ('': the files beside it, an old layout; None: nothing is
    current); the crash point ``point`` follows the first removal."""
    removed = False
    for name in sorted(os.listdir(folder)):
        if name == META_FILE or name == keep or (
                keep == '' and name in model_files):
            continue
        _remove(osp.join(folder, name))
        if point and not removed:
            removed = True
            crash_point(point)


class Replacement:
    """An export in progress: write the model files into ``model_dir``,
    then :meth:`commit` the meta data."""

    def __init__(self, folder: str, model_files: Sequence[str]):
        self.folder = folder
        self.model_files = model_files
        self.version = '%s-%s' % (time.strftime('%Y%m%d-%H%M%S'),
                                  secrets.token_hex(3))
        self.model_dir = osp.join(folder, TEMP_PREFIX + self.version)

    def commit(self, meta: dict, files: Sequence[str]) -> None:
        """Put the new artefact in place of the old: ``files`` (exactly
        what ``model_dir`` must hold) as a version folder, then ``meta``
        (with ``model_dir`` set) as ``deploy.json``; then remove the old."""
        found = sorted(os.listdir(self.model_dir))
        if found != sorted(files):
            raise RuntimeError(f'the export wrote {found}, not {files}')
        crash_point('model')
        version_dir = osp.join(self.folder, self.version)
        os.replace(self.model_dir, version_dir)
        crash_point('version')
        meta = dict(meta, model_dir=self.version)
        with atomic_path(osp.join(self.folder, META_FILE), fsync=True) as tmp:
            with open(tmp, 'w') as f:
                json.dump(meta, f, indent=2)
            crash_point('swap')
        crash_point('swapped')
        _clean(self.folder, self.version, self.model_files, 'clean')


@contextmanager
def replacing(folder: str,
              model_files: Sequence[str]) -> Iterator[Replacement]:
    """Export into ``folder`` (made if missing) atomically: yields a
    :class:`Replacement`; an error before its ``commit`` leaves the folder
    as it was.

    Args:
        folder (str): The artefact folder.
        model_files (Sequence[str]): The model files of every backend (an
            artefact of the old layout holds them beside ``deploy.json``).

    Raises:
        FileExistsError: if ``folder`` holds an entry no export writes
            (it is not an artefact folder; nothing is removed).
    """
    os.makedirs(folder, exist_ok=True)
    foreign = [n for n in os.listdir(folder) if not _ours(n, model_files)]
    if foreign:
        raise FileExistsError(
            f'{folder} holds {foreign[:3]}, which is not part of an '
            'artefact: export into an empty folder or an artefact folder')
    import fcntl
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # exports into a folder take turns
        _clean(folder, _current(folder), model_files)  # killed exports
        replacement = Replacement(folder, model_files)
        os.mkdir(replacement.model_dir)
        try:
            yield replacement
        finally:
            if osp.exists(replacement.model_dir):
                shutil.rmtree(replacement.model_dir)
    finally:
        os.close(fd)

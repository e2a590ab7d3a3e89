# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Deployable artefacts: a model of one backend with ``deploy.json``, the
meta file that holds all it takes to run it; written atomically
(:mod:`.replace`), opened through one checked route."""
import copy
import importlib.metadata
import os
import os.path as osp
import tempfile
import time
from typing import Optional, Sequence

import torch.nn as nn
from torch import Tensor

from .compat import preprocessor_normalisation
from .meta import ArtefactError, meta_path_of, read_meta
from .onnx_export import export_onnx
from .predictors import Predictor
from .prepare import prepare_for_inference
from .registry import BACKENDS, backend_files, check_backend, get_backend
from .replace import crash_point, replacing


def library_versions(names: Sequence[str]) -> dict:
    """The installed version of each distribution (None: not installed)."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _all_model_files() -> tuple:
    return tuple(f for cls in BACKENDS.module_dict.values() for f in cls.files)


def export_artefact(model: nn.Module,
                    out_dir: str,
                    backend: str,
                    precision: str,
                    shape: Sequence[int],
                    dataset_meta: dict,
                    calib: Optional[Sequence[Tensor]] = None,
                    dynamic: bool = False,
                    source: Optional[dict] = None,
                    **int8_options) -> str:
    """Export a segmentor as an artefact that runs without PyTorch models
    or configs: the backend's model files and ``deploy.json``.

    The model is prepared (:func:`prepare_for_inference`, on a copy),
    exported to ONNX and handed to the backend (its ``export``: e.g.
    quantized to int8 with the calibration inputs). The model takes
    ``input`` (1, 3, H, W) float32 normalised images and returns
    ``output``, the logits (1, C, H/8, W/8). An artefact already in
    ``out_dir`` is replaced atomically (:func:`replacing`): a failed or
    killed export leaves it as it was.

    ``deploy.json`` (checked by :func:`read_meta` against its
    ``SCHEMA``) holds: backend, precision, model_dir and files, input
    (name, shape, layout NCHW, float32), output, preprocess (mean, std,
    bgr_to_rgb), align_corners of the logits' upsampling, num_classes,
    classes and palette, calibration (source, images, options), accuracy
    (int8 with ``max_drop``), source (config, checkpoint), library
    versions and the time.

    Args:
        model (nn.Module): The SANet segmentor (float32, not prepared).
        out_dir (str): The folder to write to (made if missing).
        backend (str): A registered backend with artefact files.
        precision (str): One that ``backend`` runs.
        shape (Sequence[int]): Input (H, W).
        dataset_meta (dict): ``classes`` and ``palette``.
        calib (Sequence[Tensor], optional): Calibration inputs
            (:class:`PipelineInputs`), needed for int8. Default: None.
        dynamic (bool): Let batch, height and width vary (``shape`` is then
            the traced example's). Default: False.
        source (dict, optional): Recorded as is, e.g. config and
            checkpoint. Default: None.
        **int8_options: The backend's ``int8_options``.

    Returns:
        str: ``out_dir``.
    """
    found = check_backend(backend, precision, int8_options)
    files = backend_files(backend, precision)
    if precision == 'int8' and not calib:
        raise ValueError('int8 needs calibration images (calib)')
    for key in ('classes', 'palette'):
        if key not in dataset_meta:
            raise KeyError(f'dataset_meta needs {key!r}')
    preprocess = preprocessor_normalisation(model.data_preprocessor)
    prepared = prepare_for_inference(copy.deepcopy(model).cpu())
    with replacing(out_dir, _all_model_files()) as replacement:
        onnx_path = osp.join(replacement.model_dir, 'float.onnx')
        export_onnx(prepared, onnx_path, shape, dynamic=dynamic)
        crash_point('onnx')
        extra = found.export(onnx_path, replacement.model_dir, precision,
                             calib, **int8_options)
        if osp.exists(onnx_path):
            os.remove(onnx_path)
        options = {k: v for k, v in int8_options.items() if k != 'validation'}
        meta = dict(
            backend=backend,
            precision=precision,
            files=list(files),
            input=dict(
                name='input',
                shape=None if dynamic else [1, 3, *shape],
                layout='NCHW',
                dtype='float32'),
            output=dict(
                name='output',
                what='logits (N, num_classes, H/8, W/8), float32; upsample '
                'bilinearly to the image (align_corners) and take the '
                'argmax'),
            preprocess=preprocess,
            align_corners=bool(model.decode_head.align_corners),
            num_classes=int(model.decode_head.num_classes),
            classes=list(dataset_meta['classes']),
            palette=[list(map(int, c)) for c in dataset_meta['palette']],
            calibration=None if precision != 'int8' else dict(
                source=getattr(calib, 'source', 'given inputs'),
                images=len(calib),
                options=options),
            source=source or {},
            versions=library_versions(('sanet-mmseg', 'mmsegmentation',
                                       'mmengine', 'mmcv', 'torch') +
                                      found.libraries),
            created=time.strftime('%Y-%m-%d %H:%M:%S %z'),
            **extra)
        replacement.commit(meta, files)
    return out_dir


def load_predictor(path: str, threads: int = 0) -> Predictor:
    """Open an artefact: the one checked route for tools and users.

    ``deploy.json`` is checked (:func:`read_meta`), the backend opens the
    model, and its output channels must be ``num_classes``.

    Args:
        path (str): The artefact's folder or its ``deploy.json``.
        threads (int): Inference threads; 0: as many as torch uses.
            Default: 0.

    Returns:
        Predictor: With the checked meta data in ``meta``.

    Raises:
        FileNotFoundError: No ``deploy.json``.
        ArtefactError: An invalid one, naming the file and key.
    """
    meta = read_meta(path)
    predictor = get_backend(meta['backend']).load(meta['paths'][0],
                                                  meta['precision'], threads)
    channels = predictor.channels
    if channels is not None and channels != meta['num_classes']:
        raise ArtefactError(
            f'{meta_path_of(path)}: key \'num_classes\': the model outputs '
            f'{channels} channels, not {meta["num_classes"]}')
    predictor.meta = meta
    return predictor


def numbered_classes(num: int) -> dict:
    """``classes`` ('0', '1', ...) and a palette for a model without
    dataset meta data."""
    return dict(
        classes=[str(i) for i in range(num)],
        palette=[[(i * 67) % 256, (i * 139) % 256, (i * 211) % 256]
                 for i in range(num)])


def build_predictor(model: nn.Module,
                    backend: str,
                    precision: str,
                    shape: Optional[Sequence[int]] = None,
                    calib: Optional[Sequence[Tensor]] = None,
                    threads: int = 0,
                    **int8_options) -> Predictor:
    """A predictor for a segmentor on any backend, built in memory: a
    backend without artefact files (torch) prepares a copy, the others
    export an artefact (:func:`export_artefact`) into a temporary folder
    removed with the predictor.

    Args:
        model (nn.Module): The SANet segmentor (not prepared).
        backend (str): A registered backend.
        precision (str): One that ``backend`` runs.
        shape (Sequence[int], optional): Input (H, W) for the exported
            backends; None: any size (dynamic shapes). Default: None.
        calib (Sequence[Tensor], optional): Calibration inputs for int8.
            Default: None.
        threads (int): Inference threads of the exported backends; 0: as
            many as torch uses. Default: 0.
        **int8_options: The backend's ``int8_options``.
    """
    found = check_backend(backend, precision, int8_options)
    if not found.files:
        return found.from_model(model, precision, threads)
    dataset_meta = getattr(model, 'dataset_meta', None) or \
        numbered_classes(model.decode_head.num_classes)
    folder = tempfile.TemporaryDirectory(prefix='sanet-deploy-')
    export_artefact(
        model,
        folder.name,
        backend,
        precision,
        shape or (64, 64),
        dataset_meta,
        calib,
        dynamic=shape is None,
        **int8_options)
    predictor = load_predictor(folder.name, threads)
    predictor.folder = folder  # removed when the predictor is
    return predictor

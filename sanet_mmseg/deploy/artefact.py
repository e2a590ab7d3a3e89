# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Deployable artefacts: an ONNX Runtime or OpenVINO model with a meta file
that holds all it takes to run it; and predictors built from a segmentor
in memory."""
import copy
import importlib.metadata
import json
import os
import os.path as osp
import shutil
import tempfile
import time
from typing import Optional, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from ..fileio import atomic_path
from .compat import preprocessor_normalisation
from .meta import META_FILE, ArtefactError, meta_path_of, read_meta
from .onnx_export import export_onnx
from .predictors import (ONNXRuntimePredictor, OpenVINOPredictor, Predictor,
                         TorchPredictor, check_backend)
from .prepare import prepare_for_inference
from .quantization import quantize_onnx, quantize_openvino

#: The model files of each backend, in the order they are put in place.
MODEL_FILES = {
    'onnxruntime': ('model.onnx', ),
    'openvino': ('model.bin', 'model.xml'),
}
TORCH_DTYPES = {
    'fp32': torch.float32,
    'bf16': torch.bfloat16,
    'fp16': torch.float16
}


def library_versions(names: Sequence[str]) -> dict:
    """The installed version of each distribution (None: not installed)."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def export_artefact(model: nn.Module,
                    out_dir: str,
                    backend: str,
                    precision: str,
                    shape: Sequence[int],
                    dataset_meta: dict,
                    calib: Optional[Sequence[Tensor]] = None,
                    dynamic: bool = False,
                    source: Optional[dict] = None,
                    **quantize_options) -> str:
    """Export a segmentor as an artefact that runs without PyTorch models
    or configs: ``model.onnx`` (ONNX Runtime) or ``model.xml``/``.bin``
    (OpenVINO IR) and ``deploy.json``.

    The model is prepared (:func:`prepare_for_inference`, on a copy),
    exported to ONNX, and for OpenVINO read by OpenVINO's ONNX frontend and
    saved as IR with float32 weights; int8 is quantized with calibration
    images (NNCF for OpenVINO, ONNX Runtime's static quantization for ONNX);
    bf16 is an OpenVINO runtime precision (the IR stays float32). The model
    takes ``input`` (1, 3, H, W) float32 normalised images and returns
    ``output``, the logits (1, C, H/8, W/8) (the meta file says how to
    normalise and how the logits become labels). The files are written
    under temporary names and put in place model first, ``deploy.json``
    last (an old one is removed first), so a folder with a ``deploy.json``
    always holds a complete artefact.

    ``deploy.json`` holds: backend, precision, model files, input
    (name, shape, layout NCHW, float32), output (name, logits at 1/8),
    preprocessing (mean, std, bgr_to_rgb), align_corners of the logits'
    upsampling, classes and palette, calibration (source, images), the
    source (config, checkpoint), library versions and the time.

    Args:
        model (nn.Module): The SANet segmentor (float32, not prepared).
        out_dir (str): The folder to write to (made if missing).
        backend (str): 'onnxruntime' or 'openvino'.
        precision (str): 'fp32', 'int8', or 'bf16' (OpenVINO).
        shape (Sequence[int]): Input (H, W).
        dataset_meta (dict): ``classes`` and ``palette``.
        calib (Sequence[Tensor], optional): Calibration inputs
            (:class:`PipelineInputs`), needed for int8. Default: None.
        dynamic (bool): Let batch, height and width vary (``shape`` is then
            the traced example's). Default: False.
        source (dict, optional): Recorded as is, e.g. config and
            checkpoint. Default: None.
        **quantize_options: Passed to :func:`quantize_openvino`.

    Returns:
        str: ``out_dir``.
    """
    backend_files(backend, precision)
    if precision == 'int8' and not calib:
        raise ValueError('int8 needs calibration images (calib)')
    if quantize_options and (backend, precision) != ('openvino', 'int8'):
        raise ValueError(f'{sorted(quantize_options)} apply to openvino '
                         'int8 only')
    for key in ('classes', 'palette'):
        if key not in dataset_meta:
            raise KeyError(f'dataset_meta needs {key!r}')
    preprocess = preprocessor_normalisation(model.data_preprocessor)
    prepared = prepare_for_inference(copy.deepcopy(model).cpu())
    os.makedirs(out_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.export-', dir=out_dir)
    try:
        onnx_path = osp.join(tmp, 'float.onnx')
        export_onnx(prepared, onnx_path, shape, dynamic=dynamic)
        if backend == 'onnxruntime':
            if precision == 'int8':
                quantize_onnx(onnx_path, osp.join(tmp, 'model.onnx'), calib)
            else:
                os.replace(onnx_path, osp.join(tmp, 'model.onnx'))
        else:
            import openvino as ov
            ov_model = ov.Core().read_model(onnx_path)
            if precision == 'int8':
                ov_model = quantize_openvino(ov_model, calib,
                                             **quantize_options)
            ov.save_model(
                ov_model, osp.join(tmp, 'model.xml'), compress_to_fp16=False)
        meta_path = osp.join(out_dir, META_FILE)
        if osp.exists(meta_path):
            os.remove(meta_path)
        for name in MODEL_FILES[backend]:
            os.replace(osp.join(tmp, name), osp.join(out_dir, name))
    finally:
        shutil.rmtree(tmp)
    libraries = ['sanet-mmseg', 'mmsegmentation', 'mmengine', 'mmcv', 'torch',
                 'onnx', backend]
    if (backend, precision) == ('openvino', 'int8'):
        libraries.append('nncf')
    meta = dict(
        backend=backend,
        precision=precision,
        files=list(MODEL_FILES[backend]),
        input=dict(
            name='input',
            shape=None if dynamic else [1, 3, *shape],
            layout='NCHW',
            dtype='float32'),
        output=dict(
            name='output',
            what='logits (N, num_classes, H/8, W/8), float32; upsample '
            'bilinearly to the image (align_corners) and take the argmax'),
        preprocess=preprocess,
        align_corners=bool(model.decode_head.align_corners),
        num_classes=int(model.decode_head.num_classes),
        classes=list(dataset_meta['classes']),
        palette=[list(map(int, c)) for c in dataset_meta['palette']],
        calibration=None if precision != 'int8' else dict(
            source=getattr(calib, 'source', 'given inputs'),
            images=len(calib),
            options=quantize_options),
        source=source or {},
        versions=library_versions(libraries),
        created=time.strftime('%Y-%m-%d %H:%M:%S %z'))
    with atomic_path(meta_path) as tmp_meta:
        with open(tmp_meta, 'w') as f:
            json.dump(meta, f, indent=2)
    return out_dir


def backend_files(backend: str, precision: str) -> tuple:
    """The model files of an artefact of ``backend`` in ``precision``."""
    check_backend(backend, precision)
    if backend not in MODEL_FILES:
        raise ValueError(f'backend {backend!r} has no artefact: export to '
                         f'{" or ".join(MODEL_FILES)}')
    return MODEL_FILES[backend]


def load_predictor(path: str, threads: int = 0) -> Predictor:
    """A predictor for an artefact written by :func:`export_artefact`.

    Args:
        path (str): The artefact's folder or its ``deploy.json``.
        threads (int): Inference threads; 0: as many as torch uses.
            Default: 0.

    Returns:
        Predictor: With the artefact's meta data in ``meta``.
    """
    meta = read_meta(path)
    model_file = meta['paths'][-1]
    if meta['backend'] == 'onnxruntime':
        predictor = ONNXRuntimePredictor(model_file, meta['precision'],
                                         threads)
    else:
        predictor = OpenVINOPredictor(model_file, meta['precision'], threads)
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
                    **quantize_options) -> Predictor:
    """A predictor for a segmentor on any backend, built in memory: for
    ``torch`` the prepared model (:func:`prepare_for_inference` on a copy),
    otherwise the artefact :func:`export_artefact` writes, in a temporary
    folder removed with the predictor.

    Args:
        model (nn.Module): The SANet segmentor (not prepared).
        backend (str): 'torch', 'onnxruntime' or 'openvino'.
        precision (str): One that ``backend`` runs.
        shape (Sequence[int], optional): Input (H, W) for the exported
            backends; None: any size (dynamic shapes). Default: None.
        calib (Sequence[Tensor], optional): Calibration inputs for int8.
            Default: None.
        threads (int): Inference threads of ONNX Runtime and OpenVINO;
            0: as many as torch uses. Default: 0.
        **quantize_options: Passed to :func:`quantize_openvino`.
    """
    check_backend(backend, precision)
    if backend == 'torch':
        return TorchPredictor(
            prepare_for_inference(
                copy.deepcopy(model), dtype=TORCH_DTYPES[precision]),
            precision)
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
        **quantize_options)
    predictor = load_predictor(folder.name, threads)
    predictor.folder = folder  # removed when the predictor is
    return predictor

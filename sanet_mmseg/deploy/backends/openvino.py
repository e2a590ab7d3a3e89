# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""OpenVINO on the CPU: an IR (``model.xml``/``model.bin``, float32
weights) run in float32 or bfloat16, or quantized to int8 by NNCF, with an
optional accuracy guard (:mod:`..accuracy`)."""
import contextlib
import ctypes
import functools
import gc
import os
import os.path as osp
from typing import Optional, Sequence

import torch
from torch import Tensor

from ...cpu import int8_saturates
from ..predictors import Predictor, as_numpy, fixed_shape
from ..registry import BACKENDS, Backend

# NNCF reports usage to Google Analytics unless it believes it runs in CI;
# this flag (read when nncf is imported) only switches that off.
os.environ.setdefault('NNCF_CI', '1')


@functools.lru_cache(maxsize=None)
def openvino_core():
    """The process's one ``ov.Core``, kept until exit.

    Each ``ov.Core`` that loads the CPU plugin gives the loading thread a
    new alternate signal stack and, when it is destroyed, puts back the one
    it found. Cores destroyed out of order (two predictors deleted in the
    order they were made) leave the thread on an unmapped stack, and the
    next signal with a Python handler (Ctrl+C, Slurm's SIGUSR1) ends the
    process with SIGSEGV. One core, never destroyed, avoids that.
    """
    import openvino as ov
    return ov.Core()


class _SignalStack(ctypes.Structure):
    _fields_ = [('ss_sp', ctypes.c_void_p), ('ss_flags', ctypes.c_int),
                ('ss_size', ctypes.c_size_t)]


@contextlib.contextmanager
def signal_stack_kept():
    """Give this thread back its alternate signal stack after code that
    makes and destroys cores of its own (NNCF compiles each model it tries
    with ``ov.compile_model``, a core each; see :func:`openvino_core`).
    Objects the code left behind are collected first, so their cores do
    not change the stack later. Outside Linux it does nothing."""
    try:
        sigaltstack = ctypes.CDLL(None, use_errno=True).sigaltstack
    except (AttributeError, OSError):
        sigaltstack = None
    kept = _SignalStack()
    if sigaltstack is None or sigaltstack(None, ctypes.byref(kept)) != 0:
        yield
        return
    try:
        yield
    finally:
        gc.collect()
        sigaltstack(ctypes.byref(kept), None)


class OpenVINOPredictor(Predictor):
    """An OpenVINO model (IR or ONNX file, or ``ov.Model``) on the CPU.

    Args:
        model (str | ov.Model): The .xml (or .onnx) file, or the model.
        precision (str): 'fp32' and 'int8' run the float parts in float32
            (``INFERENCE_PRECISION_HINT`` f32: OpenVINO picks bf16 by
            default on CPUs with AVX-512 BF16 or AMX), 'bf16' in bfloat16.
        threads (int): Inference threads; 0: as many as torch uses.
            Default: 0.
    """
    backend = 'openvino'

    def __init__(self, model, precision: str, threads: int = 0):
        core = openvino_core()
        if isinstance(model, str):
            try:
                model = core.read_model(model)
            except RuntimeError as e:
                raise RuntimeError(
                    f'OpenVINO cannot read {model}: {e}') from e
        batch, shape = fixed_shape(
            [d.get_length() if d.is_static else None
             for d in model.input(0).get_partial_shape()])
        super().__init__(precision, shape, batch)
        dims = model.output(0).get_partial_shape()
        if dims.rank.is_static and len(dims) == 4 and dims[1].is_static:
            self.channels = dims[1].get_length()
        config = {
            'INFERENCE_PRECISION_HINT':
            'bf16' if precision == 'bf16' else 'f32',
            'INFERENCE_NUM_THREADS': threads or torch.get_num_threads(),
            'PERFORMANCE_HINT': 'LATENCY',
        }
        self.compiled = core.compile_model(model, 'CPU', config)
        self.request = self.compiled.create_infer_request()

    def _run(self, inputs: Tensor) -> Tensor:
        self.request.infer({0: as_numpy(inputs)})
        return torch.from_numpy(self.request.get_output_tensor(0).data.copy())


def quantize_openvino(model,
                      calib: Sequence[Tensor],
                      fast_bias_correction: bool = True,
                      preset: str = 'performance',
                      ignored_types: Sequence[str] = (),
                      max_drop: Optional[float] = None,
                      validation=None):
    """Quantize an OpenVINO model to int8 with NNCF's post-training
    quantization (``nncf.quantize``) or, with ``max_drop``, its
    quantization with accuracy control.

    Args:
        model (ov.Model): The float32 model.
        calib (Sequence[Tensor]): Calibration inputs (1, 3, H, W), normalised
            as the model expects (:class:`PipelineInputs`); all are used.
        fast_bias_correction (bool): NNCF's fast bias correction; False
            runs the slower full one. Default: True.
        preset (str): 'performance' (symmetric activations) or 'mixed'
            (asymmetric activations). Default: 'performance'.
        ignored_types (Sequence[str]): OpenVINO operation types to keep in
            float (e.g. ``('Sigmoid', 'Multiply')``). Default: ().
        max_drop (float, optional): The largest mIoU drop (points) allowed;
            layers are kept in float until it holds. Default: None (plain
            int8).
        validation (ValidationSet, optional): The labelled images the drop
            is measured on, needed with ``max_drop``. Default: None.

    Returns:
        tuple[ov.Model, dict | None]: The quantized model, and with
        ``max_drop`` the guard's report (:func:`guarded_quantize`).
    """
    import nncf
    if not calib:
        raise ValueError('int8 quantization needs calibration images')
    presets = {
        'performance': nncf.QuantizationPreset.PERFORMANCE,
        'mixed': nncf.QuantizationPreset.MIXED
    }
    if preset not in presets:
        raise ValueError(f'preset must be one of {list(presets)}, got '
                         f'{preset!r}')
    options = dict(
        preset=presets[preset],
        target_device=nncf.TargetDevice.CPU,
        subset_size=len(calib),
        fast_bias_correction=fast_bias_correction,
        ignored_scope=nncf.IgnoredScope(types=list(ignored_types))
        if ignored_types else None)
    advanced = None
    if int8_saturates():
        from nncf.quantization.advanced_parameters import (
            AdvancedQuantizationParameters, OverflowFix)
        advanced = AdvancedQuantizationParameters(
            overflow_fix=OverflowFix.ENABLE)
    dataset = nncf.Dataset(calib, as_numpy)
    with signal_stack_kept():
        if max_drop is None:
            return nncf.quantize(
                model, dataset, advanced_parameters=advanced,
                **options), None
        from ..accuracy import guarded_quantize
        # quantize_with_accuracy_control's name for the same parameters
        options['advanced_quantization_parameters'] = advanced
        return guarded_quantize(model, dataset, validation, max_drop,
                                options)


@BACKENDS.register_module(name='openvino')
class OpenVINOBackend(Backend):
    """OpenVINO's CPU plugin."""
    name = 'openvino'
    precisions = ('fp32', 'bf16', 'int8')
    files = ('model.xml', 'model.bin')
    int8_options = ('fast_bias_correction', 'preset', 'ignored_types',
                    'max_drop', 'validation')
    libraries = ('onnx', 'openvino', 'nncf')

    def export(self, onnx_file: str, model_dir: str, precision: str,
               calib=None, **options) -> dict:
        """The IR with float32 weights; int8 through
        :func:`quantize_openvino` (``options``); bf16 is a runtime
        precision (the IR stays float32)."""
        import openvino as ov
        self.check(precision, options)
        model, accuracy = openvino_core().read_model(onnx_file), None
        if precision == 'int8':
            model, accuracy = quantize_openvino(model, calib, **options)
        ov.save_model(
            model, osp.join(model_dir, self.files[0]), compress_to_fp16=False)
        return dict(accuracy=accuracy) if accuracy else {}

    def load(self, path: str, precision: str,
             threads: int = 0) -> OpenVINOPredictor:
        return OpenVINOPredictor(path, precision, threads)

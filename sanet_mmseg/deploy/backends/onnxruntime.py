# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""ONNX Runtime on the CPU: ``model.onnx`` in float32, or int8 by ONNX
Runtime's static quantization calibrated on real images."""
import os
import os.path as osp
from typing import Optional, Sequence

import torch
from torch import Tensor

from ...cpu import int8_saturates
from ..predictors import Predictor, as_numpy, fixed_shape
from ..registry import BACKENDS, Backend


def onnx_session(path: str, threads: int = 0):
    """An ONNX Runtime CPU session with all graph optimisations.

    Args:
        path (str): The .onnx file.
        threads (int): Intra-op threads; 0: as many as torch uses.
            Default: 0.
    """
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    try:
        return ort.InferenceSession(
            path, options, providers=['CPUExecutionProvider'])
    except Exception as e:  # ORT raises its own types for missing/corrupt
        raise RuntimeError(f'ONNX Runtime cannot load {path}: {e}') from e


class ONNXRuntimePredictor(Predictor):
    """An ONNX file (float32, or int8 quantized) in ONNX Runtime on the CPU.

    Args:
        path (str): The .onnx file.
        precision (str): 'fp32' or 'int8' (what the file holds).
        threads (int): Intra-op threads; 0: as many as torch uses.
            Default: 0.
    """
    backend = 'onnxruntime'

    def __init__(self, path: str, precision: str, threads: int = 0):
        self.session = onnx_session(path, threads)
        batch, shape = fixed_shape(self.session.get_inputs()[0].shape)
        super().__init__(precision, shape, batch)
        dims = self.session.get_outputs()[0].shape
        if len(dims) == 4 and isinstance(dims[1], int):
            self.channels = dims[1]

    def _run(self, inputs: Tensor) -> Tensor:
        output = self.session.run(None, {'input': as_numpy(inputs)})[0]
        return torch.from_numpy(output)


def quantize_onnx(src: str, dst: str, calib: Sequence[Tensor]) -> None:
    """Quantize a float32 ONNX file to int8 with ONNX Runtime's static
    quantization (QDQ format, the convolutions: per-channel int8 weights,
    uint8 activations with min-max calibration).

    Args:
        src (str): The float32 .onnx file.
        dst (str): The quantized .onnx file to write.
        calib (Sequence[Tensor]): Calibration inputs (1, 3, H, W),
            normalised as the model expects (:class:`PipelineInputs`).
    """
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process
    if not calib:
        raise ValueError('int8 quantization needs calibration images')

    class Reader(CalibrationDataReader):

        def __init__(self):
            self.inputs = iter(calib)

        def get_next(self) -> Optional[dict]:
            x = next(self.inputs, None)
            return None if x is None else {'input': as_numpy(x)}

    pre = f'{dst}.pre.onnx'
    try:
        quant_pre_process(src, pre)
        quantize_static(
            pre,
            dst,
            Reader(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=['Conv'],
            per_channel=True,
            reduce_range=int8_saturates(),
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8)
    finally:
        if osp.exists(pre):
            os.remove(pre)


@BACKENDS.register_module(name='onnxruntime')
class ONNXRuntimeBackend(Backend):
    """ONNX Runtime's CPU execution provider."""
    name = 'onnxruntime'
    precisions = ('fp32', 'int8')
    files = ('model.onnx', )
    libraries = ('onnx', 'onnxruntime')

    def export(self, onnx_file: str, model_dir: str, precision: str,
               calib=None, **options) -> dict:
        self.check(precision, options)
        path = osp.join(model_dir, self.files[0])
        if precision == 'int8':
            quantize_onnx(onnx_file, path, calib)
        else:
            os.replace(onnx_file, path)
        return {}

    def load(self, path: str, precision: str,
             threads: int = 0) -> ONNXRuntimePredictor:
        return ONNXRuntimePredictor(path, precision, threads)

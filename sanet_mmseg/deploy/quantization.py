# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Post-training int8 quantization with calibration images: NNCF for
OpenVINO, ONNX Runtime's static quantization for ONNX."""
import os
from typing import Optional, Sequence

from torch import Tensor

from .predictors import as_numpy

# NNCF reports usage to Google Analytics unless it believes it runs in CI;
# this flag (read when nncf is imported) only switches that off.
os.environ.setdefault('NNCF_CI', '1')


def quantize_openvino(model,
                      calib: Sequence[Tensor],
                      fast_bias_correction: bool = True,
                      preset: str = 'performance',
                      ignored_types: Sequence[str] = ()):
    """Quantize an OpenVINO model to int8 with NNCF's post-training
    quantization (``nncf.quantize``).

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

    Returns:
        ov.Model: The quantized model.
    """
    import nncf
    if len(calib) == 0:
        raise ValueError('int8 quantization needs calibration images')
    presets = {
        'performance': nncf.QuantizationPreset.PERFORMANCE,
        'mixed': nncf.QuantizationPreset.MIXED
    }
    if preset not in presets:
        raise ValueError(f'preset must be one of {list(presets)}, got '
                         f'{preset!r}')
    ignored = nncf.IgnoredScope(types=list(ignored_types)) \
        if ignored_types else None
    return nncf.quantize(
        model,
        nncf.Dataset(calib, as_numpy),
        preset=presets[preset],
        target_device=nncf.TargetDevice.CPU,
        subset_size=len(calib),
        fast_bias_correction=fast_bias_correction,
        ignored_scope=ignored)


def quantize_onnx(src: str, dst: str, calib: Sequence[Tensor]) -> None:
    """Quantize a float32 ONNX file to int8 with ONNX Runtime's static
    quantization (QDQ format, the convolutions: per-channel int8 weights,
    uint8 activations with min-max calibration).

    Args:
        src (str): The float32 .onnx file.
        dst (str): The quantized .onnx file to write.
        calib (Sequence[Tensor]): Calibration inputs, as for
            :func:`quantize_openvino`.
    """
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process
    if len(calib) == 0:
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
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8)
    finally:
        if os.path.exists(pre):
            os.remove(pre)

# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""The inference backends, one module each, registered in
:data:`sanet_mmseg.deploy.registry.BACKENDS` when imported here."""
from .onnxruntime import ONNXRuntimeBackend, ONNXRuntimePredictor, onnx_session
from .openvino import OpenVINOBackend, OpenVINOPredictor, quantize_openvino
from .pytorch import TorchBackend, TorchPredictor

__all__ = [
    'ONNXRuntimeBackend', 'ONNXRuntimePredictor', 'OpenVINOBackend',
    'OpenVINOPredictor', 'TorchBackend', 'TorchPredictor', 'onnx_session',
    'quantize_openvino'
]

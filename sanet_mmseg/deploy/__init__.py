# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Deployment: a segmentor prepared for fast PyTorch inference, exported to
ONNX Runtime or OpenVINO (float32, bfloat16, int8 with calibration), run
through one predictor interface and evaluated as an MMSeg model."""
from .artefact import build_predictor, export_artefact, load_predictor
from .calibration import (FROM_CONFIG, ImagePipeline, PipelineInputs,
                          deploy_pipeline, pipeline_shape)
from .compat import MismatchError, check_config, check_normalisation
from .meta import META_FILE, SCHEMA, ArtefactError, read_meta, validate_meta
from .onnx_export import export_onnx
from .predictors import (PRECISIONS, ONNXRuntimePredictor, OpenVINOPredictor,
                         Predictor, TorchPredictor, check_backend,
                         onnx_session)
from .prepare import (check_checkpoint_file, fuse_conv_bn, load_segmentor,
                      prepare_for_inference)
from .quantization import quantize_onnx, quantize_openvino
from .segmentor import DeployedSegmentor

__all__ = [
    'ArtefactError', 'MismatchError', 'SCHEMA', 'check_config',
    'check_normalisation', 'check_checkpoint_file', 'validate_meta', 'DeployedSegmentor', 'FROM_CONFIG', 'ImagePipeline', 'META_FILE',
    'ONNXRuntimePredictor', 'OpenVINOPredictor', 'PRECISIONS',
    'PipelineInputs', 'Predictor', 'TorchPredictor', 'build_predictor',
    'check_backend', 'deploy_pipeline', 'export_artefact', 'export_onnx',
    'fuse_conv_bn', 'load_predictor', 'load_segmentor', 'onnx_session',
    'pipeline_shape', 'prepare_for_inference', 'quantize_onnx',
    'quantize_openvino', 'read_meta'
]

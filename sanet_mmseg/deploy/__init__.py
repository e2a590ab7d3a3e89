# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Deployment: a segmentor prepared for fast PyTorch inference, exported as
an artefact for a registered backend (ONNX Runtime, OpenVINO; float32,
bfloat16, int8 with calibration and an optional accuracy guard), opened
through one checked route, run through one predictor interface and
evaluated as an MMSeg model."""
from .accuracy import ValidationSet
from .artefact import (build_predictor, export_artefact, library_versions,
                       load_predictor)
from .backends import (ONNXRuntimePredictor, OpenVINOPredictor,
                       TorchPredictor, onnx_session, quantize_openvino)
from .calibration import (FROM_CONFIG, ImagePipeline, PipelineInputs,
                          deploy_pipeline, pipeline_shape)
from .compat import MismatchError, check_config, check_normalisation
from .meta import META_FILE, SCHEMA, ArtefactError, read_meta, validate_meta
from .onnx_export import export_onnx
from .predictors import Predictor
from .prepare import (check_checkpoint_file, fuse_conv_bn, load_segmentor,
                      prepare_for_inference)
from .registry import (BACKENDS, PRECISIONS, Backend, artefact_backends,
                       check_backend, get_backend)
from .segmentor import DeployedSegmentor

__all__ = [
    'ArtefactError', 'BACKENDS', 'Backend', 'DeployedSegmentor',
    'FROM_CONFIG', 'ImagePipeline', 'META_FILE', 'MismatchError',
    'ONNXRuntimePredictor', 'OpenVINOPredictor', 'PRECISIONS',
    'PipelineInputs', 'Predictor', 'SCHEMA', 'TorchPredictor', 'ValidationSet',
    'artefact_backends', 'build_predictor', 'check_backend',
    'check_checkpoint_file', 'check_config', 'check_normalisation',
    'deploy_pipeline', 'export_artefact', 'export_onnx', 'fuse_conv_bn',
    'get_backend', 'library_versions', 'load_predictor', 'load_segmentor',
    'onnx_session', 'pipeline_shape', 'prepare_for_inference',
    'quantize_openvino', 'read_meta', 'validate_meta'
]

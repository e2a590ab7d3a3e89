# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""One inference interface over PyTorch, ONNX Runtime and OpenVINO."""
from abc import ABCMeta, abstractmethod
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

#: The precisions each backend runs; int8 is a quantized artefact.
PRECISIONS = {
    'torch': ('fp32', 'bf16', 'fp16'),
    'onnxruntime': ('fp32', 'int8'),
    'openvino': ('fp32', 'bf16', 'int8'),
}


def check_backend(backend: str, precision: str) -> None:
    """Raise a ValueError naming the choices if ``backend`` does not run
    ``precision``."""
    if backend not in PRECISIONS:
        raise ValueError(f'unknown backend {backend!r}: choose from '
                         f'{", ".join(PRECISIONS)}')
    if precision not in PRECISIONS[backend]:
        raise ValueError(f'{backend} runs {", ".join(PRECISIONS[backend])}, '
                         f'not {precision!r}')


def as_numpy(x: Union[Tensor, np.ndarray]) -> np.ndarray:
    """A float32 C-contiguous array of a tensor or array."""
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


class Predictor(metaclass=ABCMeta):
    """A segmentation network on one backend: normalised images in, logits
    out.

    Call it with a float32 batch (N, 3, H, W), normalised as the config's
    ``data_preprocessor`` does; it returns the float32 logits
    (N, C, ceil(H/8), ceil(W/8)) on the CPU (on the model's device for
    PyTorch), as ``EncoderDecoder._forward`` does. A model exported for one
    input size (``shape``) takes that size only; a batch larger than the
    model's runs image by image.

    Attributes:
        backend (str): 'torch', 'onnxruntime' or 'openvino'.
        precision (str): 'fp32', 'bf16', 'fp16' or 'int8'.
        shape (tuple[int, int] | None): The fixed (H, W), or None.
        batch (int | None): The fixed batch size, or None.
        meta (dict): The artefact's meta data (see
            :func:`sanet_mmseg.deploy.export_artefact`); empty for a model
            built in memory from PyTorch.
        channels (int | None): The logits' channels where the model says.
    """
    backend = ''
    channels = None

    def __init__(self,
                 precision: str,
                 shape: Optional[Sequence[int]] = None,
                 batch: Optional[int] = None):
        check_backend(self.backend, precision)
        self.precision = precision
        self.shape = tuple(shape) if shape is not None else None
        self.batch = batch
        self.meta = {}

    @property
    def name(self) -> str:
        """``backend:precision``."""
        return f'{self.backend}:{self.precision}'

    def __call__(self, inputs: Tensor) -> Tensor:
        if inputs.dim() != 4 or inputs.shape[1] != 3:
            raise ValueError('a predictor takes images (N, 3, H, W), got '
                             f'shape {tuple(inputs.shape)}')
        if self.shape is not None and tuple(inputs.shape[2:]) != self.shape:
            raise ValueError(
                f'this {self.name} model was exported for {self.shape[0]}x'
                f'{self.shape[1]} inputs, got {inputs.shape[2]}x'
                f'{inputs.shape[3]} (export it for that size, or resize the '
                'images to the exported one)')
        if self.batch is not None and inputs.shape[0] != self.batch:
            if self.batch != 1:
                raise ValueError(f'this {self.name} model takes batches of '
                                 f'{self.batch}, got {inputs.shape[0]}')
            return torch.cat([self._run(x[None]) for x in inputs])
        return self._run(inputs)

    @abstractmethod
    def _run(self, inputs: Tensor) -> Tensor:
        """The backend's inference on a batch it takes."""


class TorchPredictor(Predictor):
    """A segmentor prepared by :func:`prepare_for_inference`, in PyTorch.

    Args:
        model (nn.Module): The prepared segmentor.
        precision (str): The dtype it was prepared in: 'fp32', 'bf16' or
            'fp16'.
    """
    backend = 'torch'

    def __init__(self, model: nn.Module, precision: str):
        super().__init__(precision)
        self.model = model
        self.device = next(model.parameters()).device

    def _run(self, inputs: Tensor) -> Tensor:
        with torch.no_grad():
            return self.model._forward(inputs.to(self.device))


def _fixed(dims: Sequence) -> Tuple[Optional[int], Optional[Tuple]]:
    """(batch, (H, W)) of an input shape whose dims are ints (fixed) or
    names / None / -1 (dynamic)."""

    def fixed(d):
        return d if isinstance(d, int) and d > 0 else None

    batch, _, h, w = (fixed(d) for d in dims)
    return batch, ((h, w) if h and w else None)


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
        batch, shape = _fixed(self.session.get_inputs()[0].shape)
        super().__init__(precision, shape, batch)
        dims = self.session.get_outputs()[0].shape
        if len(dims) == 4 and isinstance(dims[1], int):
            self.channels = dims[1]

    def _run(self, inputs: Tensor) -> Tensor:
        output = self.session.run(None, {'input': as_numpy(inputs)})[0]
        return torch.from_numpy(output)


class OpenVINOPredictor(Predictor):
    """An OpenVINO model (IR or ONNX file, or ``ov.Model``) on the CPU.

    Args:
        model (str | ov.Model): The .xml (or .onnx) file, or the model.
        precision (str): 'fp32' and 'int8' run the float parts in float32
            (``INFERENCE_PRECISION_HINT`` f32: OpenVINO would pick bf16 on
            CPUs with AMX), 'bf16' in bfloat16.
        threads (int): Inference threads; 0: as many as torch uses.
            Default: 0.
    """
    backend = 'openvino'

    def __init__(self, model, precision: str, threads: int = 0):
        import openvino as ov
        core = ov.Core()
        if isinstance(model, str):
            try:
                model = core.read_model(model)
            except RuntimeError as e:
                raise RuntimeError(
                    f'OpenVINO cannot read {model}: {e}') from e
        batch, shape = _fixed(
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

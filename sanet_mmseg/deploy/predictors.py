# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""The inference interface every backend's predictor fills."""
from abc import ABCMeta, abstractmethod
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from .registry import check_backend


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


def fixed_shape(dims: Sequence) -> Tuple[Optional[int], Optional[Tuple]]:
    """(batch, (H, W)) of an input shape whose dims are ints (fixed) or
    names / None / -1 (dynamic)."""

    def fixed(d):
        return d if isinstance(d, int) and d > 0 else None

    batch, _, h, w = (fixed(d) for d in dims)
    return batch, ((h, w) if h and w else None)

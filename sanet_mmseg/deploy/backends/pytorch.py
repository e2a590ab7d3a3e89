# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""PyTorch: the segmentor prepared for inference in float32, bfloat16 or
float16; no artefact (a checkpoint and its config are the model)."""
import copy

import torch
import torch.nn as nn
from torch import Tensor

from ..predictors import Predictor
from ..prepare import prepare_for_inference
from ..registry import BACKENDS, Backend

DTYPES = {
    'fp32': torch.float32,
    'bf16': torch.bfloat16,
    'fp16': torch.float16
}


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
        self.channels = model.decode_head.num_classes

    def _run(self, inputs: Tensor) -> Tensor:
        with torch.no_grad():
            return self.model._forward(inputs.to(self.device))


@BACKENDS.register_module(name='torch')
class TorchBackend(Backend):
    """PyTorch on the segmentor's device (fp16 is for CUDA)."""
    name = 'torch'
    precisions = tuple(DTYPES)
    libraries = ('torch', )

    def from_model(self, model: nn.Module, precision: str,
                   threads: int = 0) -> TorchPredictor:
        """The prepared copy of ``model`` (``threads`` is torch's own
        setting, left as it is)."""
        self.check(precision)
        return TorchPredictor(
            prepare_for_inference(
                copy.deepcopy(model), dtype=DTYPES[precision]), precision)

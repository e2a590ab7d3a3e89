# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Export a segmentor to ONNX."""
from typing import Sequence

import torch
import torch.nn as nn

from ..fileio import atomic_path
from ..models.segmentor_output import SegmentorOutput


def export_onnx(model: nn.Module,
                path: str,
                shape: Sequence[int] = (1024, 2048),
                batch: int = 1,
                dynamic: bool = False,
                labels: bool = False,
                opset: int = 17) -> None:
    """Export a float32 segmentor to ONNX with the TorchScript exporter
    (``torch.onnx.export(dynamo=False)``; the dynamo exporter needs the
    ``onnxscript`` package). The file is written atomically.

    The graph has one input, ``input`` (N, 3, H, W) float32 normalised
    images, and one output, ``output``: logits (N, C, H/8, W/8) float32, or
    with ``labels`` int64 labels (N, H, W).

    Args:
        model (nn.Module): The segmentor in eval mode, best prepared first.
        path (str): The .onnx file to write.
        shape (Sequence[int]): Input height and width of the traced example.
            Default: (1024, 2048).
        batch (int): Input batch size of the traced example. Default: 1.
        dynamic (bool): Let batch, height and width vary. Default: False.
        labels (bool): Export labels at the input size instead of logits.
            Default: False.
        opset (int): ONNX opset. Default: 17.
    """
    dtypes = {p.dtype for p in model.parameters()}
    if dtypes != {torch.float32}:
        raise ValueError('export_onnx needs a float32 model (TensorRT, '
                         'ONNX Runtime and OpenVINO choose their own reduced '
                         'precision), got parameters of '
                         f'{sorted(map(str, dtypes))}')
    if len(shape) != 2 or min(shape) < 1 or batch < 1:
        raise ValueError(f'shape must be (H, W) > 0 and batch >= 1, got '
                         f'{tuple(shape)} and {batch}')
    axes = None
    if dynamic:
        out_axes = {0: 'batch', 1: 'height', 2: 'width'} if labels else {
            0: 'batch', 2: 'height_8', 3: 'width_8'}
        axes = {'input': {0: 'batch', 2: 'height', 3: 'width'},
                'output': out_axes}
    x = torch.randn(batch, 3, *shape, device=next(model.parameters()).device)
    wrapper = SegmentorOutput(model, 'labels' if labels else 'logits')
    with atomic_path(path) as tmp, torch.no_grad():
        torch.onnx.export(
            wrapper.eval(), (x, ),
            tmp,
            input_names=['input'],
            output_names=['output'],
            opset_version=opset,
            dynamic_axes=axes,
            dynamo=False)

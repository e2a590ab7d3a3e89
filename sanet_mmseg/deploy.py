# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Make an SANet segmentor ready for fast inference, and export it to ONNX."""
import os.path as osp
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import fuse_conv_bn as mmcv_fuse_conv_bn
from mmcv.cnn.utils.fuse_conv_bn import _fuse_conv_bn
from mmengine.model import revert_sync_batchnorm

from .fileio import atomic_path
from .models.decode_heads.sad_head import SADHead

TRAINING_ONLY = ('aux_head', 'aux_cls_seg', 'boundary_head',
                 'boundary_cls_seg')

_BN = nn.modules.batchnorm._BatchNorm


def fuse_conv_bn(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm that can be folded into a convolution, in place.

    - Backbone: every BN follows its convolution (conv-BN-ReLU), so MMCV's
      ``fuse_conv_bn`` folds them all.
    - SAD head, main seg unit (BN-ReLU-conv3x3-BN-ReLU-conv1x1): the BN
      after the 3x3 conv folds into it; the BN *before* it folds backwards
      into the fusion's 1x1 projection, whose output nothing else reads
      (exact: an affine map of a conv's output is a conv with a bias).
    - APPPM (1/64 resolution, ~0.1% of the time): its pre-activation units
      (BN-ReLU-conv) keep their BNs; a ReLU or an AvgPool that counts the
      padding stands between each BN and the convolution before it.
      (MMCV's ``fuse_conv_bn`` must not be run there: it pairs modules by
      registration order and would fold these BNs into the conv *after*.)

    Args:
        model (nn.Module): An SANet ``EncoderDecoder`` in eval mode with
            plain BN (see :func:`prepare_for_inference`).

    Returns:
        nn.Module: The same model.
    """
    mmcv_fuse_conv_bn(model.backbone)
    head = model.decode_head
    if isinstance(head, SADHead):
        seg = head.seg_head
        if isinstance(seg.norm, _BN):
            seg.conv.conv = _fuse_conv_bn(seg.conv.conv, seg.norm)
            seg.norm = nn.Identity()
        if seg.conv.with_norm and isinstance(seg.conv.norm, _BN):
            head.fusion.conv_out = _fuse_conv_bn(head.fusion.conv_out,
                                                 seg.conv.norm)
            setattr(seg.conv, seg.conv.norm_name, nn.Identity())
    return model


def _cast_input(dtype, memory_format):

    def hook(module, args):
        return (args[0].to(dtype=dtype, memory_format=memory_format),
                *args[1:])

    return hook


def _to_float(module, args, output):
    return output.float()


def prepare_for_inference(model: nn.Module,
                          dtype: torch.dtype = torch.float32,
                          channels_last: bool = True,
                          compile: bool = False) -> nn.Module:
    """Make an SANet segmentor ready for fast inference, in place.

    In: an ``EncoderDecoder`` with an SANet backbone, APPPM neck and
    :class:`SADHead` (as built from ``configs/sanet/*.py`` or returned by
    ``mmseg.apis.init_model``), float32, BN or SyncBN, in any mode, on any
    device.

    Out: the same object, for inference only: eval mode; SyncBN reverted to
    BN; the training-only heads of SADHead deleted (``loss`` and
    ``forward_all`` no longer work; do not call ``train()`` again); BN
    folded into the convolutions (:func:`fuse_conv_bn`); weights in
    ``dtype`` and, by default, channels-last memory format. Inputs stay
    float32 NCHW images (normalised as the config's ``data_preprocessor``
    does; the backbone casts them); ``_forward`` returns float32 logits
    (N, num_classes, H/8, W/8) and ``predict`` the usual data samples.
    In float32 the logits equal the plain model's to rounding (relative
    error < 1e-4, tested).

    Args:
        model (nn.Module): The segmentor; changed in place.
        dtype (torch.dtype): Weights and activations inside the network.
            ``torch.bfloat16`` runs the convolutions in bf16 (about 0.4x the
            time on CPUs with AVX-512 BF16 or AMX; changes the labels of
            near-ties only), ``torch.float16`` is for CUDA. Default: float32.
        channels_last (bool): Use the channels-last (NHWC) memory format,
            which oneDNN and cuDNN run faster. Default: True.
        compile (bool): Also compile the backbone, neck and head in place
            with ``torch.compile`` (Inductor, weights frozen as constants
            when called under ``torch.no_grad()``), which fuses the
            element-wise work into the convolutions. Needs a C++ compiler
            (CPU) or Triton (CUDA); the first call of each input shape
            compiles (about 30 s on 2 CPU cores). Default: False.

    Returns:
        nn.Module: The same model.
    """
    if getattr(model, '_prepared_for_inference', False):
        raise RuntimeError('prepare_for_inference: this model is prepared '
                           'already')
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f'dtype must be float32, bfloat16 or float16, got '
                         f'{dtype}')
    if not isinstance(getattr(model, 'decode_head', None), SADHead):
        raise TypeError('prepare_for_inference expects an SANet '
                        'EncoderDecoder (decode_head SADHead), got '
                        f'{type(model).__name__}')
    model = revert_sync_batchnorm(model).eval()
    head = model.decode_head
    for name in TRAINING_ONLY:
        if hasattr(head, name):
            delattr(head, name)
    with torch.no_grad():
        fuse_conv_bn(model)
    memory_format = (
        torch.channels_last if channels_last else torch.contiguous_format)
    model.to(dtype=dtype, memory_format=memory_format)
    model.backbone.register_forward_pre_hook(
        _cast_input(dtype, memory_format))
    if dtype != torch.float32:  # the classifier returns float32 logits
        head.conv_seg.register_forward_hook(_to_float)
    if compile:
        for module in (model.backbone, model.neck, head):
            module.compile(options={'freezing': True})
    model._prepared_for_inference = True
    return model


class SegmentorExport(nn.Module):
    """The network of a segmentor as one tensor function, for export.

    Args:
        model (nn.Module): A segmentor (prepared or not), in eval mode.
        labels (bool): Return labels (N, H, W) at the input size instead of
            the logits (N, C, H/8, W/8).
    """

    def __init__(self, model: nn.Module, labels: bool = False):
        super().__init__()
        self.model = model
        self.labels = labels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (Tensor): normalised images (N, 3, H, W), float32.
        Returns: Tensor: logits or int64 labels."""
        logits = self.model._forward(x)
        if not self.labels:
            return logits
        logits = F.interpolate(
            logits,
            size=x.shape[2:],
            mode='bilinear',
            align_corners=self.model.decode_head.align_corners)
        return logits.argmax(1)


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
        batch (int): Input batch size of the traced example.
        dynamic (bool): Let batch, height and width vary.
        labels (bool): Export labels at the input size instead of logits.
        opset (int): ONNX opset. Default: 17.
    """
    dtypes = {p.dtype for p in model.parameters()}
    if dtypes != {torch.float32}:
        raise ValueError('export_onnx needs a float32 model (TensorRT and '
                         'ONNX Runtime choose their own reduced precision), '
                         f'got parameters of {sorted(map(str, dtypes))}')
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
    with atomic_path(path) as tmp, torch.no_grad():
        torch.onnx.export(
            SegmentorExport(model, labels).eval(), (x, ),
            tmp,
            input_names=['input'],
            output_names=['output'],
            opset_version=opset,
            dynamic_axes=axes,
            dynamo=False)


def onnx_session(path: str, threads: int = 0):
    """An ONNX Runtime CPU session with all graph optimisations.

    Args:
        path (str): The .onnx file.
        threads (int): Intra-op threads; 0: as many as torch uses.
    """
    import onnxruntime as ort
    if not osp.isfile(path):
        raise FileNotFoundError(f'no ONNX file at {path}')
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    return ort.InferenceSession(
        path, options, providers=['CPUExecutionProvider'])

# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Make an SANet segmentor ready for fast inference."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmcv.cnn.utils.fuse_conv_bn import _fuse_conv_bn
from mmengine.model import revert_sync_batchnorm

from mmseg.models.decode_heads.pid_head import BasePIDHead

TRAINING_ONLY = ('aux_head', 'aux_cls_seg', 'boundary_head',
                 'boundary_cls_seg')


def fuse_conv_bn(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm that follows a convolution into it, in place.

    MMCV's ``fuse_conv_bn`` pairs a conv with the next BN by registration
    order, which would wrongly fold the BN *before* the conv of the
    pre-activation units (BN-ReLU-conv) of APPPM and the seg heads. Here a
    ``ConvModule`` is fused only when its conv comes before its norm, and a
    seg head (:class:`BasePIDHead`: pre-activation unit, then BN) folds its
    trailing BN into the unit's conv.
    """
    for module in model.modules():
        if isinstance(module, ConvModule) and module.with_norm and \
                module.order.index('conv') < module.order.index('norm') and \
                isinstance(module.norm, nn.modules.batchnorm._BatchNorm):
            module.conv = _fuse_conv_bn(module.conv, module.norm)
            setattr(module, module.norm_name, nn.Identity())
        elif isinstance(module, BasePIDHead) and isinstance(
                module.norm, nn.modules.batchnorm._BatchNorm):
            module.conv.conv = _fuse_conv_bn(module.conv.conv, module.norm)
            module.norm = nn.Identity()
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
                          channels_last: bool = True) -> nn.Module:
    """Return ``model`` (an SANet ``EncoderDecoder``) ready for inference.

    Puts it in eval mode, reverts SyncBN to BN, deletes the training-only
    heads of :class:`SADHead`, folds BN into the convolutions before it and
    runs the convolutions in channels-last memory format. The results equal
    the plain model's to float32 rounding. The model still takes float32
    NCHW images and returns float32 logits.

    Args:
        model (nn.Module): The segmentor; changed in place.
        dtype (torch.dtype): Weights and activations inside the network;
            ``torch.bfloat16`` is about 2.5x faster on CPUs with AVX-512
            BF16 and changes few labels. Default: float32.
        channels_last (bool): Use the channels-last memory format.

    Returns:
        nn.Module: The same model.
    """
    model = revert_sync_batchnorm(model).eval()
    head = model.decode_head
    for name in TRAINING_ONLY:
        if hasattr(head, name):
            delattr(head, name)
    fuse_conv_bn(model)
    memory_format = (
        torch.channels_last if channels_last else torch.contiguous_format)
    model.to(dtype=dtype, memory_format=memory_format)
    model.backbone.register_forward_pre_hook(
        _cast_input(dtype, memory_format))
    if dtype != torch.float32:  # the classifier returns float32 logits
        head.conv_seg.register_forward_hook(_to_float)
    return model


class SegmentorExport(nn.Module):
    """The network of a segmentor as one tensor function, for export.

    Args:
        model (nn.Module): A segmentor (prepared or not).
        labels (bool): Return labels (N, H, W) at the input size instead of
            the logits (N, C, H/8, W/8).
    """

    def __init__(self, model: nn.Module, labels: bool = False):
        super().__init__()
        self.model = model
        self.labels = labels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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
                shape=(1024, 2048),
                batch: int = 1,
                dynamic: bool = False,
                labels: bool = False,
                opset: int = 17) -> None:
    """Export a segmentor to ONNX (TorchScript-based exporter).

    Args:
        model (nn.Module): The segmentor, best prepared first.
        path (str): The .onnx file to write.
        shape (tuple[int]): Input height and width.
        batch (int): Input batch size.
        dynamic (bool): Let batch, height and width vary.
        labels (bool): Export labels at the input size instead of logits.
        opset (int): ONNX opset.
    """
    x = torch.randn(batch, 3, *shape)
    axes = None
    if dynamic:
        axes = {'input': {0: 'batch', 2: 'height', 3: 'width'},
                'output': {0: 'batch', 2: 'height', 3: 'width'}
                if labels else {0: 'batch', 2: 'height_8', 3: 'width_8'}}
        if labels:
            axes['output'] = {0: 'batch', 1: 'height', 2: 'width'}
    torch.onnx.export(
        SegmentorExport(model, labels).eval(),
        (x, ),
        path,
        input_names=['input'],
        output_names=['output'],
        opset_version=opset,
        dynamic_axes=axes,
        dynamo=False)


def onnx_session(path: str, threads: int = 0):
    """An ONNX Runtime CPU session (``threads`` 0: as many as torch uses)."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    return ort.InferenceSession(
        path, options, providers=['CPUExecutionProvider'])

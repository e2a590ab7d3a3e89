# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Load an SANet segmentor and make it ready for fast inference in
PyTorch."""
import os.path as osp
from typing import Optional, Union

import torch
import torch.nn as nn
from mmcv.cnn import fuse_conv_bn as mmcv_fuse_conv_bn
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm

from mmseg.apis import init_model
from ..fileio import is_checkpoint
from ..models.decode_heads.sad_head import SADHead


def load_segmentor(config: Union[str, Config],
                   checkpoint: Optional[str],
                   device: str = 'cpu') -> nn.Module:
    """``mmseg.apis.init_model``, with the tools' checkpoint convention.

    Args:
        config (str | Config): The config.
        checkpoint (str, optional): The checkpoint file (checked by
            :func:`check_checkpoint_file`); None or 'none':
            random weights (said explicitly on the command line, so that no
            one deploys random weights by mistake).
        device (str): Default: 'cpu'.

    Returns:
        nn.Module: The segmentor in eval mode, with ``dataset_meta`` from
        the checkpoint where it has one.
    """
    if checkpoint is not None and checkpoint.lower() == 'none':
        checkpoint = None
    if checkpoint is not None:
        check_checkpoint_file(checkpoint)
    return init_model(config, checkpoint, device=device)


def check_checkpoint_file(path: str) -> None:
    """Raise naming ``path`` unless it is a file that ``torch.save`` wrote
    (:func:`sanet_mmseg.fileio.is_checkpoint`)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'no checkpoint file {path}')
    if not is_checkpoint(path):
        raise ValueError(f'{path} is not a checkpoint (torch.save writes a '
                         'zip archive with data.pkl, or its legacy pickle)')


def fuse_conv_bn(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm that can be folded into a convolution, in place.

    - Backbone: every BN follows its convolution (conv-BN-ReLU), so MMCV's
      ``fuse_conv_bn`` folds them all.
    - SAD head: :meth:`SADHead.switch_to_deploy` deletes the training-only
      heads and folds the main seg unit's BNs.
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
    with torch.no_grad():
        mmcv_fuse_conv_bn(model.backbone)
    model.decode_head.switch_to_deploy()
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
    fuse_conv_bn(model)
    memory_format = (
        torch.channels_last if channels_last else torch.contiguous_format)
    model.to(dtype=dtype, memory_format=memory_format)
    model.backbone.register_forward_pre_hook(
        _cast_input(dtype, memory_format))
    head = model.decode_head
    if dtype != torch.float32:  # the classifier returns float32 logits
        head.conv_seg.register_forward_hook(_to_float)
    if compile:
        for module in (model.backbone, model.neck, head):
            module.compile(options={'freezing': True})
    model._prepared_for_inference = True
    return model

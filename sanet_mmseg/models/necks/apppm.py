# Copyright (c) sanet-mmseg contributors. All rights reserved.
from typing import Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.dist import get_world_size
from mmengine.model import BaseModule
from torch import Tensor

from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.utils import OptConfigType


class APPPMUnit(ConvModule):
    """A ConvModule that, in training, normalises an input of one value per
    channel with its norm layer's running statistics, as in eval mode.

    Batch statistics of one value are undefined (PyTorch's BatchNorm raises
    ``Expected more than 1 value per channel when training``). A SyncBN that
    synchronises over several processes sees more values and is left to do
    so. Every other input is processed as by ConvModule.
    """

    def forward(self,
                x: Tensor,
                activate: bool = True,
                norm: bool = True) -> Tensor:
        """Forward function.

        Args:
            x (Tensor): Features (N, C, H, W).
            activate (bool): Whether to apply the activation.
                Default: True.
            norm (bool): Whether to apply the norm layer. Default: True.

        Returns:
            Tensor: The output of ConvModule.
        """
        single = (
            self.training and self.with_norm and x.numel() == x.shape[1]
            and not (isinstance(self.norm, nn.SyncBatchNorm)
                     and get_world_size(self.norm.process_group) > 1))
        if not single:
            return super().forward(x, activate, norm)
        self.norm.train(False)
        try:
            return super().forward(x, activate, norm)
        finally:
            self.norm.train(True)


@MODELS.register_module()
class APPPM(BaseModule):
    """Asymmetric pooling pyramid pooling module of SANet.

    Transforms the deepest backbone feature and passes the others on. The
    deepest feature goes through ReLU, then through five pre-activation
    branches (1x1; three asymmetric pool-conv pairs, horizontal then
    vertical; global pooling), which are fused and mixed with a shortcut by a
    one-channel bi-attention map.

    Batch size 1: where a unit's BN sees one value per channel in training
    (always after the global pooling, and after the asymmetric poolings of a
    small feature map), it normalises with its running statistics, as in
    eval mode, and leaves them unchanged; the reference fails there. Batches
    of two or more images are computed exactly as the reference does.

    Args:
        in_channels (int): Channels of the deepest feature. Default: 512.
        branch_channels (int): Channels of each branch. Default: 128.
        out_channels (int): Output channels. Default: 128.
        kernel_sizes (Sequence[int]): Pooling kernel of each asymmetric
            branch. Default: (5, 9, 17).
        strides (Sequence[int]): Pooling strides. Default: (2, 4, 8).
        paddings (Sequence[int]): Pooling paddings. Default: (2, 4, 8).
        align_corners (bool): align_corners of the upsampling.
            Default: False.
        norm_cfg (dict): Config of the normalization layers.
            Default: dict(type='BN').
        act_cfg (dict): Config of the activation layers.
            Default: dict(type='ReLU', inplace=True).
        conv_cfg (dict): Extra ConvModule arguments of every unit.
            Default: dict(order=('norm', 'act', 'conv'), bias=False), the
            pre-activation order without bias.
        init_cfg (dict, optional): Initialization config dict. Default: None.
    """

    def __init__(self,
                 in_channels: int = 512,
                 branch_channels: int = 128,
                 out_channels: int = 128,
                 kernel_sizes: Sequence[int] = (5, 9, 17),
                 strides: Sequence[int] = (2, 4, 8),
                 paddings: Sequence[int] = (2, 4, 8),
                 align_corners: bool = False,
                 norm_cfg: OptConfigType = dict(type='BN'),
                 act_cfg: OptConfigType = dict(type='ReLU', inplace=True),
                 conv_cfg: OptConfigType = dict(
                     order=('norm', 'act', 'conv'), bias=False),
                 init_cfg: OptConfigType = None):
        super().__init__(init_cfg)
        self.align_corners = align_corners

        def unit(cin, cout, kernel_size):
            return APPPMUnit(
                cin,
                cout,
                kernel_size,
                padding=kernel_size // 2,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg,
                **conv_cfg)

        self.scales = nn.ModuleList([unit(in_channels, branch_channels, 1)])
        for k, s, p in zip(kernel_sizes, strides, paddings):
            self.scales.append(
                nn.Sequential(
                    nn.AvgPool2d((1, k), (1, s), (0, p)),
                    unit(in_channels, branch_channels, 3),
                    nn.AvgPool2d((k, 1), (s, 1), (p, 0)),
                    unit(branch_channels, branch_channels, 3)))
        self.scales.append(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(1),
                unit(in_channels, branch_channels, 1)))
        self.compression = unit(branch_channels * len(self.scales),
                                out_channels, 1)
        self.shortcut = unit(in_channels, out_channels, 1)
        self.relu = nn.ReLU()
        self.attention = nn.Conv2d(out_channels, 1, 1)

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """Forward function.

        Args:
            inputs (Sequence[Tensor]): Backbone features, deepest last.

        Returns:
            tuple[Tensor]: The same features with the deepest replaced by
            the APPPM output (out_channels, same resolution).
        """
        x = self.relu(inputs[-1])
        feats = [self.scales[0](x)]
        for scale in self.scales[1:]:
            feats.append(
                resize(
                    scale(x),
                    size=x.shape[2:],
                    mode='bilinear',
                    align_corners=self.align_corners))
        fused = self.compression(torch.cat(feats, dim=1))
        short = self.shortcut(x)
        attn = torch.sigmoid(self.attention(self.relu(short + fused)))
        out = short * attn + fused * (1 - attn)
        return (*inputs[:-1], out)

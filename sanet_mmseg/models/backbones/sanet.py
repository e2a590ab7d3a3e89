# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""SANet backbone: `SANet: Spatial-Assistant Encoder-Decoder Network for
Real-Time Semantic Segmentation <https://arxiv.org/abs/2309.10519>`_."""
import warnings
from typing import Optional, Sequence, Tuple

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from mmseg.models.utils import BasicBlock, Bottleneck
from mmseg.registry import MODELS
from mmseg.utils import OptConfigType


class SpatialPath(BaseModule):
    """A spatial path: an optional 1x1 projection, then one dilated
    conv3x3-BN-ReLU per dilation rate. Keeps the resolution.

    Args:
        in_channels (int): Input channels.
        channels (int): Output channels.
        dilations (Sequence[int]): One dilated 3x3 conv per rate, in order.
        norm_cfg (dict): Config of the normalization layers.
        act_cfg (dict): Config of the activation layers.
        init_cfg (dict, optional): Initialization config dict.
    """

    def __init__(self,
                 in_channels: int,
                 channels: int,
                 dilations: Sequence[int],
                 norm_cfg: OptConfigType = dict(type='BN'),
                 act_cfg: OptConfigType = dict(type='ReLU', inplace=True),
                 init_cfg: OptConfigType = None):
        super().__init__(init_cfg)
        self.proj = None
        if in_channels != channels:
            self.proj = ConvModule(
                in_channels, channels, 1, bias=True, act_cfg=None)
        self.convs = nn.Sequential(*[
            ConvModule(
                channels,
                channels,
                3,
                padding=d,
                dilation=d,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg) for d in dilations
        ])

    def forward(self, x: Tensor) -> Tensor:
        """Args: x (Tensor): (N, in_channels, H, W).
        Returns: Tensor: (N, channels, H, W)."""
        if self.proj is not None:
            x = self.proj(x)
        return self.convs(x)


@MODELS.register_module()
class SANet(BaseModule):
    """SANet backbone.

    A deep context branch (layer1-layer6) and two dilated spatial paths at
    1/8 resolution that exchange features with it. Variants differ only in
    stage depths and dilation rates (``arch``).

    Args:
        arch (str): 's', 'm' or 'l'. Ignored where ``depths`` and
            ``dilations`` are both given. Default: 's'.
        depths (Sequence[int], optional): Blocks of layer1, layer2 (also used
            for layer3), layer4 and layer5.
        dilations (Sequence[Sequence[int]], optional): Dilation rates of
            spatial path 1 and spatial path 2.
        in_channels (int): Input image channels. Default: 3.
        channels (int): Base channels ``c``. Default: 32.
        align_corners (bool): align_corners of the internal upsampling.
            Default: False.
        norm_cfg (dict): Config of the normalization layers.
        act_cfg (dict): Config of the activation layers in blocks.
        init_cfg (dict | list[dict], optional): Initialization config.
            Default: Kaiming for convolutions, 1/0 for norms.

    Returns (forward):
        tuple[Tensor]: ``(x4, d1, d2, d, x6)``: layer4 output (1/16, 4c), the
        three 1/8 decoder inputs (4c each) and layer6 output (1/64, 16c).
    """

    arch_settings = {
        's': dict(depths=(2, 2, 2, 2), dilations=((1, 2, 5), (7, 13))),
        'm': dict(depths=(3, 3, 9, 3), dilations=((1, 2, 5), (7, 13))),
        'l': dict(
            depths=(3, 3, 27, 3),
            dilations=((1, 2, 5, 7, 13), (1, 2, 5, 7, 13))),
    }

    def __init__(self,
                 arch: str = 's',
                 depths: Optional[Sequence[int]] = None,
                 dilations: Optional[Sequence[Sequence[int]]] = None,
                 in_channels: int = 3,
                 channels: int = 32,
                 align_corners: bool = False,
                 norm_cfg: OptConfigType = dict(type='BN'),
                 act_cfg: OptConfigType = dict(type='ReLU', inplace=True),
                 init_cfg: OptConfigType = [
                     dict(
                         type='Kaiming',
                         layer='Conv2d',
                         mode='fan_out',
                         nonlinearity='relu'),
                     dict(
                         type='Constant',
                         val=1,
                         bias=0,
                         layer=['_BatchNorm', 'GroupNorm'])
                 ]):
        super().__init__(init_cfg)
        if depths is None or dilations is None:
            if arch not in self.arch_settings:
                raise ValueError(f'SANet arch must be one of '
                                 f'{sorted(self.arch_settings)}, got {arch!r}')
            setting = self.arch_settings[arch]
            depths = depths or setting['depths']
            dilations = dilations or setting['dilations']
        if len(depths) != 4 or len(dilations) != 2:
            raise ValueError('SANet needs 4 stage depths and 2 lists of '
                             f'dilations, got {depths} and {dilations}')
        self.depths = tuple(depths)
        self.dilations = tuple(tuple(d) for d in dilations)
        self.align_corners = align_corners
        self.norm_cfg = norm_cfg
        self.act_cfg = act_cfg
        c = channels
        # layer3's output is split: first half -> spatial path 1, second
        # half -> layer4
        self.split_channels = 2 * c
        n1, n2, n3, n4 = self.depths

        # the reference's stem convolutions carry a bias before their BN
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', 'Unnecessary conv bias')
            self.stem = nn.Sequential(*[
                ConvModule(
                    cin,
                    c,
                    3,
                    stride=2,
                    padding=1,
                    bias=True,
                    norm_cfg=norm_cfg,
                    act_cfg=act_cfg) for cin in (in_channels, c)
            ])
        self.relu = nn.ReLU()
        self.layer1 = self._make_layer(BasicBlock, c, c, n1)
        self.layer2 = self._make_layer(BasicBlock, c, 2 * c, n2, stride=2)
        self.layer3 = self._make_layer(BasicBlock, 2 * c, 4 * c, n2)
        self.layer4 = self._make_layer(BasicBlock, 2 * c, 4 * c, n3, stride=2)
        self.layer5 = self._make_layer(BasicBlock, 4 * c, 8 * c, n4, stride=2)
        self.layer6 = self._make_layer(Bottleneck, 8 * c, 8 * c, 1, stride=2)

        self.spatial_path1 = SpatialPath(2 * c, 4 * c, self.dilations[0],
                                         norm_cfg, act_cfg)
        self.spatial_path2 = SpatialPath(4 * c, 4 * c, self.dilations[1],
                                         norm_cfg, act_cfg)
        self.down4 = ConvModule(
            4 * c, 4 * c, 3, stride=2, padding=1, norm_cfg=norm_cfg,
            act_cfg=None)
        self.down5 = nn.Sequential(
            ConvModule(
                4 * c,
                4 * c,
                3,
                stride=2,
                padding=1,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg),
            ConvModule(
                4 * c,
                8 * c,
                3,
                stride=2,
                padding=1,
                norm_cfg=norm_cfg,
                act_cfg=None))
        self.compression = ConvModule(
            8 * c, 4 * c, 1, norm_cfg=norm_cfg, act_cfg=None)

    def _make_layer(self,
                    block: type,
                    in_channels: int,
                    channels: int,
                    num_blocks: int,
                    stride: int = 1) -> nn.Sequential:
        """A stage of ``num_blocks`` blocks; the first takes the stride and
        the projection; in a stage of several blocks the last one ends
        without activation (the caller applies it)."""
        downsample = None
        if stride != 1 or in_channels != channels * block.expansion:
            downsample = ConvModule(
                in_channels,
                channels * block.expansion,
                1,
                stride=stride,
                norm_cfg=self.norm_cfg,
                act_cfg=None)
        layers = [
            block(
                in_channels,
                channels,
                stride,
                downsample,
                norm_cfg=self.norm_cfg,
                act_cfg=self.act_cfg)
        ]
        in_channels = channels * block.expansion
        for i in range(1, num_blocks):
            layers.append(
                block(
                    in_channels,
                    channels,
                    norm_cfg=self.norm_cfg,
                    act_cfg=self.act_cfg,
                    act_cfg_out=None
                    if i == num_blocks - 1 else self.act_cfg))
        return nn.Sequential(*layers)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Refuse the weights of another SANet variant by name: stage
        depths and spatial path lengths must match this model's."""

        def count(name):
            return len({
                k[len(prefix + name):].split('.')[0]
                for k in state_dict if k.startswith(prefix + name)
            })

        theirs = tuple(count(f'layer{i}.') for i in (1, 2, 4, 5)), tuple(
            count(f'spatial_path{i}.convs.') for i in (1, 2))
        ours = self.depths, tuple(len(d) for d in self.dilations)
        if any(theirs[0]) and theirs != ours:
            raise ValueError(
                f'checkpoint holds an SANet with stage depths {theirs[0]} and '
                f'spatial path lengths {theirs[1]}, but this model has '
                f'{ours[0]} and {ours[1]}: use the config of its variant')
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _up(self, x: Tensor, like: Tensor) -> Tensor:
        """Bilinear upsampling of ``x`` to the spatial size of ``like``."""
        return F.interpolate(
            x,
            size=like.shape[2:],
            mode='bilinear',
            align_corners=self.align_corners)

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Args: x (Tensor): images (N, 3, H, W), any H and W.
        Returns: tuple[Tensor]: ``(x4, d1, d2, d, x6)``."""
        half = self.split_channels
        x = self.layer1(self.stem(x))
        x = self.layer2(self.relu(x))
        x3 = self.layer3(self.relu(x))

        p1 = self.spatial_path1(self.relu(x3[:, :half]))
        x4 = self.layer4(self.relu(x3[:, half:]))
        x = x4 + self.down4(p1)
        p1 = p1 + self._up(self.relu(x4), p1)
        x = self.layer5(self.relu(x))

        d1 = x3 + p1
        d2 = self.spatial_path2(d1)
        x = x + self.down5(self.relu(d2))
        d = d2 + self._up(self.compression(self.relu(x)), d2)
        x6 = self.layer6(self.relu(x))
        return x4, d1, d2, d, x6

# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""SANet backbone: `SANet: Spatial-Assistant Encoder-Decoder Network for
Real-Time Semantic Segmentation <https://arxiv.org/abs/2309.10519>`_."""
import warnings
from typing import Dict, Optional, Sequence, Tuple

import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from mmseg.models.utils import BasicBlock, Bottleneck, resize
from mmseg.registry import MODELS
from mmseg.utils import OptConfigType


def sanet_structure(state_dict: Dict[str, Tensor],
                    prefix: str = '') -> Tuple[tuple, tuple]:
    """Tell an SANet variant from its weights' names.

    Args:
        state_dict (dict): Weights in this project's names.
        prefix (str): Prefix of the backbone's keys. Default: ''.

    Returns:
        tuple: ``(depths, path_lengths)`` as :attr:`SANet.structure`: blocks
        of layer1, 2, 4 and 5, convolutions of the two spatial paths.
    """

    def count(name):
        name = prefix + name
        return len({
            k[len(name):].split('.')[0]
            for k in state_dict if k.startswith(name)
        })

    return (tuple(count(f'layer{i}.') for i in (1, 2, 4, 5)),
            tuple(count(f'spatial_path{i}.convs.') for i in (1, 2)))


class SpatialPath(BaseModule):
    """A spatial path: an optional 1x1 projection, then one dilated
    conv3x3-BN-ReLU per dilation rate. Keeps the resolution.

    Args:
        in_channels (int): Input channels.
        channels (int): Output channels.
        dilations (Sequence[int]): One dilated 3x3 conv per rate, in order.
        norm_cfg (dict): Config of the normalization layers.
            Default: dict(type='BN').
        act_cfg (dict): Config of the activation layers.
            Default: dict(type='ReLU', inplace=True).
        init_cfg (dict, optional): Initialization config dict. Default: None.
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
            ConvModule(channels, channels, 3, padding=d, dilation=d,
                       norm_cfg=norm_cfg, act_cfg=act_cfg) for d in dilations
        ])

    def forward(self, x: Tensor) -> Tensor:
        """Forward function.

        Args:
            x (Tensor): Features (N, in_channels, H, W).

        Returns:
            Tensor: Features (N, channels, H, W).
        """
        if self.proj is not None:
            x = self.proj(x)
        return self.convs(x)


@MODELS.register_module()
class SANet(BaseModule):
    """SANet backbone.

    A deep context branch (layer1-layer6) and two dilated spatial paths at
    1/8 resolution that exchange features with it. Variants differ only in
    stage depths and dilation rates (``arch``). Loading the weights of
    another variant is an error naming both structures.

    Args:
        arch (str): 's', 'm' or 'l'. Ignored where ``depths`` and
            ``dilations`` are both given. Default: 's'.
        depths (Sequence[int], optional): Blocks of layer1, layer2 (also used
            for layer3), layer4 and layer5. Default: None (from ``arch``).
        dilations (Sequence[Sequence[int]], optional): Dilation rates of
            spatial path 1 and spatial path 2. Default: None (from ``arch``).
        in_channels (int): Input image channels. Default: 3.
        channels (int): Base channels ``c``. Default: 32.
        align_corners (bool): align_corners of the internal upsampling.
            Default: False.
        norm_cfg (dict): Config of the normalization layers.
            Default: dict(type='BN').
        act_cfg (dict): Config of the activation layers in blocks.
            Default: dict(type='ReLU', inplace=True).
        init_cfg (dict | list[dict], optional): Initialization config.
            Default: Kaiming for convolutions, 1/0 for norms.
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
                     dict(type='Kaiming', layer='Conv2d', mode='fan_out',
                          nonlinearity='relu'),
                     dict(type='Constant', val=1, bias=0,
                          layer=['_BatchNorm', 'GroupNorm'])
                 ]):
        super().__init__(init_cfg)
        if depths is None or dilations is None:
            if arch not in self.arch_settings:
                raise ValueError(f'SANet arch must be one of '
                                 f'{sorted(self.arch_settings)}, got {arch!r}')
            depths = depths or self.arch_settings[arch]['depths']
            dilations = dilations or self.arch_settings[arch]['dilations']
        if len(depths) != 4 or len(dilations) != 2:
            raise ValueError('SANet needs 4 stage depths and 2 lists of '
                             f'dilations, got {depths} and {dilations}')
        self.structure = (tuple(depths), tuple(len(d) for d in dilations))
        self.align_corners = align_corners
        self.norm_cfg = norm_cfg
        self.act_cfg = act_cfg
        c = self.channels = channels
        n1, n2, n3, n4 = depths

        # the reference's stem convolutions carry a bias before their BN
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', 'Unnecessary conv bias')
            self.stem = nn.Sequential(
                self._conv_bn(in_channels, c, act_cfg, bias=True),
                self._conv_bn(c, c, act_cfg, bias=True))
        self.relu = nn.ReLU()
        self.layer1 = self._make_layer(BasicBlock, c, c, n1)
        self.layer2 = self._make_layer(BasicBlock, c, 2 * c, n2, stride=2)
        self.layer3 = self._make_layer(BasicBlock, 2 * c, 4 * c, n2)
        self.layer4 = self._make_layer(BasicBlock, 2 * c, 4 * c, n3, stride=2)
        self.layer5 = self._make_layer(BasicBlock, 4 * c, 8 * c, n4, stride=2)
        self.layer6 = self._make_layer(Bottleneck, 8 * c, 8 * c, 1, stride=2)

        self.spatial_path1 = SpatialPath(2 * c, 4 * c, dilations[0],
                                         norm_cfg, act_cfg)
        self.spatial_path2 = SpatialPath(4 * c, 4 * c, dilations[1],
                                         norm_cfg, act_cfg)
        self.down4 = self._conv_bn(4 * c, 4 * c, None)
        self.down5 = nn.Sequential(
            self._conv_bn(4 * c, 4 * c, act_cfg),
            self._conv_bn(4 * c, 8 * c, None))
        self.compression = ConvModule(
            8 * c, 4 * c, 1, norm_cfg=norm_cfg, act_cfg=None)

    def _conv_bn(self, in_channels: int, channels: int,
                 act_cfg: OptConfigType, bias: bool = False) -> ConvModule:
        """A conv3x3 with stride 2, BN and ``act_cfg`` (None: no act)."""
        return ConvModule(in_channels, channels, 3, stride=2, padding=1,
                          bias=bias, norm_cfg=self.norm_cfg, act_cfg=act_cfg)

    def _make_layer(self, block: type, in_channels: int, channels: int,
                    num_blocks: int, stride: int = 1) -> nn.Sequential:
        """A stage of ``num_blocks`` blocks; the first takes the stride and
        the projection; in a stage of several blocks the last one ends
        without activation (the caller applies it)."""
        downsample = None
        if stride != 1 or in_channels != channels * block.expansion:
            downsample = ConvModule(in_channels, channels * block.expansion,
                                    1, stride=stride, norm_cfg=self.norm_cfg,
                                    act_cfg=None)
        cfg = dict(norm_cfg=self.norm_cfg, act_cfg=self.act_cfg)
        layers = [block(in_channels, channels, stride, downsample, **cfg)]
        for i in range(1, num_blocks):
            act_out = None if i == num_blocks - 1 else self.act_cfg
            layers.append(
                block(channels * block.expansion, channels,
                      act_cfg_out=act_out, **cfg))
        return nn.Sequential(*layers)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Refuse the weights of another SANet variant by name: stage
        depths and spatial path lengths must match this model's."""
        theirs = sanet_structure(state_dict, prefix)
        if any(theirs[0]) and theirs != self.structure:
            raise ValueError(
                f'checkpoint holds an SANet with stage depths {theirs[0]} and '
                f'spatial path lengths {theirs[1]}, but this model has '
                f'{self.structure[0]} and {self.structure[1]}: use the '
                'config of its variant')
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Forward function.

        Args:
            x (Tensor): Images (N, 3, H, W), any H and W.

        Returns:
            tuple[Tensor]: ``(x4, d1, d2, d, x6)``: layer4 output (1/16,
            4c), the three 1/8 decoder inputs (4c each) and layer6 output
            (1/64, 16c).
        """
        half = 2 * self.channels  # layer3's halves: spatial path 1, layer4
        x = self.layer1(self.stem(x))
        x = self.layer2(self.relu(x))
        x3 = self.layer3(self.relu(x))

        p1 = self.spatial_path1(self.relu(x3[:, :half]))
        x4 = self.layer4(self.relu(x3[:, half:]))
        x = x4 + self.down4(p1)
        p1 = p1 + resize(self.relu(x4), p1.shape[2:], mode='bilinear',
                         align_corners=self.align_corners)
        x = self.layer5(self.relu(x))

        d1 = x3 + p1
        d2 = self.spatial_path2(d1)
        x = x + self.down5(self.relu(d2))
        d = d2 + resize(self.compression(self.relu(x)), d2.shape[2:],
                        mode='bilinear', align_corners=self.align_corners)
        x6 = self.layer6(self.relu(x))
        return x4, d1, d2, d, x6

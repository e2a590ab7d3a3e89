# Copyright (c) sanet-mmseg contributors. All rights reserved.
from typing import Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor
from torch.nn.utils.fusion import fuse_conv_bn_weights

from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.decode_heads.pid_head import BasePIDHead
from mmseg.models.losses import accuracy
from mmseg.models.losses.utils import get_class_weight
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.utils import OptConfigType, SampleList


def _fold_bn(conv: nn.Conv2d, bn: nn.modules.batchnorm._BatchNorm) -> None:
    """Fold an eval-mode BN that reads only ``conv``'s output into ``conv``,
    in place: ``bn(conv(x))`` becomes ``conv(x)`` with a bias (torch's
    ``fuse_conv_bn_weights``)."""
    conv.weight, conv.bias = fuse_conv_bn_weights(
        conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps,
        bn.weight, bn.bias)


@MODELS.register_module()
class SADFusion(BaseModule):
    """The fusion of the spatial-assistant decoder.

    Upsamples ReLU(y) to the 1/8 features, weighs ``d`` against it with a
    horizontal + vertical attention map computed from ``d1 + d2`` (values in
    (0, 2), not clipped), and projects the sum to ``channels``.

    Args:
        in_channels (int): Channels of every input (4c).
        channels (int): Output channels (2c).
        init_cfg (dict, optional): Initialization config dict.
    """

    def __init__(self,
                 in_channels: int = 128,
                 channels: int = 64,
                 init_cfg: OptConfigType = None):
        super().__init__(init_cfg)
        self.relu = nn.ReLU()
        self.conv_h = nn.Conv2d(
            in_channels, in_channels, (1, 3), padding=(0, 1), bias=False)
        self.conv_w = nn.Conv2d(
            in_channels, in_channels, (3, 1), padding=(1, 0), bias=False)
        self.conv_out = nn.Conv2d(in_channels, channels, 1, bias=False)

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Args: inputs: ``(x4, d1, d2, d, y)`` from the APPPM neck.
        Returns: Tensor: the fused feature (N, channels, H/8, W/8)."""
        _, d1, d2, d, y = inputs
        y = resize(
            self.relu(y),
            size=d.shape[2:],
            mode='bilinear',
            align_corners=False)
        s = d1 + d2
        att = torch.sigmoid(self.conv_h(s)) + torch.sigmoid(self.conv_w(s))
        return self.conv_out(d * att + d + y * (1 - att) + y)


@MODELS.register_module()
class SADHead(BaseDecodeHead):
    """Spatial-assistant decoder (SAD) head of SANet.

    Fuses the three 1/8 features of the backbone with the upsampled APPPM
    output under a horizontal + vertical attention map, then classifies.
    In training it also runs an auxiliary head on layer4's feature and a
    boundary head on ``d``, and computes four losses from ``loss_decode``
    (in this order): auxiliary CE, main OHEM CE, boundary BCE, and the
    boundary-guided OHEM CE on pixels where the boundary head is confident.

    Args:
        in_channels (int): Channels of every input (4c). Default: 128.
        channels (int): Channels of the fused feature and of the main and
            auxiliary seg units (2c). Default: 64.
        boundary_channels (int): Channels of the boundary seg unit.
            Default: 32.
        boundary_threshold (float): Pixels whose boundary probability is
            above it take part in the boundary-guided loss. Default: 0.8.
        dropout_ratio (float): Dropout before ``conv_seg``. Default: 0
            (the reference has none).
        **kwargs: Passed to :class:`BaseDecodeHead` (``num_classes``,
            ``loss_decode``, ``align_corners``, ...).

    Inputs (forward): ``(x4, d1, d2, d, y)`` as the APPPM neck returns them.
    """

    #: The modules that only training (and ``forward_all``) uses.
    TRAINING_ONLY = ('aux_head', 'aux_cls_seg', 'boundary_head',
                     'boundary_cls_seg')

    def __init__(self,
                 in_channels: int = 128,
                 channels: int = 64,
                 boundary_channels: int = 32,
                 boundary_threshold: float = 0.8,
                 dropout_ratio: float = 0.0,
                 **kwargs):
        super().__init__(
            in_channels, channels, dropout_ratio=dropout_ratio, **kwargs)
        num_losses = len(self.loss_decode) if isinstance(
            self.loss_decode, nn.ModuleList) else 1
        if num_losses != 4:
            raise ValueError(
                'SADHead needs 4 losses in loss_decode (auxiliary CE, main '
                f'OHEM, boundary, boundary-guided OHEM), got {num_losses}')
        for loss in self.loss_decode:
            weight = get_class_weight(getattr(loss, 'class_weight', None))
            if weight is not None and len(weight) != self.num_classes:
                raise ValueError(
                    f'{loss.loss_name}: class_weight has {len(weight)} '
                    f'entries, but the head has {self.num_classes} classes: '
                    'give one weight per class, or None')
        self.boundary_threshold = boundary_threshold
        norm_cfg = self.norm_cfg or dict(type='BN')
        act_cfg = self.act_cfg

        self.fusion = SADFusion(in_channels, channels)
        self.seg_head = BasePIDHead(channels, channels, norm_cfg, act_cfg)

        self.aux_head = BasePIDHead(in_channels, channels, norm_cfg, act_cfg)
        self.aux_cls_seg = nn.Conv2d(channels, self.out_channels, 1)
        self.boundary_head = BasePIDHead(in_channels, boundary_channels,
                                         norm_cfg, act_cfg)
        self.boundary_cls_seg = nn.Conv2d(boundary_channels, 1, 1)
        self.deploy = False

    def forward_all(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """Returns (aux, main, boundary) logits at 1/16, 1/8 and 1/8, in any
        mode (used by training and by the analysis tools)."""
        main = self.seg_head(self.fusion(inputs), self.cls_seg)
        aux = self.aux_head(inputs[0], self.aux_cls_seg)
        boundary = self.boundary_head(inputs[3], self.boundary_cls_seg)
        return aux, main, boundary

    def forward(self, inputs: Sequence[Tensor]
                ) -> Union[Tensor, Tuple[Tensor, ...]]:
        """In training, (aux, main, boundary) logits; in eval, the main
        logits only (N, num_classes, H/8, W/8)."""
        if self.training:
            return self.forward_all(inputs)
        return self.seg_head(self.fusion(inputs), self.cls_seg)

    def switch_to_deploy(self) -> None:
        """Turn the head into its inference-only form, in place.

        Deletes the training-only heads (:attr:`TRAINING_ONLY`) and folds the
        main seg unit's BNs (BN-ReLU-conv3x3-BN-ReLU-conv1x1): the BN after
        the 3x3 conv into that conv, and the leading pre-activation BN
        backwards into the fusion's 1x1 projection, the only reader of
        whose output it is (exact: an affine map of a conv's output is a
        conv with a bias). The head must be in eval mode with plain BN;
        afterwards only the eval ``forward`` works (no ``loss``, no
        ``forward_all``, no training). Calling it again does nothing.
        """
        if self.deploy:
            return
        if self.training:
            raise RuntimeError('SADHead.switch_to_deploy needs eval mode '
                               '(it folds the BN running statistics)')
        seg = self.seg_head
        norms = (seg.norm, seg.conv.norm if seg.conv.with_norm else None)
        if not all(
                isinstance(bn, nn.modules.batchnorm._BatchNorm)
                and not isinstance(bn, nn.SyncBatchNorm) for bn in norms):
            raise TypeError('SADHead.switch_to_deploy folds plain BN only; '
                            'revert SyncBN first (mmengine.model.'
                            'revert_sync_batchnorm)')
        for name in self.TRAINING_ONLY:
            delattr(self, name)
        with torch.no_grad():
            _fold_bn(seg.conv.conv, seg.norm)
            seg.norm = nn.Identity()
            _fold_bn(self.fusion.conv_out, seg.conv.norm)
            setattr(seg.conv, seg.conv.norm_name, nn.Identity())
        self.deploy = True

    def _stack_batch_gt(self,
                        batch_data_samples: SampleList) -> Tuple[Tensor, ...]:
        if not all('gt_edge_map' in s for s in batch_data_samples):
            raise KeyError(
                'SADHead trains its boundary head on `gt_edge_map`, which '
                'these samples lack: add dict(type=\'GenerateEdge\', '
                'edge_width=4) to the train pipeline, before PackSegInputs')
        gt_sem_segs = torch.stack(
            [s.gt_sem_seg.data for s in batch_data_samples])
        gt_edge_maps = torch.stack(
            [s.gt_edge_map.data for s in batch_data_samples])
        return gt_sem_segs, gt_edge_maps

    def loss_by_feat(self, seg_logits: Tuple[Tensor, ...],
                     batch_data_samples: SampleList) -> dict:
        """Computes the four losses of ``loss_decode`` and the accuracy.

        The logits are resized to the label size first. The auxiliary CE is
        averaged over all pixels (ignored ones count as zero), as the
        reference does.
        """
        sem_label, bd_label = self._stack_batch_gt(batch_data_samples)
        aux, main, boundary = (
            resize(
                logit,
                size=sem_label.shape[2:],
                mode='bilinear',
                align_corners=self.align_corners) for logit in seg_logits)
        sem_label = sem_label.squeeze(1)
        bd_label = bd_label.squeeze(1)
        loss_aux, loss_sem, loss_bd, loss_sem_bd = self.loss_decode

        losses = dict()
        losses[loss_aux.loss_name] = loss_aux(
            aux,
            sem_label,
            avg_factor=sem_label.numel(),
            ignore_index=self.ignore_index)
        losses[loss_sem.loss_name] = loss_sem(main, sem_label)
        losses[loss_bd.loss_name] = loss_bd(boundary, bd_label)
        confident = torch.sigmoid(boundary[:, 0]) > self.boundary_threshold
        sem_bd_label = torch.where(confident, sem_label,
                                   torch.full_like(sem_label,
                                                   self.ignore_index))
        losses[loss_sem_bd.loss_name] = loss_sem_bd(main, sem_bd_label)
        losses['acc_seg'] = accuracy(
            main, sem_label, ignore_index=self.ignore_index)
        return losses

# Copyright (c) sanet-mmseg contributors. All rights reserved.
from typing import Tuple

from mmengine.model import BaseModule
from mmengine.registry import DefaultScope
from torch import Tensor

from mmseg.registry import MODELS
from mmseg.utils import OptConfigType

try:
    from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
except ImportError as e:
    raise ImportError(
        'SANetClsBackbone needs MMPretrain, which is not installed: install '
        "the pretrain extra (pip install -e '.[pretrain]')") from e


@MMPRETRAIN_MODELS.register_module()
class SANetClsBackbone(BaseModule):
    """SANet as an MMPretrain backbone, for ImageNet pre-training.

    The reference pre-trains the whole segmentation network: the SANet
    backbone, the APPPM neck and the SAD fusion, whose output (2c channels
    at 1/8) the classifier pools. The sub-modules are named as in the
    segmentor (``backbone``, ``neck``, ``fusion`` = ``decode_head.fusion``),
    so a checkpoint initialises a segmentor by renaming.

    Args:
        backbone (dict): Config of the ``SANet`` backbone.
            Default: dict(type='SANet', arch='s').
        neck (dict): Config of the ``APPPM`` neck.
            Default: dict(type='APPPM').
        fusion (dict): Config of the ``SADFusion``.
            Default: dict(type='SADFusion').
        init_cfg (dict, optional): Initialization config dict.
            Default: None.

    Returns (forward):
        tuple[Tensor]: the fused feature (N, 2c, H/8, W/8).
    """

    def __init__(self,
                 backbone: dict = dict(type='SANet', arch='s'),
                 neck: dict = dict(type='APPPM'),
                 fusion: dict = dict(type='SADFusion'),
                 init_cfg: OptConfigType = None):
        super().__init__(init_cfg)
        with DefaultScope.overwrite_default_scope('mmseg'):
            self.backbone = MODELS.build(backbone)
            self.neck = MODELS.build(neck)
            self.fusion = MODELS.build(fusion)

    def forward(self, x: Tensor) -> Tuple[Tensor]:
        return (self.fusion(self.neck(self.backbone(x))), )

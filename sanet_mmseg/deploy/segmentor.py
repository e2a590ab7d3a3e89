# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""A deployed model as an MMSeg segmentor, so that MMEngine's test loop,
evaluators and visualisation hooks run it unchanged."""
from typing import List, Optional, Union

from torch import Tensor

from mmseg.models.segmentors import BaseSegmentor
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.utils import OptConfigType, OptSampleList, SampleList
from .artefact import load_predictor
from .compat import check_normalisation
from .predictors import Predictor


@MODELS.register_module()
class DeployedSegmentor(BaseSegmentor):
    """An artefact of :func:`export_artefact` (or any :class:`Predictor`)
    in place of a config's model, as MMDeploy's ``End2EndModel``: inference
    only, in whole-image mode; the logits are upsampled to the input and
    then to the original image as ``EncoderDecoder`` does.

    Args:
        predictor (str | Predictor): The artefact's folder, or a predictor.
        data_preprocessor (dict, optional): The config's
            ``model.data_preprocessor``; its normalisation must be the one
            the artefact was exported with. Default: None.
        align_corners (bool, optional): Of the logits' upsampling; None:
            the artefact's. Default: None.
        threads (int): Inference threads when loading an artefact; 0: as
            many as torch uses. Default: 0.
        init_cfg (dict, optional): Unused (nothing to initialise).
            Default: None.
    """

    def __init__(self,
                 predictor: Union[str, Predictor],
                 data_preprocessor: OptConfigType = None,
                 align_corners: Optional[bool] = None,
                 threads: int = 0,
                 init_cfg: OptConfigType = None):
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if isinstance(predictor, str):
            predictor = load_predictor(predictor, threads)
        self.predictor = predictor
        meta = predictor.meta
        if align_corners is None:
            if 'align_corners' not in meta:
                raise ValueError('give align_corners: the predictor has no '
                                 'artefact meta data to take it from')
            align_corners = meta['align_corners']
        self.align_corners = align_corners
        if 'preprocess' in meta and data_preprocessor is not None:
            check_normalisation(self.data_preprocessor, meta)

    def _forward(self,
                 inputs: Tensor,
                 data_samples: OptSampleList = None) -> Tensor:
        """The logits (N, C, H/8, W/8)."""
        return self.predictor(inputs).float()

    def encode_decode(self, inputs: Tensor,
                      batch_img_metas: List[dict]) -> Tensor:
        """The logits upsampled to the (padded) input size."""
        return resize(
            self._forward(inputs).to(inputs.device),
            size=inputs.shape[2:],
            mode='bilinear',
            align_corners=self.align_corners)

    def predict(self,
                inputs: Tensor,
                data_samples: OptSampleList = None) -> SampleList:
        """Data samples with ``seg_logits`` and ``pred_sem_seg`` at the
        original image size."""
        metas = None if data_samples is None else [
            s.metainfo for s in data_samples
        ]
        return self.postprocess_result(
            self.encode_decode(inputs, metas), data_samples)

    def extract_feat(self, inputs: Tensor):
        raise NotImplementedError('a deployed model has no features')

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        raise NotImplementedError('a deployed model cannot be trained')

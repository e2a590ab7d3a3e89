# Copyright (c) sanet-mmseg contributors. All rights reserved.
from mmseg.datasets import BaseSegDataset, CityscapesDataset
from mmseg.registry import DATASETS

from .checked import CheckedDatasetMixin


@DATASETS.register_module()
class GTAVDataset(CheckedDatasetMixin, BaseSegDataset):
    """GTAV (Playing for Data) on the 19 Cityscapes classes.

    Images ``images/NAME.png``; labels ``labels/NAME_labelTrainIds.png``
    (Cityscapes trainIds, 255: ignored), as
    ``tools/dataset_converters/gtav.py`` writes them from GTAV's labelIds
    ``labels/NAME.png``.
    """
    METAINFO = CityscapesDataset.METAINFO

    def __init__(self,
                 img_suffix='.png',
                 seg_map_suffix='_labelTrainIds.png',
                 **kwargs) -> None:
        super().__init__(
            img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)

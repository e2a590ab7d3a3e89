# Copyright (c) sanet-mmseg contributors. All rights reserved.
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from .checked import CheckedDatasetMixin


@DATASETS.register_module()
class CamVidDataset(CheckedDatasetMixin, BaseSegDataset):
    """CamVid with the 11 classes of the SANet reference, in its order.

    Images ``{split}/NAME.png``; labels ``{split}_labels/NAME_trainIds.png``
    with class indices (255: void), as
    ``tools/dataset_converters/camvid.py`` writes them from the colour
    labels ``{split}_labels/NAME_L.png``.
    """
    METAINFO = dict(
        classes=('bicyclist', 'building', 'car', 'column_pole', 'fence',
                 'pedestrian', 'road', 'sidewalk', 'sign_symbol', 'sky',
                 'tree'),
        palette=[[0, 128, 192], [128, 0, 0], [64, 0, 128], [192, 192, 128],
                 [64, 64, 128], [64, 64, 0], [128, 64, 128], [0, 0, 192],
                 [192, 128, 128], [128, 128, 128], [128, 128, 0]])

    def __init__(self,
                 img_suffix='.png',
                 seg_map_suffix='_trainIds.png',
                 **kwargs) -> None:
        super().__init__(
            img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)

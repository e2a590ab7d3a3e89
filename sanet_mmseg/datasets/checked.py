# Copyright (c) sanet-mmseg contributors. All rights reserved.
from typing import List

from mmcv.transforms import LoadAnnotations
from mmengine import fileio

from mmseg.datasets import BaseSegDataset, CityscapesDataset
from mmseg.registry import DATASETS
from .transforms import CheckLabelValues


class CheckedDatasetMixin:
    """Checks for :class:`BaseSegDataset` subclasses, with errors that name
    the problem (MMSeg's datasets list what they find and fail later, or
    never):

    - a missing or empty image folder, or images without label files;
    - label maps whose size is not their image's, and label values that are
      neither a class index nor ``ignore_index``: a
      :class:`CheckLabelValues` step is put after each ``LoadAnnotations``
      of the pipeline (after ``reduce_zero_label`` and ``label_map``), which
      checks every label map as it is loaded;
    - images that cannot be decoded: ``LoadImageFromFile`` steps of the
      pipeline become :class:`CheckedLoadImageFromFile`, which names the
      file.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs['pipeline'] = [
            dict(t, type='CheckedLoadImageFromFile') if isinstance(t, dict)
            and t.get('type') == 'LoadImageFromFile' else t
            for t in kwargs.get('pipeline', [])
        ]
        super().__init__(*args, **kwargs)
        if not self.metainfo.get('classes'):
            raise ValueError(
                f'{type(self).__name__} has no classes: give them as '
                "metainfo=dict(classes=('name', ...), palette=[[r, g, b], "
                '...])')
        transforms = self.pipeline.transforms
        for i in reversed(range(len(transforms))):
            if isinstance(transforms[i], LoadAnnotations):
                transforms.insert(
                    i + 1,
                    CheckLabelValues(
                        len(self.metainfo['classes']), self.ignore_index))

    def load_data_list(self) -> List[dict]:
        img_dir = self.data_prefix.get('img_path')
        if not self.ann_file and not fileio.isdir(
                img_dir, backend_args=self.backend_args):
            raise FileNotFoundError(f'image folder not found: {img_dir}')
        data_list = super().load_data_list()
        if not data_list:
            raise FileNotFoundError(
                f'no images ending in "{self.img_suffix}" under {img_dir}')
        unlabelled = [
            d['seg_map_path'] for d in data_list if 'seg_map_path' in d
            and not fileio.exists(d['seg_map_path'], self.backend_args)
        ]
        if unlabelled:
            raise FileNotFoundError(
                f'{len(unlabelled)} of {len(data_list)} images under '
                f'{img_dir} have no label file, e.g. ' +
                ', '.join(unlabelled[:3]))
        return data_list


@DATASETS.register_module()
class CheckedCityscapesDataset(CheckedDatasetMixin, CityscapesDataset):
    """MMSeg's :class:`CityscapesDataset` with the checks of
    :class:`CheckedDatasetMixin`."""


@DATASETS.register_module()
class CheckedSegDataset(CheckedDatasetMixin, BaseSegDataset):
    """MMSeg's generic :class:`BaseSegDataset` (your own classes, given as
    ``metainfo=dict(classes=..., palette=...)``) with the checks of
    :class:`CheckedDatasetMixin`. See ``docs/custom_dataset.md``."""

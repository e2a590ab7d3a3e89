# Copyright (c) sanet-mmseg contributors. All rights reserved.
from typing import List

from mmengine import fileio

from mmseg.datasets import CityscapesDataset
from mmseg.registry import DATASETS


class CheckedDatasetMixin:
    """Refuse a dataset folder that is missing or empty, or that has images
    without label files, naming the paths (MMSeg's datasets list what they
    find and fail later, or never). For :class:`BaseSegDataset` subclasses."""

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
    """MMSeg's :class:`CityscapesDataset` with the folder checks of
    :class:`CheckedDatasetMixin`."""

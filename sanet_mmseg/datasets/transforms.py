# Copyright (c) sanet-mmseg contributors. All rights reserved.
from typing import Optional, Tuple

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform, LoadImageFromFile

from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class CheckLabelValues(BaseTransform):
    """Stop on a label map whose size differs from its image's (naming both
    files and sizes), and on label values that are neither a class index nor
    the ignore index (naming the file, the values, the classes and the
    ignore index).

    Without the first, MMSeg's Resize rescales such a label to the image
    silently (or GenerateEdge fails with an IndexError). Without the second
    such a value reaches the loss as ``IndexError: Target 50 is
    out of bounds`` (on CUDA: "device-side assert triggered"), and IoUMetric
    counts its pixels only against the predicted class. The Checked datasets
    put it after ``LoadAnnotations`` themselves; with other datasets add it
    there.

    Required keys: ``gt_seg_map``; ``ori_shape`` (the loaded image's size,
    checked where present), ``img_path`` and ``seg_map_path`` (for the
    messages).

    Args:
        num_classes (int): Number of classes: valid labels are
            ``0 .. num_classes - 1``.
        ignore_index (int): The label that is ignored. Default: 255.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255):
        super().__init__()
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def transform(self, results: dict) -> dict:
        seg = results['gt_seg_map']
        image = results.get('ori_shape')
        if image is not None and tuple(seg.shape[:2]) != tuple(image[:2]):
            raise ValueError(
                f'label {results.get("seg_map_path")} is {seg.shape[1]}x'
                f'{seg.shape[0]} (WxH) but its image {results.get("img_path")}'
                f' is {image[1]}x{image[0]}: a label map must have the size '
                'of its image')
        if seg.dtype == np.uint8:  # 3x faster than np.unique
            values = np.flatnonzero(np.bincount(seg.ravel(), minlength=256))
        else:
            values = np.unique(seg)
        bad = values[(values >= self.num_classes)
                     & (values != self.ignore_index) | (values < 0)]
        if bad.size:
            raise ValueError(
                f'{results.get("seg_map_path", "a label map")} holds label '
                f'values {bad.tolist()}, but the dataset has '
                f'{self.num_classes} classes (0-{self.num_classes - 1}) and '
                f'ignores {self.ignore_index}: give the dataset all its '
                'classes (metainfo), or map these values to classes or to '
                'the ignore index (e.g. labelTrainIds, not labelIds, for '
                'Cityscapes; reduce_zero_label for 1-based labels)')
        return results

    def __repr__(self):
        return (f'{self.__class__.__name__}(num_classes={self.num_classes}, '
                f'ignore_index={self.ignore_index})')


@TRANSFORMS.register_module()
class CheckedLoadImageFromFile(LoadImageFromFile):
    """MMCV's ``LoadImageFromFile`` that names the file it cannot decode (an
    empty or truncated file, or no image) instead of OpenCV's
    ``!buf.empty()``. The Checked datasets use it in place of
    ``LoadImageFromFile`` in their pipelines."""

    def transform(self, results: dict) -> dict:
        try:
            out = super().transform(results)
        except Exception as e:
            raise ValueError(
                f'cannot read image {results["img_path"]}: {e}') from e
        if out is None and not self.ignore_empty:
            raise ValueError(f'cannot read image {results["img_path"]}')
        return out


@TRANSFORMS.register_module()
class PadSegFields(BaseTransform):
    """Pad the image and every map of ``seg_fields`` at the bottom and
    right up to at least ``size``, each map with its own value, as the
    authors pad a resized frame smaller than the crop before cropping (and
    before normalising: ``img=0`` is black). MMCV's ``Pad`` pads to an
    exact size and all maps with one value.

    Modified keys: ``img``, the ``seg_fields`` maps, ``img_shape``,
    ``pad_shape`` (where padded).

    Args:
        size (tuple[int, int]): The smallest (w, h) to pad to.
        pad_val (dict): ``img``: the image's value; a map's key (e.g.
            ``gt_edge_map``): its value; ``seg``: the other maps' value.
            Default: dict(img=0, seg=255).
    """

    def __init__(self, size: Tuple[int, int], pad_val: Optional[dict] = None):
        super().__init__()
        self.size = tuple(size)
        self.pad_val = dict(img=0, seg=255) if pad_val is None else pad_val

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        shape = (max(h, self.size[1]), max(w, self.size[0]))
        if shape == (h, w):
            return results
        value = self.pad_val.get('img', 0)
        if img.ndim == 3 and isinstance(value, (int, float)):
            value = (value, ) * img.shape[2]
        results['img'] = mmcv.impad(img, shape=shape, pad_val=value)
        for key in results.get('seg_fields', []):
            results[key] = mmcv.impad(
                results[key],
                shape=shape,
                pad_val=self.pad_val.get(key, self.pad_val.get('seg', 255)))
        results['img_shape'] = results['pad_shape'] = shape
        return results

    def __repr__(self):
        return (f'{self.__class__.__name__}(size={self.size}, '
                f'pad_val={self.pad_val})')

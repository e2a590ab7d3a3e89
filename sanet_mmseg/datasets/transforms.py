# Copyright (c) sanet-mmseg contributors. All rights reserved.
from typing import Optional

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from mmseg.registry import TRANSFORMS


def multi_class_boundary(label: np.ndarray,
                         width: int = 3,
                         ignore_index: int = 255,
                         num_classes: Optional[int] = None) -> np.ndarray:
    """Multi-category boundaries (MSFNet's idea): a pixel whose
    ``width`` x ``width`` window holds another (valid) class is a boundary
    pixel and carries the class it borders: the other class most present in
    its window. Returns a map of class ids, ``ignore_index`` elsewhere."""
    label = np.asarray(label)
    classes = [
        c for c in np.unique(label)
        if c != ignore_index and (num_classes is None or c < num_classes)
    ]
    counts = np.stack([
        cv2.boxFilter((label == c).astype(np.float32), -1, (width, width),
                      normalize=False, borderType=cv2.BORDER_CONSTANT)
        for c in classes
    ]) if classes else np.zeros((0, *label.shape), np.float32)
    for i, c in enumerate(classes):  # a pixel does not border its own class
        counts[i][label == c] = 0
    out = np.full(label.shape, ignore_index, np.uint8)
    if classes:
        best = counts.argmax(0)
        border = (counts.max(0) > 0) & (label != ignore_index)
        out[border] = np.asarray(classes, np.uint8)[best[border]]
    return out


@TRANSFORMS.register_module()
class GenerateMultiClassEdge(BaseTransform):
    """Multi-category boundaries of the label map (MSFNet's idea).

    A pixel whose ``edge_width`` x ``edge_width`` window holds another class
    is a boundary pixel and carries the class it borders; other pixels get
    ``ignore_index``. With ``binary=True`` the map is 1 on boundary pixels
    and 0 elsewhere, as SADHead's boundary loss expects.

    Required keys: ``gt_seg_map``. Added key: ``key`` (uint8, H x W),
    ``gt_edge_map`` by default, which ``PackSegInputs`` packs.

    Args:
        edge_width (int): Window size. Default: 3.
        ignore_index (int): Ignored label. Default: 255.
        binary (bool): Write a 0/1 map instead of class ids.
            Default: False.
        key (str): Where to write the map. Default: 'gt_edge_map'.
    """

    def __init__(self,
                 edge_width: int = 3,
                 ignore_index: int = 255,
                 binary: bool = False,
                 key: str = 'gt_edge_map'):
        super().__init__()
        self.edge_width = edge_width
        self.ignore_index = ignore_index
        self.binary = binary
        self.key = key

    def transform(self, results: dict) -> dict:
        edges = multi_class_boundary(results['gt_seg_map'], self.edge_width,
                                     self.ignore_index)
        if self.binary:
            edges = (edges != self.ignore_index).astype('uint8')
        results[self.key] = edges
        return results

    def __repr__(self):
        return (f'{self.__class__.__name__}(edge_width={self.edge_width}, '
                f'ignore_index={self.ignore_index}, binary={self.binary}, '
                f'key={self.key!r})')


@TRANSFORMS.register_module()
class CheckLabelValues(BaseTransform):
    """Stop on label values that are neither a class index nor the ignore
    index, naming the file, the values, the classes and the ignore index.

    Without it such a value reaches the loss as ``IndexError: Target 50 is
    out of bounds`` (on CUDA: "device-side assert triggered"), and IoUMetric
    counts its pixels only against the predicted class. The Checked datasets
    put it after ``LoadAnnotations`` themselves; with other datasets add it
    there.

    Required keys: ``gt_seg_map``, ``seg_map_path`` (for the message).

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

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
        key (str): Where to write the map.
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

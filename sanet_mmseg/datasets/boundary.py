# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Boundary maps of label maps: the authors' binary training target and
MSFNet's multi-category boundaries (for the analysis tool)."""
from typing import Optional

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from mmseg.registry import TRANSFORMS


def label_boundary(label: np.ndarray,
                   edge_width: int = 4,
                   border: int = 6) -> np.ndarray:
    """The authors' boundary target (``gen_sample`` of their
    ``datasets/base_dataset.py``): Canny edges of the label map (any change
    of value, the ignore index included), none within ``border`` pixels of
    the frame's edge, dilated by an ``edge_width`` x ``edge_width`` square.

    Args:
        label (np.ndarray): uint8 label map (H, W).
        edge_width (int): Side of the dilation square. Default: 4.
        border (int): Width of the frame's margin without edges. Default: 6.

    Returns:
        np.ndarray: uint8 (H, W), 1 on boundary pixels, 0 elsewhere.
    """
    edges = cv2.Canny(np.ascontiguousarray(label, np.uint8), 0.1, 0.2)
    if border:
        inner = np.zeros_like(edges)
        inner[border:-border, border:-border] = 1
        edges *= inner
    kernel = np.ones((edge_width, edge_width), np.uint8)
    return (cv2.dilate(edges, kernel) > 50).astype(np.uint8)


@TRANSFORMS.register_module()
class GenerateCannyEdge(BaseTransform):
    """The authors' boundary target, made from the full-resolution label
    map before any resize or crop (:func:`label_boundary`) and added to
    ``seg_fields``, so that MMSeg's Resize, RandomCrop and RandomFlip and
    :class:`PadSegFields` treat it as the label (its width then follows
    the random scale, as in the authors' training).

    MMSeg's ``GenerateEdge(edge_width=4)`` after the crop is the other
    option: a boundary of a fixed width on the crop.

    Required keys: ``gt_seg_map``, ``seg_fields``. Added key:
    ``gt_edge_map`` (uint8 0/1, H x W), which ``PackSegInputs`` packs.

    Args:
        edge_width (int): Side of the dilation square. Default: 4.
        border (int): Frame margin without edges. Default: 6.
    """

    def __init__(self, edge_width: int = 4, border: int = 6):
        super().__init__()
        self.edge_width = edge_width
        self.border = border

    def transform(self, results: dict) -> dict:
        results['gt_edge_map'] = label_boundary(results['gt_seg_map'],
                                                self.edge_width, self.border)
        results['seg_fields'].append('gt_edge_map')
        return results

    def __repr__(self):
        return (f'{self.__class__.__name__}(edge_width={self.edge_width}, '
                f'border={self.border})')


def multi_class_boundary(label: np.ndarray,
                         width: int = 3,
                         ignore_index: int = 255,
                         num_classes: Optional[int] = None) -> np.ndarray:
    """Multi-category boundaries (MSFNet's idea, drawn by
    ``tools/analysis_tools/multi_class_boundary.py``; no training target of
    SANet): a pixel whose ``width`` x ``width`` window holds another
    (valid) class is a boundary pixel and carries the class it borders: the
    other class most present in its window. Returns a map of class ids,
    ``ignore_index`` elsewhere."""
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

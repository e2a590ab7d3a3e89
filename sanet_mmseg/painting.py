# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Painting predicted labels over images: video frames cheaply (OpenCV,
soft class boundaries), for the video demo, where painting shares the CPU
with inference; and labels blended as MMSeg's visualizer blends them, in
bands of rows (tools/predict.py, the image and web demos)."""
from typing import Sequence, Tuple

import cv2
import numpy as np
from torch import Tensor


def palette_bgr(palette: Sequence[Sequence[int]]) -> np.ndarray:
    """A (256, 3) uint8 BGR lookup table of an RGB palette (a dataset's
    ``palette``); the ids it does not name are black."""
    table = np.zeros((256, 3), np.uint8)
    if len(palette):
        colours = np.asarray(palette, np.uint8)
        if colours.ndim != 2 or colours.shape[1] != 3 or len(colours) > 256:
            raise ValueError('a palette is up to 256 RGB triples, got shape '
                             f'{colours.shape}')
        table[:len(colours)] = colours[:, ::-1]
    return table


def resize(img: np.ndarray, size: Tuple[int, int],
           align_corners: bool) -> np.ndarray:
    """``img`` resized bilinearly to ``size`` (W, H), the corner pixels
    aligned or not, as the evaluation resizes the logits."""
    if not align_corners:
        return cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
    h, w = img.shape[:2]
    scale = np.float32([[(w - 1) / max(size[0] - 1, 1), 0, 0],
                        [0, (h - 1) / max(size[1] - 1, 1), 0]])
    return cv2.warpAffine(img, scale, size,
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def paint(frame: np.ndarray,
          logits: Tensor,
          colours: np.ndarray,
          opacity: float,
          size: Tuple[int, int],
          align_corners: bool = True) -> np.ndarray:
    """The frame with the labels of ``logits`` blended in.

    The labels are the argmax of the logits (C, h, w) resized bilinearly to
    ``size`` (W, H); they are coloured by ``colours`` (:func:`palette_bgr`)
    and the colours resized bilinearly to the frame, so that class
    boundaries are drawn soft over a few pixels and elsewhere the colours
    are those of the evaluation's labels (logits resized to the frame, then
    argmax).

    Args:
        frame (np.ndarray): BGR frame (H, W, 3) uint8.
        logits (Tensor): Logits (C, h, w) on the CPU.
        colours (np.ndarray): (256, 3) BGR lookup table.
        opacity (float): Weight of the colours, in (0, 1].
        size (tuple[int, int]): (W, H) at which the argmax is taken.
        align_corners (bool): Of the resizing, as in the evaluation.
            Default: True.
    """
    scores = resize(np.ascontiguousarray(logits.permute(1, 2, 0).numpy()),
                    size, align_corners)
    labels = scores.argmax(-1) if scores.ndim == 3 else \
        np.zeros(scores.shape, np.int64)  # OpenCV drops a single channel
    painted = resize(colours[labels], (frame.shape[1], frame.shape[0]),
                     align_corners)
    return cv2.addWeighted(frame, 1 - opacity, painted, opacity, 0)


def draw_text(img: np.ndarray, text: str) -> None:
    """White text on a black box at the top left, sized to the frame, in
    place."""
    scale = max(0.4, img.shape[1] / 1280)
    thickness = max(1, round(scale * 1.5))
    (width, height), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX,
                                            scale, thickness)
    pad = int(6 * scale)
    cv2.rectangle(img, (0, 0), (width + 2 * pad, height + base + 2 * pad),
                  (0, 0, 0), -1)
    cv2.putText(img, text, (pad, pad + height), cv2.FONT_HERSHEY_SIMPLEX,
                scale, (255, 255, 255), thickness, cv2.LINE_AA)


def blend_labels(img: np.ndarray,
                 labels: np.ndarray,
                 palette: np.ndarray,
                 opacity: float,
                 rows: int = 256) -> np.ndarray:
    """MMSeg's ``SegLocalVisualizer`` picture without class names (the
    image blended in float64 with each pixel's class colour, black for ids
    without one, truncated to uint8), looked up in a table of every
    (class, value) pair per channel, ``rows`` image rows at a time: no
    full-size float64 copies (1.5 GB each at 8000x8000), 3x faster.

    Args:
        img (np.ndarray): RGB image (H, W, 3) uint8.
        labels (np.ndarray): Class ids (H, W) uint8.
        palette (np.ndarray): RGB colours (classes, 3).
        opacity (float): Weight of the colours.
        rows (int): Rows per band. Default: 256.
    """
    colours = np.zeros((256, 3), np.float64)
    colours[:len(palette)] = palette
    values = np.arange(256, dtype=np.float64)
    # table[channel, (class << 8) | value]
    table = (values * (1 - opacity) + colours.T[:, :, None] * opacity)
    table = table.astype(np.uint8).reshape(3, -1)
    out = np.empty_like(img)
    for top in range(0, img.shape[0], rows):
        band = slice(top, top + rows)
        index = labels[band].astype(np.uint16) << 8
        for c in range(3):
            out[band, :, c] = table[c].take(index | img[band, :, c])
    return out

# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Labels of logits as the evaluation computes them (resized bilinearly,
then the argmax), fast and within a memory bound: MMSeg's
``inference_model`` resizes the logits (classes x H x W float32) to the
image before the argmax, 5.8 GB for a 4000x4000 image; here the labels are
resized instead when the logits would be large, and an upsampling by a
power of two computes only the pixels whose label is in doubt."""
import functools
import math
from typing import Optional, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from mmseg.apis.utils import _preprare_data
from mmseg.models import BaseSegmentor
from mmseg.models.utils import resize
from torch import Tensor

# full-size logits up to this size are resized as MMSeg does (same labels)
MAX_LOGITS_BYTES = 256 * 2**20


def segment_image(model: BaseSegmentor,
                  img: np.ndarray,
                  max_logits_bytes: int = MAX_LOGITS_BYTES) -> np.ndarray:
    """The labels (H, W, uint8) of an image by the model's test pipeline.

    Where the logits at the image's size take at most ``max_logits_bytes``
    they are resized to it before the argmax, as in MMSeg's
    ``inference_model`` (the same labels); otherwise the argmax is taken at
    the model's input size and the labels are resized to the image
    (nearest), which differs from MMSeg's only along class boundaries.

    Args:
        model (BaseSegmentor): The segmentor of ``mmseg.apis.init_model``.
        img (np.ndarray): BGR image (H, W, 3), e.g. of
            :func:`sanet_mmseg.fileio.read_image`.
        max_logits_bytes (int): Memory bound of the full-size logits.
    """
    data, _ = _preprare_data(img, model)
    with torch.no_grad():
        data = model.data_preprocessor(data, False)
        metas = [s.metainfo for s in data['data_samples']]
        logits = model.inference(data['inputs'], metas)[0]
    h, w = metas[0]['img_shape']
    return labels_of_logits(logits[:, :h, :w], img.shape[:2],
                            model.align_corners, max_logits_bytes)


def labels_of_logits(logits: Tensor,
                     size: Tuple[int, int],
                     align_corners: bool,
                     max_logits_bytes: int = MAX_LOGITS_BYTES) -> np.ndarray:
    """The labels (H, W, uint8) at ``size`` (H, W) of logits (C, h, w) at
    the model's input size (padding removed), within the memory bound of
    :func:`segment_image`: resized bilinearly to ``size`` and then the
    argmax where that takes at most ``max_logits_bytes``, else the argmax
    resized (nearest)."""
    height, width = size
    if (height, width) == tuple(logits.shape[1:]):
        return logits.argmax(0).numpy().astype(np.uint8)
    if logits.shape[0] * height * width * 4 <= max_logits_bytes:
        logits = resize(
            logits[None], (height, width),
            mode='bilinear',
            align_corners=align_corners,
            warning=False)[0]
        return logits.argmax(0).numpy().astype(np.uint8)
    labels = logits.argmax(0).numpy().astype(np.uint8)
    return cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)


def argmax_upsampled(logits: Tensor, size: Tuple[int, int],
                     align_corners: bool) -> np.ndarray:
    """The labels (H, W, uint8) of logits (C, h, w) resized bilinearly to
    ``size`` (H, W): equal to ``F.interpolate`` of the (contiguous) logits
    and then the argmax (the first class of a tie), computed without the
    full-size logits (about 10x faster for SANet's logits to its input).

    Each output pixel is a convex combination of the 2x2 logits around it
    (a cell). A cell whose four pixels have the same argmax, each by more
    than the resize's rounding, has that label throughout. In the other
    cells only the classes that can win (whose greatest value there
    reaches the greatest least value of a class) are resized, pixel by
    pixel, with the arithmetic of PyTorch's CPU kernel (its weights, and
    its fused multiply-adds where :func:`_kernel_rounding` finds them), so
    to the last bit. Where that kernel is not the one ``F.interpolate``
    runs (3 classes or fewer, outputs of H + W <= 128) the logits are
    resized in full.
    """
    logits = logits.float().contiguous()
    channels, h, w = logits.shape
    height, width = size
    largest = float(logits.abs().max())  # nan or inf where not finite
    fused = _kernel_rounding()
    if (fused is None or not 4 <= channels <= 256 or min(h, w) < 2
            or height + width <= 128 or not math.isfinite(largest)):
        return F.interpolate(
            logits[None], size, mode='bilinear',
            align_corners=align_corners)[0].argmax(0).numpy().astype(
                np.uint8)
    # a resized value is rounded by less than 2e-7 of the largest logit
    tol = 1e-6 * max(largest, 1.)
    top, best = logits.topk(2, dim=0)
    best, sure = best[0], top[0] - top[1] > tol
    corner = best[:-1, :-1]
    agree = ((corner == best[1:, :-1]) & (corner == best[:-1, 1:])
             & (corner == best[1:, 1:]) & sure[:-1, :-1] & sure[1:, :-1]
             & sure[:-1, 1:] & sure[1:, 1:]).numpy()
    ys, xs = (_source_weights(n, m, align_corners)
              for n, m in ((height, h), (width, w)))
    # the cell of each output row and column
    cell_y, cell_x = (np.minimum(i0, m - 2)
                      for (i0, *_), m in ((ys, h), (xs, w)))
    rows = np.bincount(cell_y, minlength=h - 1)
    cols = np.bincount(cell_x, minlength=w - 1)
    labels = np.repeat(np.repeat(corner.numpy().astype(np.uint8), rows, 0),
                       cols, 1)
    r, s = (~agree).nonzero()
    if not len(r):
        return labels
    # the classes that can win in a cell, in ascending order
    corners = logits.view(channels, -1)[:, torch.from_numpy(
        (r * w + s)[:, None] + [0, 1, w, w + 1])]  # (C, N, 4)
    candidates = (corners.amax(2) >= corners.amin(2).amax(0) - tol).T
    counts = candidates.sum(1)
    # per axis, each cell's output rows (columns) as (by, N): from its
    # first on, as many as the most any cell has (valid: the cell's); of
    # each, whether its two source rows are the cell's second, and their
    # weights
    axes = []
    for (i0, i1, w0, w1), count, first, size in (
            (ys, rows, r, height), (xs, cols, s, width)):
        start = (np.cumsum(count) - count)[first]
        out = start + np.arange(count.max())[:, None]
        valid = out < start + count[first]
        out = np.minimum(out, size - 1)
        axes.append((out, valid) + tuple(torch.from_numpy(a) for a in (
            i0[out] > first, i1[out] > first, w0[out], w1[out])))
    (out_y, valid_y, iy0, iy1, wy0, wy1), (out_x, valid_x, ix0, ix1, wx0,
                                           wx1) = axes
    # below, the cells are the last dimension
    flat = logits.view(-1)
    corner_index = torch.tensor([[0, 1], [w, w + 1]])[:, :, None] + \
        torch.from_numpy(r * w + s)
    for k in counts.unique().tolist():
        sel = (counts == k).nonzero()[:, 0]
        classes = candidates[sel].nonzero()[:, 1].view(-1, k).T.contiguous()
        if k == 1:
            winners = classes[:, None, :]
        else:
            # the 2x2 values (k, 2, 2, n), along x to (k, 2, bx, n), along
            # y to (k, by, bx, n), as the kernel computes them
            v = flat.take(classes[:, None, None] * (h * w)
                          + corner_index[:, :, sel])
            v = _lerp(*(_pick(i[:, sel], v[:, :, :1], v[:, :, 1:])
                        for i in (ix0, ix1)), wx0[:, sel], wx1[:, sel],
                      fused)
            v = _lerp(*(_pick(i[:, None, sel], v[:, :1], v[:, 1:])
                        for i in (iy0, iy1)), wy0[:, None, sel],
                      wy1[:, None, sel], fused)
            best, index = v[0], torch.zeros(v.shape[1:], dtype=torch.long)
            for j in range(1, k):  # the first of a tie, as argmax
                index = torch.where(v[j] > best, j, index)
                best = torch.maximum(best, v[j])
            winners = classes.take(index * len(sel) + torch.arange(len(sel)))
        sel = sel.numpy()
        mask = valid_y[:, None, sel] & valid_x[None, :, sel]
        labels[np.broadcast_to(out_y[:, None, sel], mask.shape)[mask],
               np.broadcast_to(out_x[None, :, sel], mask.shape)[mask]] = \
            np.broadcast_to(winners.numpy(), mask.shape)[mask]
    return labels


def _source_weights(out_size: int, in_size: int, align_corners: bool
                    ) -> Tuple[np.ndarray, ...]:
    """(index0, index1, weight0, weight1) of the two source pixels of each
    output index of a bilinear resize, as PyTorch's CPU kernel computes
    them (``compute_source_index_and_lambda``, float32)."""
    index = np.arange(out_size)
    if out_size == in_size:
        return (index, index, np.ones(out_size, np.float32),
                np.zeros(out_size, np.float32))
    f32 = np.float32
    if align_corners:
        scale = f32(in_size - 1) / f32(max(out_size - 1, 1))
        source = scale * index.astype(f32)
    else:
        scale = f32(in_size) / f32(out_size)
        # scale * (i + 0.5) - 0.5 as one fused multiply-add, exact in
        # float64 and then rounded (where the kernel does not fuse it,
        # _kernel_rounding finds no match and the fast path is off)
        source = np.maximum(
            ((index + 0.5) * np.float64(scale) - 0.5).astype(f32), f32(0))
    index0 = np.minimum(np.floor(source).astype(np.int64), in_size - 1)
    weight1 = np.clip(source - index0.astype(f32), f32(0), f32(1))
    index1 = index0 + (index0 < in_size - 1)
    return index0, index1, f32(1) - weight1, weight1


def _pick(second: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``b`` where ``second``, else ``a`` (broadcast; one of them where
    ``second`` is all the same)."""
    if not second.any():
        return a
    return b if second.all() else torch.where(second, b, a)


def _lerp(a: Tensor, b: Tensor, w0: Tensor, w1: Tensor,
          fused: bool) -> Tensor:
    """``a * w0 + b * w1`` of float32 tensors, rounded as PyTorch's
    bilinear kernel rounds it: as ``fma(a, w0, b * w1)`` (``fused``: the
    exact product plus the rounded one in float64, then rounded to float32;
    exact but for double rounding, < 1e-8 of values) or after each
    operation."""
    if fused:
        return (a.double() * w0.double() + b * w1).float()
    return a * w0 + b * w1


@functools.lru_cache()
def _kernel_rounding() -> Optional[bool]:
    """Whether PyTorch's CPU bilinear kernel (channels first, float32)
    rounds fused multiply-adds (True: its AVX-512 build, measured) or each
    operation (False), found by resizing random logits both ways;
    None where neither matches it to the last bit (the fast path of
    :func:`argmax_upsampled` is then off)."""
    logits = torch.randn(
        4, 13, 17, generator=torch.Generator().manual_seed(0)) * 10
    for fused in (True, False):
        for align_corners in (True, False):
            expected = F.interpolate(logits[None], (100, 333),
                                     mode='bilinear',
                                     align_corners=align_corners)[0]
            ys, xs = (_source_weights(n, m, align_corners)
                      for n, m in ((100, 13), (333, 17)))
            y0, y1, wy0, wy1 = (torch.from_numpy(a) for a in ys)
            x0, x1, wx0, wx1 = (torch.from_numpy(a) for a in xs)
            v00, v01, v10, v11 = (logits[:, i[:, None], j]
                                  for i in (y0, y1) for j in (x0, x1))
            values = _lerp(_lerp(v00, v01, wx0, wx1, fused),
                           _lerp(v10, v11, wx0, wx1, fused), wy0[:, None],
                           wy1[:, None], fused)
            if not torch.equal(values, expected):
                break
        else:
            return fused
    return None

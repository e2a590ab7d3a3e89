# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Segmenting one image within a memory bound: MMSeg's ``inference_model``
resizes the logits (classes x H x W float32) to the image before the argmax,
5.8 GB for a 4000x4000 image; here the labels are resized instead when the
logits would be large."""
import cv2
import numpy as np
import torch
from mmseg.apis.utils import _preprare_data
from mmseg.models import BaseSegmentor
from mmseg.models.utils import resize

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
    logits = logits[:, :h, :w]
    height, width = img.shape[:2]
    if logits.shape[0] * height * width * 4 <= max_logits_bytes:
        logits = resize(
            logits[None], (height, width),
            mode='bilinear',
            align_corners=model.align_corners,
            warning=False)[0]
        return logits.argmax(0).numpy().astype(np.uint8)
    labels = logits.argmax(0).numpy().astype(np.uint8)
    return cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)


def blend_labels(img: np.ndarray,
                 labels: np.ndarray,
                 palette: np.ndarray,
                 opacity: float,
                 rows: int = 256) -> np.ndarray:
    """MMSeg's ``SegLocalVisualizer`` picture without class names (the
    image blended in float64 with each pixel's class colour, black for ids
    without one), computed ``rows`` image rows at a time instead of in
    full-size float64 copies (1.5 GB each at 8000x8000).

    Args:
        img (np.ndarray): RGB image (H, W, 3) uint8.
        labels (np.ndarray): Class ids (H, W) uint8.
        palette (np.ndarray): RGB colours (classes, 3).
        opacity (float): Weight of the colours.
        rows (int): Rows per band. Default: 256.
    """
    table = np.zeros((256, 3), np.float64)
    table[:len(palette)] = palette
    out = np.empty_like(img)
    for top in range(0, img.shape[0], rows):
        band = slice(top, top + rows)
        out[band] = (img[band] * (1 - opacity) +
                     table[labels[band]] * opacity).astype(np.uint8)
    return out

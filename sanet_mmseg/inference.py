# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Segmenting one image within a memory bound: MMSeg's ``inference_model``
resizes the logits (classes x H x W float32) to the image before the argmax,
5.8 GB for a 4000x4000 image; here the labels are resized instead when the
logits would be large."""
from typing import Tuple

import cv2
import numpy as np
import torch
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

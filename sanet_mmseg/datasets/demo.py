# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""A generated street-scene dataset in the Cityscapes layout (for the demo
and for tests on machines without Cityscapes). Its label maps hold
Cityscapes trainIds, so Cityscapes configs read it as it is; the demo config
trains on the seven classes drawn (:data:`DEMO_METAINFO`)."""
import os
import os.path as osp
from typing import Dict, Tuple

import mmcv
import numpy as np
from PIL import Image

from mmseg.datasets import CityscapesDataset
from ..video import VideoFile

# trainId -> (labelId, base BGR colour) of the classes the scenes contain
CLASSES = {
    0: (7, (128, 64, 128)),  # road
    1: (8, (232, 35, 244)),  # sidewalk
    2: (11, (70, 70, 70)),  # building
    8: (21, (35, 142, 107)),  # vegetation
    10: (23, (180, 130, 70)),  # sky
    11: (24, (60, 20, 220)),  # person
    13: (26, (142, 0, 0)),  # car
}
CITIES = {'train': 'demotown', 'val': 'democity'}
# The Cityscapes classes drawn, in trainId order, with their palette: as a
# dataset's ``metainfo`` (configs/sanet/sanet-s_demo.py), MMSeg's
# BaseSegDataset maps trainId t to DEMO_METAINFO['classes'].index(name of t)
# and every other trainId to 255.
DEMO_METAINFO = dict(
    classes=tuple(CityscapesDataset.METAINFO['classes'][t] for t in CLASSES),
    palette=[CityscapesDataset.METAINFO['palette'][t] for t in CLASSES])


def draw_scene(rng: np.random.Generator, width: int,
               height: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one frame. Returns a BGR image (H, W, 3), its trainIds and the
    instance number (1, 2, ...) of each car and person pixel (0 elsewhere).
    """
    label = np.full((height, width), 10, np.uint8)  # sky
    instance = np.zeros((height, width), np.int32)
    horizon = int(height * rng.uniform(0.4, 0.55))
    x = 0
    while x < width:  # a row of buildings, some trees between them
        w = int(width * rng.uniform(0.08, 0.2))
        top = int(horizon * rng.uniform(0.1, 0.6))
        label[top:horizon, x:x + w] = 2 if rng.random() < 0.75 else 8
        x += w + int(width * rng.uniform(0, 0.05))
    label[horizon:] = 0  # road
    walk = horizon + int((height - horizon) * rng.uniform(0.1, 0.25))
    label[horizon:walk] = 1  # sidewalk
    for _ in range(rng.integers(1, 4)):  # cars on the road
        w = int(width * rng.uniform(0.1, 0.2))
        h = int(w * rng.uniform(0.4, 0.6))
        x0 = int(rng.uniform(0, width - w))
        y1 = int(rng.uniform(walk + h // 2, height))
        label[max(y1 - h, 0):y1, x0:x0 + w] = 13
        instance[max(y1 - h, 0):y1, x0:x0 + w] = instance.max() + 1
    for _ in range(rng.integers(0, 3)):  # people on the sidewalk
        w = max(int(width * 0.02), 2)
        h = int(height * rng.uniform(0.12, 0.2))
        x0 = int(rng.uniform(0, width - w))
        label[max(walk - h, 0):walk, x0:x0 + w] = 11
        instance[max(walk - h, 0):walk, x0:x0 + w] = instance.max() + 1

    image = np.zeros((height, width, 3), np.float32)
    for train_id, (_, colour) in CLASSES.items():
        tint = np.array(colour, np.float32) + rng.normal(0, 12, 3)
        image[label == train_id] = tint
    yy, xx = np.mgrid[0:height, 0:width]
    windows = ((yy // 6) % 3 == 0) & ((xx // 5) % 3 == 0) & (label == 2)
    image[windows] *= 0.6  # building windows
    leaves = (np.sin(xx * 0.9) * np.cos(yy * 1.1) > 0.3) & (label == 8)
    image[leaves] *= 0.75
    image += rng.normal(0, 10, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), label, instance


def make_demo_dataset(root: str,
                      num_train: int = 24,
                      num_val: int = 8,
                      size: Tuple[int, int] = (512, 256),
                      seed: int = 0) -> Dict[str, int]:
    """Write the dataset under ``root``: ``leftImg8bit/{split}/CITY`` and
    ``gtFine/{split}/CITY`` with ``labelTrainIds``, ``labelIds`` and
    ``instanceIds`` maps (what Cityscapes' official evaluator reads).

    Args:
        root (str): The folder to write to.
        num_train (int): Frames of the train split. Default: 24.
        num_val (int): Frames of the val split. Default: 8.
        size (tuple[int]): (width, height) of the frames. Default:
            (512, 256).
        seed (int): Seed of the random scenes. Default: 0.

    Returns:
        dict: frames written per split.
    """
    if num_train < 1 or num_val < 1:
        raise ValueError('the demo dataset needs at least one train and '
                         'one val frame')
    rng = np.random.default_rng(seed)
    to_label_id = np.zeros(256, np.uint8)
    for train_id, (label_id, _) in CLASSES.items():
        to_label_id[train_id] = label_id
    counts = {}
    for split, num in (('train', num_train), ('val', num_val)):
        city = CITIES[split]
        img_dir = osp.join(root, 'leftImg8bit', split, city)
        ann_dir = osp.join(root, 'gtFine', split, city)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(num):
            image, label, instance = draw_scene(rng, *size)
            label_ids = to_label_id[label].astype(np.int32)
            # Cityscapes' instanceIds: labelId * 1000 + a 0-based number on
            # cars and people, the labelId elsewhere (16 bit)
            instance_ids = np.where(instance > 0,
                                    label_ids * 1000 + instance - 1,
                                    label_ids).astype(np.uint16)
            name = f'{city}_{i:06d}_000019'
            prefix = osp.join(ann_dir, f'{name}_gtFine_')
            mmcv.imwrite(image, osp.join(img_dir, f'{name}_leftImg8bit.png'))
            mmcv.imwrite(label, f'{prefix}labelTrainIds.png')
            mmcv.imwrite(label_ids.astype(np.uint8), f'{prefix}labelIds.png')
            Image.fromarray(instance_ids).save(f'{prefix}instanceIds.png')
        counts[split] = num
    return counts


def make_demo_video(path: str,
                    num_frames: int = 60,
                    size: Tuple[int, int] = (512, 256),
                    fps: float = 12.,
                    seed: int = 0) -> int:
    """Write a short street video: the camera pans along one generated
    street twice as wide as a frame, with fresh sensor noise in every
    frame, for the video and web demos on machines without footage.
    Written atomically (:class:`sanet_mmseg.video.VideoFile`).

    Args:
        path (str): The video file (``.mp4`` or ``.avi``).
        num_frames (int): Frames to write. Default: 60.
        size (tuple[int]): (width, height) of the frames. Default:
            (512, 256).
        fps (float): Frames per second. Default: 12.
        seed (int): Seed of the street. Default: 0.

    Returns:
        int: the frames written.
    """
    if num_frames < 1:
        raise ValueError(f'num_frames must be positive, got {num_frames}')
    width, height = size
    rng = np.random.default_rng(seed)
    street = draw_scene(rng, 2 * width, height)[0].astype(np.int16)
    step = width / max(num_frames - 1, 1)
    video = VideoFile(path, fps)
    try:
        for i in range(num_frames):
            x = int(round(i * step))
            noise = rng.normal(0, 6, (height, width, 3))
            frame = street[:, x:x + width] + noise
            video.write(np.clip(frame, 0, 255).astype(np.uint8))
    except BaseException:
        video.close(keep=False)
        raise
    video.close(keep=True)
    return num_frames

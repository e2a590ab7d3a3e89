# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Convert GTAV (Playing for Data) labels to Cityscapes trainIds.

Expects ROOT/images/NAME.png and ROOT/labels/NAME.png (Cityscapes labelIds,
usually as a palette PNG). Writes ROOT/labels/NAME_labelTrainIds.png (255
for ignored ids) at its image's size and, with --split-mat (GTAV's
split.mat), ROOT/train.txt, val.txt and test.txt for
``GTAVDataset(ann_file=...)``.

A few GTAV frames have a label of another size than their image; the
authors' loader resizes both to the same size, so the converter resizes
such a label to its image's size (nearest) and lists them, where the
training pipeline would otherwise stop at them.
"""
import argparse
import os.path as osp
from typing import Optional

import numpy as np
from cityscapesscripts.helpers.labels import labels as cityscapes_labels
from mmengine.utils import track_parallel_progress, track_progress
from PIL import Image

from sanet_mmseg.fileio import label_files

TO_TRAIN_ID = np.full(256, 255, np.uint8)
for _label in cityscapes_labels:
    if 0 <= _label.id < 256 and _label.trainId not in (-1, 255):
        TO_TRAIN_ID[_label.id] = _label.trainId


def convert_label(label_path: str) -> Optional[str]:
    """Write NAME_labelTrainIds.png beside ROOT/labels/NAME.png, at the
    size of ROOT/images/NAME.png; returns a note when the label had another
    size (and was resized, nearest), else None."""
    ids = np.array(Image.open(label_path))
    if ids.ndim != 2:
        raise ValueError(f'{label_path} is not a labelIds map (shape '
                         f'{ids.shape}); GTAV labels hold one id per pixel')
    image = osp.join(
        osp.dirname(osp.dirname(label_path)), 'images',
        osp.basename(label_path))
    with Image.open(image) as img:
        size = img.size
    train_ids = Image.fromarray(TO_TRAIN_ID[ids])
    note = None
    if train_ids.size != size:
        note = (f'{label_path}: {train_ids.size[0]}x{train_ids.size[1]} '
                f'resized to its image\'s {size[0]}x{size[1]}')
        train_ids = train_ids.resize(size, Image.NEAREST)
    train_ids.save(label_path[:-len('.png')] + '_labelTrainIds.png')
    return note


def find_labels(root: str) -> list:
    """The labels of ``root/images/*.png``; errors name what is missing."""
    return label_files(
        osp.join(root, 'images'), osp.join(root, 'labels'), lambda name: name,
        'GTAV')


def write_splits(root: str, split_mat: str) -> dict:
    from scipy.io import loadmat
    split = loadmat(split_mat)
    counts = {}
    for name in ('train', 'val', 'test'):
        ids = np.asarray(split[f'{name}Ids']).ravel()
        with open(osp.join(root, f'{name}.txt'), 'w') as f:
            f.writelines(f'{int(i):05d}\n' for i in ids)
        counts[name] = len(ids)
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('root', help='GTAV root folder')
    parser.add_argument('--split-mat', help="GTAV's split.mat")
    parser.add_argument('--nproc', type=int, default=1, help='processes')
    args = parser.parse_args()
    labels = find_labels(args.root)
    if args.nproc > 1:
        notes = track_parallel_progress(convert_label, labels, args.nproc)
    else:
        notes = track_progress(convert_label, labels)
    resized = [n for n in notes if n]
    print(f'converted {len(labels)} labels, {len(resized)} of them resized '
          'to their image\'s size' + ''.join(f'\n  {n}' for n in resized))
    if args.split_mat:
        print(f'wrote splits {write_splits(args.root, args.split_mat)}')


if __name__ == '__main__':
    main()

# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Multi-category boundary maps of label maps (MSFNet's idea).

Each boundary pixel carries the class it borders and is drawn in that
class's Cityscapes colour; other pixels are black. Reads a trainIds label
map, or the label maps named ``*{--suffix}`` in a folder and its
sub-folders.
"""
import argparse
import os
import os.path as osp

import numpy as np
from mmengine.utils import ProgressBar
from mmseg.datasets import CityscapesDataset

from sanet_mmseg.analysis import paint_labels, save_image
from sanet_mmseg.datasets import multi_class_boundary
from sanet_mmseg.fileio import list_files, read_image


def read_label(path, num_classes, ignore_index):
    """A trainIds label map (H, W); anything else is an error naming it."""
    label = read_image(path, 'unchanged')
    if label.ndim != 2:
        raise ValueError(f'{path} is not a label map (shape {label.shape}); '
                         'give trainIds maps')
    unknown = sorted(
        set(np.unique(label).tolist()) - set(range(num_classes)) -
        {ignore_index})
    if unknown:
        raise ValueError(f'{path} holds class ids {unknown} outside the '
                         f'{num_classes} classes and {ignore_index}; give '
                         'trainIds maps')
    return label


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('label', help='a label map or a folder of them')
    parser.add_argument('--out-dir', required=True)
    parser.add_argument(
        '--suffix', default='labelTrainIds.png',
        help='name ending of the label maps in a folder')
    parser.add_argument('--width', type=int, default=3,
                        help='window size (pixels)')
    parser.add_argument('--ignore-index', type=int, default=255)
    args = parser.parse_args()
    labels = list_files(args.label, (args.suffix, ))
    meta = CityscapesDataset.METAINFO
    os.makedirs(args.out_dir, exist_ok=True)
    progress = ProgressBar(len(labels))
    for path in labels:
        label = read_label(path, len(meta['classes']), args.ignore_index)
        edges = multi_class_boundary(label, args.width, args.ignore_index)
        picture = paint_labels(
            np.zeros((*label.shape, 3), np.uint8), edges, meta)
        name = osp.splitext(osp.basename(path))[0]
        save_image(picture, osp.join(args.out_dir, f'{name}_boundary.png'))
        progress.update()


if __name__ == '__main__':
    main()

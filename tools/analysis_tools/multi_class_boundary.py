# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Multi-category boundary maps of label maps (MSFNet's idea).

Each boundary pixel carries the class it borders and is drawn in that
class's colour; other pixels are black. Reads a trainIds label map or a
folder of them (``*labelTrainIds.png`` first, else any ``.png``). The same as
a pipeline transform: ``GenerateMultiClassEdge``.
"""
import argparse
import glob
import os
import os.path as osp

import mmcv
import numpy as np
from mmengine.utils import ProgressBar
from mmseg.datasets import CityscapesDataset
from PIL import Image

from sanet_mmseg.analysis import paint_labels
from sanet_mmseg.datasets.transforms import multi_class_boundary


def list_labels(path):
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f'no label map or folder at {path}')
    labels = sorted(glob.glob(osp.join(path, '**', '*labelTrainIds.png'),
                              recursive=True)) or sorted(
                                  glob.glob(osp.join(path, '**', '*.png'),
                                            recursive=True))
    if not labels:
        raise FileNotFoundError(f'no .png label maps under {path}')
    return labels


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('label', help='a label map or a folder of them')
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--width', type=int, default=3,
                        help='window size (pixels)')
    parser.add_argument('--ignore-index', type=int, default=255)
    args = parser.parse_args()
    labels = list_labels(args.label)
    palette = CityscapesDataset.METAINFO['palette']
    os.makedirs(args.out_dir, exist_ok=True)
    progress = ProgressBar(len(labels))
    for path in labels:
        label = np.array(Image.open(path))
        if label.ndim != 2:
            raise ValueError(f'{path} is not a label map (shape '
                             f'{label.shape}); give trainIds maps')
        edges = multi_class_boundary(label, args.width, args.ignore_index)
        picture = paint_labels(np.zeros((*label.shape, 3), np.uint8), edges,
                               palette)
        name = osp.splitext(osp.basename(path))[0]
        mmcv.imwrite(mmcv.rgb2bgr(picture),
                     osp.join(args.out_dir, f'{name}_boundary.png'))
        progress.update()


if __name__ == '__main__':
    main()

# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Generate a small street-scene dataset in the Cityscapes layout.

Frames are drawn from simple shapes (sky, buildings, vegetation, road,
sidewalk, cars, people) with noisy colours and textures, so that a model
learns them in a few hundred CPU iterations. Labels are Cityscapes trainIds,
labelIds and instanceIds, so MMSeg's ``CityscapesDataset`` and Cityscapes'
official evaluator read the result.
"""
import argparse
import os.path as osp

from sanet_mmseg.datasets.demo import make_demo_dataset


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('out_dir', help='root of the dataset to write')
    parser.add_argument('--num-train', type=int, default=24)
    parser.add_argument('--num-val', type=int, default=8)
    parser.add_argument(
        '--size', type=int, nargs=2, default=[512, 256], metavar=('W', 'H'))
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def main():
    args = parse_args()
    counts = make_demo_dataset(args.out_dir, args.num_train, args.num_val,
                               tuple(args.size), args.seed)
    print(f'wrote {counts} frames to {osp.abspath(args.out_dir)}')


if __name__ == '__main__':
    main()

# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Generate a small street-scene dataset in the Cityscapes layout.

Frames are drawn from simple shapes (sky, buildings, vegetation, road,
sidewalk, cars, people) with noisy colours and textures, so that a model
learns them in a few hundred CPU iterations. Labels are Cityscapes trainIds,
labelIds and instanceIds, so MMSeg's ``CityscapesDataset`` and Cityscapes'
official evaluator read the result. A short street video
(``OUT_DIR/street.mp4``: the camera panning along one generated street) is
written beside them for ``tools/video_demo.py`` and the web demo.
"""
import argparse
import os.path as osp

from sanet_mmseg.datasets.demo import make_demo_dataset, make_demo_video


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('out_dir', help='root of the dataset to write')
    parser.add_argument('--num-train', type=int, default=24)
    parser.add_argument('--num-val', type=int, default=8)
    parser.add_argument(
        '--size', type=int, nargs=2, default=[512, 256], metavar=('W', 'H'))
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--video-frames', type=int, default=60,
        help='frames of OUT_DIR/street.mp4 (12 fps); 0: no video')
    return parser.parse_args()


def main():
    args = parse_args()
    counts = make_demo_dataset(args.out_dir, args.num_train, args.num_val,
                               tuple(args.size), args.seed)
    print(f'wrote {counts} frames to {osp.abspath(args.out_dir)}')
    if args.video_frames:
        video = osp.join(args.out_dir, 'street.mp4')
        make_demo_video(video, args.video_frames, tuple(args.size),
                        seed=args.seed + 1)
        print(f'wrote {args.video_frames} frames to {osp.abspath(video)}')


if __name__ == '__main__':
    main()

# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Paint what an SANet head sees, for one image or a folder of images.

By default the colour-coded prediction of the main head; --aux: of the
auxiliary head (on layer4's 1/16 feature); --boundary: the boundary head's
probability as a colour map (blue 0 to red 1). --overlay blends it over
the photo. Colours are the dataset palette of the checkpoint.
"""
import os
import os.path as osp

import mmcv
import torch
from mmengine.utils import ProgressBar
from mmseg.apis import init_model

from sanet_mmseg.analysis import (head_logits, paint_labels,
                                  paint_probability, save_image)
from sanet_mmseg.cli import tool_parser
from sanet_mmseg.fileio import list_files, read_image


def segmentation_image(model, image, head='main', opacity=1.0):
    """The RGB picture of one head's output on one BGR image."""
    logits = head_logits(model, image)[head]
    rgb = mmcv.bgr2rgb(image)
    if head == 'boundary':
        return paint_probability(rgb, torch.sigmoid(logits[0]).numpy(),
                                 opacity)
    return paint_labels(rgb, logits.argmax(0).numpy(), model.dataset_meta,
                        opacity)


def main():
    parser = tool_parser(__doc__, 'config', 'checkpoint', 'img')
    parser.add_argument('--out-dir', required=True, help='output folder')
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--aux', action='store_true', help='auxiliary head')
    group.add_argument(
        '--boundary', action='store_true', help='boundary head')
    parser.add_argument(
        '--overlay', type=float, default=1.0, metavar='OPACITY',
        help='blend over the photo with this opacity in (0, 1]')
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args()
    if not 0 < args.overlay <= 1:
        parser.error('--overlay takes an opacity in (0, 1]')
    images = list_files(args.img)
    head = 'aux' if args.aux else 'boundary' if args.boundary else 'main'
    model = init_model(args.config, args.checkpoint, device=args.device)
    os.makedirs(args.out_dir, exist_ok=True)
    progress = ProgressBar(len(images))
    for path in images:
        picture = segmentation_image(model, read_image(path), head,
                                     args.overlay)
        name = osp.splitext(osp.basename(path))[0]
        save_image(picture, osp.join(args.out_dir, f'{name}_{head}.png'))
        progress.update()


if __name__ == '__main__':
    main()

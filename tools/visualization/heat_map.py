# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Grad-CAM heat map of one class over an image (the grad-cam package).

The target is the class score summed over the pixels predicted as that class
(all pixels when none is); --layer names the module to explain
(default: decode_head.fusion, the SAD decoder's output).
"""
import os
import os.path as osp

import mmcv
import torch
from mmengine.visualization import Visualizer
from mmseg.apis import init_model

from sanet_mmseg.analysis import grad_cam, save_image
from sanet_mmseg.fileio import read_image
from sanet_mmseg.cli import tool_parser


def main():
    parser = tool_parser(__doc__, 'config', 'checkpoint',
                         ('img', 'image file'))
    parser.add_argument('--category', required=True, help='class name')
    parser.add_argument('--layer', default='decode_head.fusion')
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args()
    image = read_image(args.img)
    model = init_model(args.config, args.checkpoint, device=args.device)
    classes = list(model.dataset_meta['classes'])
    if args.category not in classes:
        raise SystemExit(f'unknown category {args.category!r}; the classes '
                         f'are: {", ".join(classes)}')
    heat = grad_cam(model, image, classes.index(args.category), args.layer)
    picture = Visualizer.draw_featmap(
        torch.from_numpy(heat)[None], mmcv.bgr2rgb(image), alpha=0.5)
    os.makedirs(args.out_dir, exist_ok=True)
    name = osp.splitext(osp.basename(args.img))[0]
    out = osp.join(args.out_dir, f'{name}_{args.category}_gradcam.png')
    save_image(picture, out)
    print(f'saved {out}')


if __name__ == '__main__':
    main()

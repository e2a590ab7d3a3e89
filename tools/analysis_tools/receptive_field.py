# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Receptive fields of the stages of an SANet model.

Theoretical: the input region the centre pixel of each stage's output
depends on (stem, layer1-6, spatial paths, APPPM branches, decoder),
computed from the model itself. Effective: the gradient of the decoder's
centre pixel on an image (random, or --img resized to --input-size), and
the side of the centred square holding 95% of it. Prints a table; with
--out-dir, draws the receptive fields over the image, their growth, and the
effective receptive field.
"""
import os
import os.path as osp

import mmcv
import numpy as np
import torch
from mmengine.visualization import Visualizer
from mmseg.apis import init_model

from sanet_mmseg.analysis import (effective_receptive_field,
                                  receptive_fields, require, save_image)
from sanet_mmseg.cli import checkpoint_file, positive, tool_parser
from sanet_mmseg.deploy import ImagePipeline
from sanet_mmseg.fileio import atomic_path, read_image


def save_figure(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format='png', bbox_inches='tight', dpi=80)


def draw_receptive_fields(plt, fields, background, path):
    """The receptive fields as rectangles over ``background`` (RGB)."""
    h, w = background.shape[:2]
    fig, ax = plt.subplots(figsize=(10, 10 * h / w + 1))
    ax.imshow(background)
    colours = plt.cm.viridis(np.linspace(0, 1, len(fields)))
    for (name, f), colour in zip(fields.items(), colours):
        y0, x0, y1, x1 = f['box']
        ax.add_patch(
            plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False,
                          edgecolor=colour, linewidth=2,
                          label=f'{name} {f["rf"][0]}x{f["rf"][1]}'))
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.legend(loc='upper left', bbox_to_anchor=(1, 1), fontsize=8)
    ax.set_title('theoretical receptive fields of the centre pixel')
    save_figure(fig, path)
    plt.close(fig)


def draw_growth(plt, fields, path):
    """The receptive-field height of each stage as a bar chart."""
    names = list(fields)
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.bar(range(len(names)), [fields[n]['rf'][0] for n in names])
    ax.set_xticks(range(len(names)), names, rotation=60, ha='right',
                  fontsize=8)
    ax.set_ylabel('receptive field height (pixels)')
    ax.set_title('receptive-field growth')
    save_figure(fig, path)
    plt.close(fig)


def main():
    parser = tool_parser(__doc__, 'config')
    parser.add_argument(
        '--checkpoint', type=checkpoint_file,
        help='weights for the effective RF (default: random)')
    parser.add_argument('--img', help='image for the effective RF')
    parser.add_argument(
        '--input-size', type=positive(int), nargs=2, default=[1024, 1024],
        metavar=('H', 'W'), help='input height and width (default 1024 1024)')
    parser.add_argument('--out-dir', help='where to draw the pictures')
    parser.add_argument('--device', default='cpu', help='cpu or cuda')
    args = parser.parse_args()
    size = tuple(args.input_size)
    if args.img:
        image = mmcv.imresize(read_image(args.img), size[::-1])
    else:
        image = np.random.default_rng(0).integers(
            0, 256, (*size, 3), dtype=np.uint8)
    if args.out_dir:
        require('matplotlib').use('Agg')
        plt = require('matplotlib.pyplot')
    model = init_model(args.config, args.checkpoint, device=args.device)

    fields = receptive_fields(model, size)
    print(f'{"stage":<26}{"theoretical RF (h x w)":>24}')
    for name, f in fields.items():
        clipped = ' (whole input)' if f['rf'] == size else ''
        print(f'{name:<26}{f["rf"][0]:>11} x {f["rf"][1]:<10}{clipped}')

    # the test pipeline and data preprocessor, resizing to exactly ``size``
    inputs = ImagePipeline(model.cfg, size, from_array=True)(image)
    erf, side = effective_receptive_field(model, inputs)
    print(f'effective RF of the decoder centre pixel: {side} x {side} '
          f'(95% of the gradient; '
          f'{"given" if args.img else "random"} image, '
          f'{"trained" if args.checkpoint else "random"} weights)')
    if args.out_dir:
        os.makedirs(args.out_dir, exist_ok=True)
        rgb = mmcv.bgr2rgb(image) if args.img else np.full_like(image, 200)
        draw_receptive_fields(plt, fields, rgb,
                              osp.join(args.out_dir, 'receptive_fields.png'))
        draw_growth(plt, fields,
                    osp.join(args.out_dir, 'receptive_field_growth.png'))
        # the square root shows the tails of the gradient, not only its peak
        heat = torch.from_numpy(np.sqrt(erf / erf.max()))[None]
        save_image(
            Visualizer.draw_featmap(heat, rgb, alpha=0.7),
            osp.join(args.out_dir, 'effective_receptive_field.png'))
        print(f'pictures in {args.out_dir}')


if __name__ == '__main__':
    main()

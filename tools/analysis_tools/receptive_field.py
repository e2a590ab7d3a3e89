# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Receptive fields of the stages of an SANet model.

Theoretical: the input region the centre pixel of each stage's output
depends on (stem, layer1-6, spatial paths, APPPM branches, decoder),
computed from the model itself. Effective: the gradient of the decoder's
centre pixel on an image (random, or --img), and the side of the centred
square holding 95% of it. Prints a table; with --out-dir, draws the
receptive fields over the image and the effective receptive field.
"""
import argparse
import os
import os.path as osp

import matplotlib

matplotlib.use('Agg')
import matplotlib.patches as patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import mmcv  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmseg.apis import init_model  # noqa: E402

from sanet_mmseg.analysis import (effective_receptive_field,  # noqa: E402
                                  prepare_inputs, receptive_fields)


def draw_receptive_fields(fields, background, path):
    """The receptive fields as centred rectangles over ``background``."""
    h, w = background.shape[:2]
    fig, ax = plt.subplots(figsize=(10, 10 * h / w + 1))
    ax.imshow(background)
    colours = plt.cm.viridis(np.linspace(0, 1, len(fields)))
    for (name, f), colour in zip(fields.items(), colours):
        y0, x0, y1, x1 = f['box']
        ax.add_patch(
            patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False,
                              edgecolor=colour, linewidth=2,
                              label=f'{name} {f["rf"][0]}x{f["rf"][1]}'))
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.legend(loc='upper left', bbox_to_anchor=(1, 1), fontsize=8)
    ax.set_title('theoretical receptive fields of the centre pixel')
    fig.savefig(path, bbox_inches='tight', dpi=80)
    plt.close(fig)


def draw_growth(fields, path):
    names = list(fields)
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.bar(range(len(names)), [fields[n]['rf'][0] for n in names])
    ax.set_xticks(range(len(names)), names, rotation=60, ha='right',
                  fontsize=8)
    ax.set_ylabel('receptive field height (pixels)')
    ax.set_title('receptive-field growth')
    fig.savefig(path, bbox_inches='tight', dpi=80)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('config', help='config file')
    parser.add_argument('--checkpoint', help='weights for the effective RF')
    parser.add_argument('--img', help='image for the effective RF')
    parser.add_argument(
        '--input-size', type=int, nargs=2, default=[1024, 1024],
        metavar=('H', 'W'))
    parser.add_argument('--out-dir', help='where to draw the pictures')
    args = parser.parse_args()
    for path in (args.checkpoint, args.img):
        if path and not osp.isfile(path):
            raise FileNotFoundError(f'not found: {path}')
    model = init_model(args.config, args.checkpoint, device='cpu')
    size = tuple(args.input_size)
    fields = receptive_fields(model, size)
    print(f'{"stage":<26}{"theoretical RF (h x w)":>24}')
    for name, f in fields.items():
        clipped = ' (whole input)' if f['rf'] == size else ''
        print(f'{name:<26}{f["rf"][0]:>11} x {f["rf"][1]:<10}{clipped}')

    if args.img:
        image = mmcv.imresize(mmcv.imread(args.img), (size[1], size[0]))
        inputs, _ = prepare_inputs(model, image)
        background = mmcv.bgr2rgb(image)
    else:
        torch.manual_seed(0)
        inputs = torch.randn(1, 3, *size)
        background = np.full((*size, 3), 200, np.uint8)
    erf, side = effective_receptive_field(model, inputs)
    print(f'effective RF of the decoder centre pixel: {side} x {side} '
          f'(95% of the gradient; '
          f'{"given" if args.img else "random"} image, '
          f'{"trained" if args.checkpoint else "random"} weights)')
    if args.out_dir:
        os.makedirs(args.out_dir, exist_ok=True)
        draw_receptive_fields(fields, background,
                              osp.join(args.out_dir, 'receptive_fields.png'))
        draw_growth(fields, osp.join(args.out_dir, 'receptive_field_growth.png'))
        erf = np.sqrt(erf / erf.max())
        mmcv.imwrite((plt.cm.inferno(erf)[..., 2::-1] * 255).astype(np.uint8),
                     osp.join(args.out_dir, 'effective_receptive_field.png'))
        print(f'pictures in {args.out_dir}')


if __name__ == '__main__':
    main()

# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Segment one image and save the painted prediction (MMSeg's
demo/image_demo.py for SANet)."""
from argparse import ArgumentParser

from mmseg.apis import inference_model, init_model, show_result_pyplot

import sanet_mmseg  # noqa: F401


def main():
    parser = ArgumentParser(description=__doc__)
    parser.add_argument('img', help='image file')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out-file', required=True, help='painted image')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument(
        '--opacity', type=float, default=0.5,
        help='opacity of the painted segmentation, in (0, 1]')
    parser.add_argument('--title', default='result')
    args = parser.parse_args()

    model = init_model(args.config, args.checkpoint, device=args.device)
    result = inference_model(model, args.img)
    show_result_pyplot(
        model,
        args.img,
        result,
        title=args.title,
        opacity=args.opacity,
        show=False,
        out_file=args.out_file)
    print(f'saved {args.out_file}')


if __name__ == '__main__':
    main()

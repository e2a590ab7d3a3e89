# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Segment one image and save the painted prediction (MMSeg's
demo/image_demo.py for SANet)."""
from argparse import ArgumentParser

from mmseg.apis import inference_model, init_model, show_result_pyplot

import sanet_mmseg  # noqa: F401
from sanet_mmseg.cli import checkpoint_file

# below this height or width the class names would cover the picture
MIN_SIZE_FOR_NAMES = 32


def main():
    parser = ArgumentParser(description=__doc__)
    parser.add_argument('img', help='image file')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        'checkpoint', type=checkpoint_file, help='checkpoint file')
    parser.add_argument('--out-file', required=True, help='painted image')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument(
        '--opacity', type=float, default=0.5,
        help='opacity of the painted segmentation, in (0, 1]')
    parser.add_argument(
        '--no-names', action='store_true',
        help='paint the classes without writing their names')
    parser.add_argument('--title', default='result')
    args = parser.parse_args()

    model = init_model(args.config, args.checkpoint, device=args.device)
    result = inference_model(model, args.img)
    # MMSeg's visualizer indexes the picture with the label map; a torch
    # tensor of one element (a 1x1 image) would act as an integer index
    pred = result.pred_sem_seg
    pred.data = pred.data.cpu().numpy()
    height, width = pred.shape
    names = not args.no_names
    if names and min(height, width) < MIN_SIZE_FOR_NAMES:
        print(f'{width}x{height} image: painting the classes without their '
              'names, which would cover it')
        names = False
    show_result_pyplot(
        model,
        args.img,
        result,
        title=args.title,
        opacity=args.opacity,
        show=False,
        with_labels=names,
        out_file=args.out_file)
    print(f'saved {args.out_file}')


if __name__ == '__main__':
    main()

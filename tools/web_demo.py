# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Serve a web page to try SANet (Gradio, pip extra 'web'): upload an image
(any size, gray or RGBA too) and see it painted with its labels beside it,
with an opacity slider, the legend of the classes present and each one's
share of the image; or allow the webcam and see its frames segmented live
with the frame rate reached.

MODEL is an artefact folder of tools/deployment/export.py (its backend and
precision, OpenVINO int8 typically), checked against CONFIG as
tools/deployment/test.py checks it (normalisation, classes, input size), or
a checkpoint (run in PyTorch, float32). The uploaded image's labels are the
evaluation's (the logits resized to the image, then the argmax); the
webcam's frames are painted as tools/video_demo.py paints them.

Gradio's cache keeps the page's files (result images) for --cache-seconds,
and --cache-mb of them at most (the oldest go first), and each upload
until it is read; the last image of --max-visitors
visitors is kept for the opacity slider.

The page is served on 127.0.0.1 only (this machine). --host 0.0.0.0 serves
it to every machine that can reach this one, without a password: anyone
there can upload images and use the CPU.
"""
import os.path as osp

import torch
from mmengine.config import Config

from sanet_mmseg.cli import (add_threads, checkpoint_or_artefact, positive,
                             tool_parser)
from sanet_mmseg.predict import open_model


def parse_args(argv=None):
    parser = tool_parser(__doc__, 'config')
    parser.add_argument(
        'model', type=checkpoint_or_artefact,
        help='artefact folder of export.py, or checkpoint file')
    parser.add_argument(
        '--host', default='127.0.0.1',
        help='address to serve on (default 127.0.0.1: this machine only; '
        '0.0.0.0: every network interface)')
    parser.add_argument(
        '--port', type=positive(int), default=7860,
        help='port (default 7860)')
    parser.add_argument(
        '--cache-seconds', type=positive(int), default=300,
        help="delete the page's files in Gradio's cache (result images) "
        'this many seconds after they were written (default 300; uploads '
        'are deleted once read)')
    parser.add_argument(
        '--cache-mb', type=positive(float), default=200,
        help="and the oldest first where they take more than this (default "
        '200)')
    parser.add_argument(
        '--max-visitors', type=positive(int), default=8,
        help='keep the last image of this many visitors, for the opacity '
        'slider (default 8)')
    add_threads(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        from sanet_mmseg.web_demo import Segmenter, build_app, serve
    except ImportError as e:
        raise SystemExit(f'{e}: install the web extra (pip install '
                         '"sanet-mmseg[web]")')
    cfg = Config.fromfile(args.config)
    if args.threads:
        torch.set_num_threads(args.threads)
    predictor, meta, shape = open_model(args.model, cfg,
                                        threads=args.threads)
    size = 'any size' if shape is None else '%dx%d' % tuple(shape)
    title = (f'SANet: {osp.basename(args.config)}, {predictor.name} '
             f'({size})')
    print(f'{title}; serving on http://{args.host}:{args.port}',
          flush=True)
    serve(build_app(Segmenter(cfg, predictor, meta, shape), title,
                    args.cache_seconds, args.cache_mb),
          args.host, args.port, args.max_visitors)


if __name__ == '__main__':
    main()

# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Segment a video file or a camera live and paint the labels over it
(MMSeg's demo/video_demo.py for SANet, on any backend). tools/predict.py
is the general tool (videos, cameras, images and folders; the
evaluation's labels as PNG, overlay videos, a summary) on the same
pipeline and model loading; this one shows the frames live with their
frame rate and paints cheaply.

MODEL is a checkpoint (run with --backend torch, onnxruntime or openvino in
--precision fp32 or bf16, converted in memory) or an artefact folder of
tools/deployment/export.py (its backend and precision, int8 included),
which must go with CONFIG as tools/deployment/test.py checks it
(normalisation, classes, input size).
Decoding (with the test pipeline's resizing and normalisation), inference,
and painting/encoding run in three threads connected by short queues, so
that inference never waits for I/O. The frames carry the pipeline's FPS
and the inference latency; at the end the tool prints the mean FPS and the
mean, p50 and p95 latencies. To keep the painting cheap (it shares the
CPU with inference), the labels are the argmax of the logits resized by
OpenCV (bilinear, corners aligned or not as in the evaluation) to a
quarter of the model's input size (twice the logits' size), coloured and
resized bilinearly to the frame: they differ from the evaluation's (the
logits resized to the full size, then the argmax) only along the class
boundaries, which are drawn soft over a few pixels.
Press q or Esc in the --show window to stop (Ctrl-C anywhere).
"""
import cv2
import torch
from mmengine.config import Config

from sanet_mmseg.cli import (add_shape, add_threads, checkpoint_or_artefact,
                             tool_parser)
from sanet_mmseg.deploy import PRECISIONS, ImagePipeline
from sanet_mmseg.painting import draw_text, paint, palette_bgr
from sanet_mmseg.predict import open_model
from sanet_mmseg.video import VideoFile, open_video, run_video


def parse_args(argv=None):
    parser = tool_parser(
        __doc__, ('video', 'video file, or camera id (0, 1, ...)'), 'config')
    parser.add_argument(
        'model', type=checkpoint_or_artefact,
        help='checkpoint file, or artefact folder of export.py')
    parser.add_argument(
        '--backend', choices=tuple(PRECISIONS),
        help='with a checkpoint: the backend (default torch)')
    parser.add_argument(
        '--precision', choices=('fp32', 'bf16', 'fp16', 'int8'),
        help='with a checkpoint: the precision (default fp32; int8 needs '
        'an artefact)')
    add_shape(
        parser, 'with a checkpoint: resize frames to this input size '
        "(default: the test pipeline's; onnxruntime/openvino: its Resize "
        'scale)')
    add_threads(parser)
    parser.add_argument('--output-file', help='painted video to write')
    parser.add_argument(
        '--output-fourcc',
        help='FourCC of the output (default mp4v for .mp4, MJPG otherwise)')
    parser.add_argument('--show', action='store_true', help='show live')
    parser.add_argument(
        '--show-wait-time', type=int, default=1,
        help='ms to wait for a key after each shown frame (default 1)')
    parser.add_argument(
        '--opacity', type=float, default=0.5,
        help='opacity of the painted labels, in (0, 1] (default 0.5)')
    args = parser.parse_args(argv)
    if not (args.show or args.output_file):
        parser.error('nothing to do: give --output-file and/or --show')
    if not 0 < args.opacity <= 1:
        parser.error('--opacity must be in (0, 1]')
    return args


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    try:
        cap = open_video(args.video)
        fps_in = cap.get(cv2.CAP_PROP_FPS) or 25
        output = args.output_file and VideoFile(args.output_file, fps_in,
                                                args.output_fourcc)
    except (OSError, ValueError) as e:
        raise SystemExit(str(e))
    predictor, meta, shape = open_model(args.model, cfg, args.backend,
                                        args.precision, args.shape,
                                        args.threads)
    # the backend has its own threads; decoding and painting take one each
    cv2.setNumThreads(1)
    if predictor.backend != 'torch':
        torch.set_num_threads(1)
    pipeline = ImagePipeline(cfg, shape, from_array=True)
    colours = palette_bgr(meta['palette'])
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    size = 'any size' if shape is None else '%dx%d' % tuple(shape)
    print(f'{predictor.name} ({size}), {threads} threads; {args.video}: '
          f'{total if total > 0 else "?"} frames at {fps_in:.1f} FPS')

    def infer(inputs):
        return predictor(inputs)[0].float().cpu()

    def render(frame, logits, fps, seconds):
        quarter_input = (logits.shape[2] * 2, logits.shape[1] * 2)
        img = paint(frame, logits, colours, args.opacity, quarter_input,
                    meta['align_corners'])
        draw_text(img, f'{fps:.1f} FPS  inference {seconds * 1e3:.0f} ms  '
                  f'{predictor.name}')
        return img

    try:
        stats = run_video(cap, pipeline, infer, render, output or None,
                          args.show, args.show_wait_time)
    except EOFError as e:
        raise SystemExit(f'{args.video}: {e}')
    print(f'\n{stats.summary()}')
    if args.output_file:
        print(f'saved {args.output_file}')


if __name__ == '__main__':
    main()

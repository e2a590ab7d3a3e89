# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Segment any source and save the results per input.

SOURCE (one or more): an image, a folder (searched recursively for
images and videos), a glob ('frames/**/*.jpg', quoted), a text file with
one image or video path a line (relative to its folder), a video file, or
a camera id (0, 1, ...; Ctrl-C stops it). MODEL is a checkpoint (run
with --backend torch, onnxruntime or openvino in --precision fp32 or
bf16) or an artefact folder of tools/deployment/export.py, checked
against CONFIG as tools/deployment/test.py checks it.

Outputs under --out-dir mirror the inputs' paths relative to the sources:
--labels (PNG of class indices, the train ids), --label-ids (Cityscapes
labelIds, as the submission configs write them; Cityscapes classes only),
--painted (the image blended with its labels' colours as MMSeg's
visualizer blends them; for a video or camera an overlay video NAME.mp4).
Default: --labels (a painted Cityscapes frame takes some 40 times the
disk space of its labels, and on two cores costs about a tenth of the
images per second). A video's labels are one PNG per frame in a folder
named after it. The labels are the evaluation's (the logits resized to
the image, then the argmax: only the pixels in doubt where the input is
the image's size; beyond 256 MB of full-size logits the argmax is resized
instead; sanet_mmseg.inference).

Reading, inference and writing run in threads (sanet_mmseg.video);
PyTorch on the CPU infers two images at once (--streams).
Every output is written atomically; --resume leaves out the inputs whose
outputs are all there. Inputs that cannot be read are left out and listed
at the end (and in --summary); the exit status is then 1 (--strict stops
at the first, exit status 1).
"""
import resource
import sys

import cv2
import torch
from mmengine.config import Config

from sanet_mmseg.cli import (add_shape, add_threads, checkpoint_or_artefact,
                             positive, tool_parser)
from sanet_mmseg.deploy import PRECISIONS
from sanet_mmseg.predict import (BadInput, Outputs, Segmenter,
                                 default_streams, open_model, predict)
from sanet_mmseg.sources import collect


def parse_args(argv=None):
    parser = tool_parser(__doc__)
    parser.add_argument(
        'source', nargs='+',
        help='images, folders, globs, list files, videos, camera ids')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        'model', type=checkpoint_or_artefact,
        help='checkpoint file, or artefact folder of export.py')
    parser.add_argument('--out-dir', required=True, help='output folder')
    parser.add_argument('--labels', action='store_true',
                        help='write the labels (train ids) as PNG')
    parser.add_argument('--label-ids', action='store_true',
                        help='write Cityscapes labelIds PNGs')
    parser.add_argument('--painted', action='store_true',
                        help='write painted images (videos: NAME.mp4)')
    parser.add_argument(
        '--opacity', type=float, default=0.5,
        help='opacity of the painted labels, in (0, 1] (default 0.5)')
    parser.add_argument(
        '--summary', help='write a summary: .json, or .csv (per input: '
        'size, frames, inference seconds, class shares; the inputs left '
        'out with their reasons)')
    parser.add_argument('--resume', action='store_true',
                        help='leave out inputs whose outputs are there')
    parser.add_argument('--strict', action='store_true',
                        help='stop at the first input that cannot be read')
    parser.add_argument('--no-progress', action='store_true',
                        help='no progress bar')
    parser.add_argument(
        '--backend', choices=tuple(PRECISIONS),
        help='with a checkpoint: the backend (default torch)')
    parser.add_argument(
        '--precision', choices=('fp32', 'bf16', 'fp16'),
        help='with a checkpoint: the precision (default fp32)')
    add_shape(parser, 'with a checkpoint: resize images to this input size '
              "(default: the test pipeline's; onnxruntime/openvino: its "
              'Resize scale)')
    add_threads(parser)
    parser.add_argument(
        '--streams', type=positive(int),
        help='images inferred at once, each with its share of the threads '
        '(default: 2 for PyTorch on the CPU with 2+ threads, else 1)')
    parser.add_argument(
        '--max-logits-mb', type=positive(int), default=256,
        help='memory bound of the full-size logits, beyond which the '
        'argmax is resized instead (default 256)')
    args = parser.parse_args(argv)
    if not 0 < args.opacity <= 1:
        parser.error('--opacity must be in (0, 1]')
    # argparse gives the last two of the positionals to config and model
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    kinds = [k for k in ('labels', 'label_ids', 'painted')
             if getattr(args, k)] or ['labels']
    cfg = Config.fromfile(args.config)
    if args.threads:
        torch.set_num_threads(args.threads)
    inputs, problems = collect(args.source)
    predictor, meta, shape = open_model(args.model, cfg, args.backend,
                                        args.precision, args.shape,
                                        args.threads)
    cv2.setNumThreads(1)  # reading and writing take a thread each
    if predictor.backend != 'torch':
        torch.set_num_threads(1)
    segmenter = Segmenter(cfg, predictor, meta, shape,
                          args.max_logits_mb * 2**20)
    size = 'any size' if shape is None else '%dx%d' % tuple(shape)
    streams = args.streams or default_streams(predictor)
    print(f'{predictor.name} ({size}), {torch.get_num_threads()} threads, '
          f'{streams} streams; {len(inputs)} inputs', flush=True)
    try:
        outputs = Outputs(args.out_dir, kinds)
        report = predict(inputs, segmenter, outputs, args.opacity,
                         args.resume, args.strict, not args.no_progress,
                         problems, streams)
    except BadInput as e:
        print(f'\nstopped (--strict): {e}', file=sys.stderr)
        return 1
    except ValueError as e:
        raise SystemExit(str(e))
    if args.summary:
        report.write(args.summary)
    stats = report.stats
    done = len(stats.done) if stats else 0
    rate = done / report.seconds if report.seconds else 0.
    print(f'\n{len(report.rows)} inputs done ({done} images and frames in '
          f'{report.seconds:.1f} s: {rate:.2f} per second), '
          f'{len(report.resumed)} done before (--resume), '
          f'{len(report.problems)} left out; outputs in {args.out_dir}')
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f'peak memory (RSS) {peak:.0f} MB')
    if args.summary:
        print(f'summary: {args.summary}')
    if report.problems:
        print(f'{len(report.problems)} inputs left out:', file=sys.stderr)
        for problem in report.problems:
            print(f'  {problem.path}: {problem.reason}', file=sys.stderr)
    if report.interrupted:
        print('interrupted', file=sys.stderr)
        return 130
    return 1 if report.problems else 0


if __name__ == '__main__':
    sys.exit(main())

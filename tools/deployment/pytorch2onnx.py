# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Export an SANet segmentor to ONNX, optionally verified in ONNX Runtime.

The model is prepared first (sanet_mmseg.deploy.prepare_for_inference:
training-only heads removed, BN folded into the convolutions) and exported
with torch.onnx.export(dynamo=False). The graph takes `input`, a float32
batch (N, 3, H, W) normalised as the config's data_preprocessor does (RGB,
ImageNet mean/std for the Cityscapes configs), and returns `output`: logits
(N, C, H/8, W/8) float32 or, with --labels, int64 labels (N, H, W).
CHECKPOINT 'none' exports random weights (for trying the pipeline; it must
be said explicitly so that no one ships random weights by mistake).
This writes one bare .onnx file (e.g. for TensorRT); tools/deployment/
export.py writes artefacts that the project's tools run (ONNX Runtime or
OpenVINO, fp32/bf16/int8, with a meta file).
"""
import copy
import os.path as osp
import sys

import torch

from sanet_mmseg.cli import add_shape, add_verify, positive, tool_parser
from sanet_mmseg.comparison import relative_error
from sanet_mmseg.deploy import (export_onnx, load_segmentor, onnx_session,
                                prepare_for_inference)
from sanet_mmseg.fileio import atomic_path
from sanet_mmseg.models.segmentor_output import SegmentorOutput


def parse_args(argv=None):
    parser = tool_parser(__doc__, 'config', 'checkpoint', random_weights=True)
    parser.add_argument('--output-file', required=True, help='the .onnx file')
    add_shape(parser, 'input height and width (default 1024 2048)',
              default=[1024, 2048])
    parser.add_argument('--batch', type=positive(int), default=1)
    parser.add_argument(
        '--dynamic', action='store_true',
        help='let batch, height and width vary (--verify then also checks '
        'another size and batch)')
    parser.add_argument(
        '--labels', action='store_true',
        help='output labels at the input size instead of logits')
    parser.add_argument('--opset', type=int, default=17)
    add_verify(
        parser, 'compare ONNX Runtime with the plain PyTorch model on '
        'random input; exit 1 above --tolerance', '--verify: largest '
        'relative error of the logits, or share of labels allowed to differ '
        'with --labels')
    parser.add_argument(
        '--simplify', action='store_true',
        help='simplify the graph with onnxsim (optional: pip install '
        'onnxsim)')
    return parser.parse_args(argv)


def simplify(path):
    """Simplify an ONNX file in place with onnxsim (atomically)."""
    try:
        import onnx
        import onnxsim
    except ImportError:
        raise SystemExit('--simplify needs onnxsim, which is not installed: '
                         'pip install onnxsim (or export without --simplify)')
    model, ok = onnxsim.simplify(onnx.load(path))
    if not ok:
        raise SystemExit('onnxsim could not validate the simplified graph; '
                         f'{path} is left unsimplified')
    with atomic_path(path) as tmp:
        onnx.save(model, tmp)


def verify(reference, path, shape, batch=1, labels=False, tolerance=1e-3):
    """Run the ONNX file in ONNX Runtime and ``reference`` (a PyTorch
    segmentor, best the plain one) on one random batch.

    Returns:
        tuple[float, bool]: the max relative error of the logits (max |diff|
        / max |reference|), or with ``labels`` the share of differing
        labels; and whether it is within ``tolerance``.
    """
    x = torch.randn(batch, 3, *shape)
    with torch.no_grad():
        output = 'labels' if labels else 'logits'
        expected = SegmentorOutput(reference, output)(x).numpy()
    got = onnx_session(path).run(None, {'input': x.numpy()})[0]
    if got.shape != expected.shape:
        return float('inf'), False
    if labels:
        value = float((got != expected).mean())
    else:
        value = relative_error(got, expected)
    return value, value <= tolerance


def main(argv=None):
    args = parse_args(argv)
    out_dir = osp.dirname(osp.abspath(args.output_file))
    if not osp.isdir(out_dir):
        raise SystemExit(f'--output-file: no folder {out_dir}')
    plain = load_segmentor(args.config, args.checkpoint)
    if args.checkpoint.lower() == 'none':
        print('checkpoint none: exporting RANDOM weights')
    model = prepare_for_inference(copy.deepcopy(plain))
    shape = tuple(args.shape)
    export_onnx(model, args.output_file, shape, args.batch, args.dynamic,
                args.labels, args.opset)
    print(f'exported {args.output_file} (opset {args.opset}, input '
          f'{"dynamic" if args.dynamic else args.batch} x 3 x '
          f'{"H x W" if args.dynamic else "%d x %d" % shape}, output '
          f'{"labels" if args.labels else "logits"})')
    if args.simplify:
        simplify(args.output_file)
        print('simplified the graph with onnxsim')
    if args.verify:
        what = 'share of differing labels' if args.labels else \
            'max relative error'
        checks = [(shape, args.batch)]
        if args.dynamic:
            checks.append(((shape[0] // 2 + 3, shape[1] // 2 + 5),
                           args.batch + 1))
        failed = False
        for size, batch in checks:
            value, ok = verify(plain, args.output_file, size, batch,
                               args.labels, args.tolerance)
            print(f'ONNX Runtime vs PyTorch at {batch}x3x{size[0]}x'
                  f'{size[1]}: {what} {value:.3g} '
                  f'({"ok" if ok else "FAILED"}, tolerance '
                  f'{args.tolerance:g})')
            failed = failed or not ok
        if failed:
            sys.exit(1)


if __name__ == '__main__':
    main()

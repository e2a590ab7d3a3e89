# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Export an SANet segmentor as a deployable artefact for ONNX Runtime or
OpenVINO, in float32, bfloat16 (OpenVINO) or int8 (post-training
quantization calibrated on real images).

The artefact is a folder: model.onnx (ONNX Runtime) or model.xml/model.bin
(OpenVINO IR), and deploy.json with what it takes to run it (classes,
palette, mean/std, input size, precision, backend, library versions). Run
it with tools/deployment/test.py (evaluation), tools/video_demo.py or
sanet_mmseg.deploy.load_predictor.

Calibration images (--calib, needed for int8) go through the config's test
pipeline and data preprocessor, so their resizing and normalisation are the
evaluation's: --calib config takes them from the config's dataset
(--calib-split, default train), --calib DIR from a folder of images
(searched recursively, as Cityscapes keeps frames in city folders).
--calib-num of them (default 300), evenly spaced over the sorted list.
CHECKPOINT 'none' exports random weights (for trying the tools).
"""
import os.path as osp
import sys

import torch
from mmengine.config import Config

from sanet_mmseg.cli import add_shape, add_verify, positive, tool_parser
from sanet_mmseg.comparison import compare_logits
from sanet_mmseg.datasets import config_dataset_meta
from sanet_mmseg.deploy import (FROM_CONFIG, PRECISIONS, PipelineInputs,
                                ValidationSet, artefact_backends,
                                check_backend, export_artefact,
                                load_predictor, load_segmentor,
                                pipeline_shape, read_meta)


def parse_args(argv=None):
    parser = tool_parser(__doc__, 'config', 'checkpoint', random_weights=True)
    backends = artefact_backends()
    parser.add_argument('--backend', required=True, choices=backends)
    parser.add_argument(
        '--precision', required=True,
        choices=sorted({p for b in backends for p in PRECISIONS[b]}))
    parser.add_argument(
        '--calib',
        help=f"calibration images for int8 (and --verify): '{FROM_CONFIG}' "
        "(the config's dataset) or a folder of images")
    parser.add_argument(
        '--calib-split', default='train', choices=('train', 'val', 'test'),
        help="the dataset split of --calib config (default train)")
    parser.add_argument(
        '--calib-num', type=positive(int), default=300,
        help='number of calibration images (default 300)')
    add_shape(
        parser, 'input height and width (default: the size the test '
        "pipeline's Resize gives)")
    parser.add_argument(
        '--dynamic', action='store_true',
        help='let the input size vary (fixed sizes run faster)')
    parser.add_argument('--out-dir', required=True, help='artefact folder')
    parser.add_argument(
        '--preset', choices=('performance', 'mixed'),
        help='openvino int8: NNCF preset (default performance; mixed: '
        'asymmetric activations)')
    parser.add_argument(
        '--full-bias-correction', dest='fast_bias_correction',
        action='store_const', const=False,
        help='openvino int8: NNCF\'s full (slow) bias correction instead of '
        'the fast one')
    parser.add_argument(
        '--ignored-types', nargs='+', metavar='OP',
        help='openvino int8: OpenVINO operation types to keep in float, '
        'e.g. Sigmoid Multiply')
    parser.add_argument(
        '--max-drop', type=positive(float), metavar='POINTS',
        help='openvino int8: keep the layers that cost most in float until '
        'the mIoU on the config\'s val set is at most this many points '
        'below fp32 (NNCF\'s quantization with accuracy control)')
    parser.add_argument(
        '--val-num', type=positive(int),
        help='--max-drop: number of val images to measure on (default all)')
    add_verify(
        parser, 'compare the artefact with the PyTorch model on a random '
        'input and up to 2 calibration images; in fp32 exit 1 above '
        '--tolerance', '--verify in fp32: largest relative error of the '
        'logits')
    args = parser.parse_args(argv)
    args.int8_options = {
        k: getattr(args, k)
        for k in ('preset', 'fast_bias_correction', 'ignored_types',
                  'max_drop') if getattr(args, k) is not None
    }
    try:
        check_backend(args.backend, args.precision, args.int8_options)
    except ValueError as e:
        parser.error(str(e))
    if args.precision == 'int8' and not args.calib:
        parser.error('int8 needs calibration images: --calib config or '
                     '--calib IMAGE_DIR')
    return args


def dataset_meta(model, cfg):
    """Classes and palette: the checkpoint's, else the config's dataset's."""
    meta = getattr(model, 'dataset_meta', None)
    if meta and 'classes' in meta and 'palette' in meta:
        return meta
    return config_dataset_meta(cfg)


def verify(model, predictor, inputs, tolerance):
    """Print the relative error of the logits and the share of equal labels
    at 1/8 against the PyTorch model per input; False if a float32 artefact
    is above ``tolerance``."""
    ok = True
    for name, x in inputs:
        with torch.no_grad():
            expected = model._forward(x)
        err, same = compare_logits(predictor(x), expected)
        failed = predictor.precision == 'fp32' and err > tolerance
        ok = ok and not failed
        print(f'  {name}: max relative error {err:.3g}'
              f'{" (FAILED)" if failed else ""}, labels equal on '
              f'{same * 100:.2f}% of the 1/8 grid')
    return ok


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    model = load_segmentor(cfg, args.checkpoint)
    checkpoint = None
    if args.checkpoint.lower() == 'none':
        print('checkpoint none: exporting RANDOM weights')
    else:
        checkpoint = osp.abspath(args.checkpoint)
    shape = tuple(args.shape) if args.shape else pipeline_shape(cfg)
    calib = None
    if args.calib:
        calib = PipelineInputs(cfg, args.calib, args.calib_num,
                               None if args.dynamic else shape,
                               args.calib_split)
        print(f'calibration: {len(calib)} images of {calib.source}')
    options = dict(args.int8_options)
    if args.max_drop is not None:
        options['validation'] = ValidationSet(
            cfg, None if args.dynamic else shape, args.val_num)
        print(f'accuracy guard: mIoU on {len(options["validation"])} val '
              f'images at most {args.max_drop:g} points below fp32')
    export_artefact(
        model,
        args.out_dir,
        args.backend,
        args.precision,
        shape,
        dataset_meta(model, cfg),
        calib if args.precision == 'int8' else None,
        dynamic=args.dynamic,
        source=dict(
            config=osp.abspath(args.config),
            checkpoint=checkpoint),
        **options)
    size = 'any size' if args.dynamic else f'{shape[0]}x{shape[1]}'
    print(f'exported {args.backend} {args.precision} ({size}) to '
          f'{args.out_dir}')
    report = read_meta(args.out_dir).get('accuracy')
    if report:
        print(f'mIoU on {report["images"]} val images: fp32 '
              f'{report["fp32_miou"]:.2f}, plain int8 '
              f'{report["plain_int8_miou"]:.2f}, int8 with the guard '
              f'{report["int8_miou"]:.2f}; {len(report["kept_float"])} '
              'layers kept in float:\n  ' + '\n  '.join(report['kept_float']))
    if args.verify:
        predictor = load_predictor(args.out_dir)
        inputs = [('random input', torch.randn(1, 3, *shape))]
        if calib is not None:
            inputs += [(f'calibration image {i}', calib[i])
                       for i in range(min(2, len(calib)))]
        print('artefact vs PyTorch:')
        if not verify(model, predictor, inputs, args.tolerance):
            sys.exit(1)


if __name__ == '__main__':
    main()

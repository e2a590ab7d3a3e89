# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Export an SANet segmentor to ONNX, optionally verified in ONNX Runtime.

The model is prepared first (sanet_mmseg.deploy.prepare_for_inference:
training-only heads removed, BN folded into the convolutions). The graph takes
a float32 image batch (N, 3, H, W), normalised as the config's
data_preprocessor does, and returns logits (N, C, H/8, W/8) or, with
--labels, labels (N, H, W).
"""
import argparse

import numpy as np
import torch
from mmseg.apis import init_model

from sanet_mmseg.deploy import export_onnx, onnx_session, prepare_for_inference


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('config', help='config file')
    parser.add_argument(
        'checkpoint',
        help="checkpoint file, or 'none' to export random weights")
    parser.add_argument('--output-file', required=True, help='the .onnx file')
    parser.add_argument(
        '--shape', type=int, nargs=2, default=[1024, 2048],
        metavar=('H', 'W'), help='input height and width')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument(
        '--dynamic', action='store_true',
        help='let batch, height and width vary')
    parser.add_argument(
        '--labels', action='store_true',
        help='output labels at the input size instead of logits')
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument(
        '--verify', action='store_true',
        help='compare ONNX Runtime with PyTorch; exit 1 on a mismatch')
    parser.add_argument(
        '--simplify', action='store_true',
        help='simplify the graph with onnxsim (pip install onnxsim)')
    return parser.parse_args()


def verify(model, path, shape, batch, labels, tolerance=1e-3):
    """Run the file in ONNX Runtime and PyTorch on one random batch;
    returns (relative error or label agreement, passed)."""
    x = torch.randn(batch, 3, *shape)
    from sanet_mmseg.deploy import SegmentorExport
    with torch.no_grad():
        expected = SegmentorExport(model, labels)(x).numpy()
    got = onnx_session(path).run(None, {'input': x.numpy()})[0]
    if labels:
        agreement = float((got == expected).mean())
        return agreement, agreement >= 1 - tolerance
    err = float(np.abs(got - expected).max() / np.abs(expected).max())
    return err, err < tolerance


def main():
    args = parse_args()
    checkpoint = None if args.checkpoint.lower() == 'none' else args.checkpoint
    model = prepare_for_inference(
        init_model(args.config, checkpoint, device='cpu'))
    export_onnx(model, args.output_file, tuple(args.shape), args.batch,
                args.dynamic, args.labels, args.opset)
    print(f'exported {args.output_file}')
    if args.simplify:
        try:
            import onnx
            import onnxsim
        except ImportError:
            raise SystemExit('--simplify needs onnxsim: pip install onnxsim')
        simplified, ok = onnxsim.simplify(onnx.load(args.output_file))
        if not ok:
            raise SystemExit('onnxsim could not validate the simplified graph')
        onnx.save(simplified, args.output_file)
        print('simplified the graph')
    if args.verify:
        value, ok = verify(model, args.output_file, tuple(args.shape),
                           args.batch, args.labels)
        what = 'label agreement' if args.labels else 'max relative error'
        print(f'ONNX Runtime vs PyTorch: {what} {value:.3g}')
        if not ok:
            raise SystemExit('verification failed')


if __name__ == '__main__':
    main()

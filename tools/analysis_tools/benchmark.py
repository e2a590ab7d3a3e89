# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Measure SANet's inference speed the DDRNet/PIDNet way.

Random input, warm-up, CUDA synchronisation, iterations sized to run
several seconds, repeated; prints latency and FPS with the spread over the
repeats, and params and FLOPs. --compare times the plain model, the prepared
one (sanet_mmseg.deploy.prepare_for_inference), the prepared one in reduced
precision (bf16 on CPU, fp16 on CUDA) and, with --onnx, ONNX Runtime,
interleaved in one run, and prints their ratios to the plain model.
"""
import argparse
import copy
import glob
import logging
import os.path as osp
import tempfile
import time

import mmcv
import numpy as np
import torch
from mmengine.analysis import get_model_complexity_info
from mmengine.logging import MMLogger
from mmseg.apis import init_model

from sanet_mmseg.deploy import (TRAINING_ONLY, SegmentorExport, export_onnx,
                                onnx_session, prepare_for_inference)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('config', help='config file')
    parser.add_argument('--checkpoint', help='checkpoint (default: random)')
    parser.add_argument(
        '--shape', type=int, nargs=2, default=[1024, 2048],
        metavar=('H', 'W'))
    parser.add_argument('--device', default='cpu', help='cpu or cuda')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument(
        '--fuse', action='store_true', help='time the prepared model')
    parser.add_argument(
        '--amp', action='store_true',
        help='reduced precision: bf16 on CPU, fp16 on CUDA (with --fuse)')
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument(
        '--seconds', type=float, default=5,
        help='time to spend on each variant in each repeat')
    parser.add_argument(
        '--compare', action='store_true',
        help='time plain, prepared, prepared reduced-precision (and ONNX '
        'Runtime with --onnx) interleaved')
    parser.add_argument('--onnx', action='store_true')
    parser.add_argument(
        '--images', help='folder of images: with --compare, the share of '
        'pixels whose reduced-precision label equals the fp32 label')
    return parser.parse_args()


def reduced_dtype(device):
    return torch.float16 if device.startswith('cuda') else torch.bfloat16


def sync(device):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def make_runner(model, device):
    def run(x):
        with torch.no_grad():
            return model._forward(x)
    return run


def make_onnx_runner(model, shape, batch):
    path = osp.join(tempfile.mkdtemp(), 'sanet.onnx')
    export_onnx(model, path, shape, batch)
    session = onnx_session(path)

    def run(x):
        return session.run(None, {'input': x.cpu().numpy()})[0]

    return run


def time_variants(variants, x, device, seconds, repeat):
    """Interleaved timing. Returns {name: [seconds per batch, per repeat]}."""
    iters = {}
    for name, run in variants.items():  # warm up, then size the iterations
        for _ in range(2):
            run(x)
        sync(device)
        start = time.perf_counter()
        run(x)
        sync(device)
        iters[name] = max(1, int(seconds / (time.perf_counter() - start)))
    times = {name: [] for name in variants}
    for _ in range(repeat):
        for name, run in variants.items():
            sync(device)
            start = time.perf_counter()
            for _ in range(iters[name]):
                run(x)
            sync(device)
            times[name].append((time.perf_counter() - start) / iters[name])
    return times


def label_agreement(plain, reduced, images, shape, cfg):
    """Share of pixels whose label from ``reduced`` equals ``plain``'s."""
    pre = cfg.model.data_preprocessor
    mean = torch.tensor(pre.mean).view(1, 3, 1, 1)
    std = torch.tensor(pre.std).view(1, 3, 1, 1)
    equal = total = 0
    for path in images:
        img = mmcv.imresize(mmcv.imread(path, channel_order='rgb'),
                            (shape[1], shape[0]))
        x = (torch.from_numpy(img).permute(2, 0, 1)[None].float() -
             mean) / std
        with torch.no_grad():
            a = plain(x).argmax(1)
            b = reduced(x).argmax(1)
        equal += (a == b).sum().item()
        total += a.numel()
    return equal / total


def main():
    args = parse_args()
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        raise SystemExit('--device cuda: no CUDA device here')
    if args.device.startswith('cuda'):
        torch.backends.cudnn.benchmark = True
    model = init_model(args.config, args.checkpoint, device=args.device)
    model.eval()
    shape = tuple(args.shape)
    x = torch.randn(args.batch, 3, *shape, device=args.device)

    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)  # unsupported-operator notes: no FLOPs
    flops = get_model_complexity_info(
        SegmentorExport(model), inputs=(x[:1], ), show_table=False,
        show_arch=False)['flops']
    logger.setLevel(level)
    params = sum(p.numel() for n, p in model.named_parameters()
                 if n.split('.')[1] not in TRAINING_ONLY)
    print(f'{osp.basename(args.config)} at {shape[0]}x{shape[1]}, batch '
          f'{args.batch}, {args.device}, {torch.get_num_threads()} threads'
          f'{"" if args.checkpoint else ", random weights"}')
    print(f'params {params / 1e6:.2f} M (without the training-only heads), '
          f'{flops / 1e9:.1f} GFLOPs (multiply-adds, batch 1)')

    dtype = reduced_dtype(args.device)
    variants = {}
    if args.compare or not args.fuse:
        variants['plain'] = make_runner(model, args.device)
    if args.compare or args.fuse:
        prepared = prepare_for_inference(
            copy.deepcopy(model),
            dtype=dtype if args.amp and not args.compare else torch.float32)
        variants['prepared'] = make_runner(prepared, args.device)
    if args.compare:
        low = prepare_for_inference(copy.deepcopy(model), dtype=dtype)
        variants[f'prepared {str(dtype)[6:]}'] = make_runner(low, args.device)
        if args.onnx:
            variants['onnxruntime'] = make_onnx_runner(
                prepared, shape, args.batch)

    times = time_variants(variants, x, args.device, args.seconds, args.repeat)
    base = np.mean(times[next(iter(times))])
    print(f'{"variant":<18}{"latency ms":>12}{"spread ms":>12}{"FPS":>9}'
          f'{"ratio":>8}')
    for name, t in times.items():
        t = np.array(t)
        print(f'{name:<18}{t.mean() * 1e3:>12.1f}'
              f'{(t.max() - t.min()) * 1e3:>12.1f}'
              f'{args.batch / t.mean():>9.2f}{t.mean() / base:>8.2f}')
    if args.compare and args.images:
        images = sorted(glob.glob(osp.join(args.images, '**', '*.png'),
                                  recursive=True))
        if not images:
            raise SystemExit(f'no .png images under {args.images}')
        share = label_agreement(variants['prepared'],
                                variants[f'prepared {str(dtype)[6:]}'],
                                images, shape, model.cfg)
        print(f'{str(dtype)[6:]} labels equal to fp32 on {len(images)} '
              f'images: {share * 100:.2f}% of pixels'
              f'{"" if args.checkpoint else " (random weights: near-ties, says little)"}')


if __name__ == '__main__':
    main()

# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Measure SANet's inference speed the DDRNet/PIDNet way.

Random input, warm-up, CUDA synchronisation, iterations sized to run
--seconds per variant, --repeat times; prints latency and FPS with the
spread over the repeats, and params and FLOPs (MMEngine's complexity
analysis). By default it times the plain model; --fuse times the prepared
one (sanet_mmseg.deploy.prepare_for_inference), --amp in reduced precision
(bf16 on CPU, fp16 on CUDA), --compile compiled with torch.compile.
--compare times the plain model, the prepared one, the prepared one in
reduced precision, with --compile both compiled and, with --onnx, ONNX Runtime,
INTERLEAVED in one run (the order rotates each repeat), and prints each
one's time as a ratio to the plain model's in the same repeat; with --images
it also prints the share of pixels whose label equals the plain fp32
model's on those images.
"""
import argparse
import copy
import logging
import os
import os.path as osp
import tempfile
import time

import mmcv
import numpy as np
import torch
import torch.nn.functional as F
from mmengine.analysis import get_model_complexity_info
from mmengine.logging import MMLogger
from mmseg.apis import init_model

from sanet_mmseg.analysis import list_images
from sanet_mmseg.deploy import (TRAINING_ONLY, SegmentorExport, export_onnx,
                                onnx_session, prepare_for_inference)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--checkpoint', help='checkpoint file (default: random weights)')
    parser.add_argument(
        '--shape', type=int, nargs=2, default=[1024, 2048],
        metavar=('H', 'W'), help='input height and width')
    parser.add_argument('--device', default='cpu', help='cpu or cuda[:N]')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument(
        '--fuse', action='store_true', help='time the prepared model')
    parser.add_argument(
        '--amp', action='store_true',
        help='reduced precision (bf16 on CPU, fp16 on CUDA): autocast on the '
        'plain model, or with --fuse weights and activations of the '
        'prepared model')
    parser.add_argument(
        '--compile', action='store_true',
        help='also compile the prepared model(s) with torch.compile '
        '(Inductor, frozen weights): with --fuse the timed model, with '
        '--compare extra variants')
    parser.add_argument(
        '--repeat', type=int, default=3, help='timed rounds (default 3)')
    parser.add_argument(
        '--seconds', type=float, default=5,
        help='time per variant per round (default 5)')
    parser.add_argument(
        '--compare', action='store_true',
        help='time plain, prepared, prepared in reduced precision (and ONNX '
        'Runtime with --onnx) interleaved; print ratios')
    parser.add_argument(
        '--onnx', action='store_true',
        help='with --compare: add ONNX Runtime (CPU) on the prepared model')
    parser.add_argument(
        '--nchw', action='store_true',
        help='with --compare: add the prepared model in NCHW memory format '
        '(prepared uses channels-last)')
    parser.add_argument(
        '--images',
        help='with --compare: folder of images (searched recursively) on '
        'which to count the pixels whose label equals the fp32 label')
    parser.add_argument(
        '--threads', type=int, default=0,
        help='CPU threads for torch and ONNX Runtime (default: torch\'s)')
    args = parser.parse_args(argv)
    if min(args.shape) < 1 or args.batch < 1 or args.repeat < 1 or \
            args.seconds <= 0:
        parser.error('--shape, --batch, --repeat and --seconds must be '
                     'positive')
    if (args.onnx or args.nchw or args.images) and not args.compare:
        parser.error('--onnx, --nchw and --images go with --compare')
    if args.compile and not (args.fuse or args.compare):
        parser.error('--compile goes with --fuse or --compare')
    if args.amp and args.compare:
        parser.error('--compare always includes reduced precision: drop '
                     '--amp')
    return args


def reduced_dtype(device):
    """bf16 on CPU, fp16 on CUDA."""
    return torch.float16 if device.startswith('cuda') else torch.bfloat16


def dtype_name(dtype):
    return str(dtype).replace('torch.', '')


def sync(device):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def make_runner(model, autocast=None):
    """Tensor in, logits out, no autograd; ``autocast``: a reduced dtype to
    autocast to."""
    device_type = next(model.parameters()).device.type

    def run(x):
        with torch.no_grad(), torch.autocast(
                device_type, dtype=autocast, enabled=autocast is not None):
            return model._forward(x)

    return run


def make_onnx_runner(model, shape, batch, threads=0):
    """Export the (float32, prepared) model to a temporary file and return a
    runner on an ONNX Runtime CPU session."""
    path = osp.join(tempfile.mkdtemp(), 'sanet.onnx')
    export_onnx(model, path, shape, batch)
    session = onnx_session(path, threads)

    def run(x):
        return torch.from_numpy(
            session.run(None, {'input': x.detach().cpu().numpy()})[0])

    return run


def time_variants(variants, x, device='cpu', seconds=5., repeat=3):
    """Time the runners interleaved: after a warm-up that also sizes each
    one's iterations to ``seconds``, ``repeat`` rounds in which each runs its
    iterations in turn (order rotated each round), CUDA synchronised.

    Returns:
        dict[str, list[float]]: seconds per call of each runner, per round.
    """
    iters = {}
    for name, run in variants.items():
        for _ in range(2):
            run(x)
        sync(device)
        start = time.perf_counter()
        run(x)
        sync(device)
        iters[name] = max(1, round(seconds / (time.perf_counter() - start)))
    names = list(variants)
    times = {name: [] for name in names}
    for r in range(repeat):
        for name in names[r % len(names):] + names[:r % len(names)]:
            run = variants[name]
            sync(device)
            start = time.perf_counter()
            for _ in range(iters[name]):
                run(x)
            sync(device)
            times[name].append((time.perf_counter() - start) / iters[name])
    return times


def format_times(times, batch):
    """A table of latency, spread, FPS and the ratio to the first variant
    computed round by round (mean and min-max)."""
    base_name = next(iter(times))
    base = np.array(times[base_name])
    width = max(len(name) for name in times) + 2
    lines = [f'{"variant":<{width}}{"latency ms":>11}{"spread ms":>11}'
             f'{"FPS":>8}  ratio to {base_name} (min-max)']
    for name, t in times.items():
        t = np.array(t)
        ratio = t / base
        lines.append(f'{name:<{width}}{t.mean() * 1e3:>11.1f}'
                     f'{(t.max() - t.min()) * 1e3:>11.1f}'
                     f'{batch / t.mean():>8.2f}  {ratio.mean():.3f} '
                     f'({ratio.min():.3f}-{ratio.max():.3f})')
    return '\n'.join(lines)


def label_agreement(reference,
                    others,
                    images,
                    shape,
                    model,
                    device='cpu',
                    batch=1):
    """Share of pixels whose label from each of ``others`` equals the label
    from ``reference``, on ``images`` resized to ``shape`` and normalised by
    ``model``'s data_preprocessor (each image repeated to ``batch``, the
    batch a fixed-shape ONNX graph takes); labels at the input size (logits
    upsampled as ``model`` does).

    Returns:
        dict[str, float]: share per runner in ``others``.
    """

    def labels(run, x):
        logits = run(x).to(device=device, dtype=torch.float32)
        return F.interpolate(
            logits,
            size=x.shape[2:],
            mode='bilinear',
            align_corners=model.decode_head.align_corners).argmax(1)

    equal = {name: 0 for name in others}
    total = 0
    for path in images:
        img = mmcv.imread(path)  # BGR, as MMSeg's LoadImageFromFile
        if img is None:
            raise ValueError(f'cannot read image {path}')
        img = mmcv.imresize(img, (shape[1], shape[0]))
        x = model.data_preprocessor(
            dict(inputs=[torch.from_numpy(img).permute(2, 0, 1)]),
            False)['inputs']
        x = x.to(device).expand(batch, -1, -1, -1).contiguous()
        expected = labels(reference, x)
        for name, run in others.items():
            equal[name] += (labels(run, x) == expected).sum().item()
        total += expected.numel()
    return {name: n / total for name, n in equal.items()}


def complexity(model, x):
    """(params without the training-only heads, FLOPs of one image)."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)  # notes on operators without FLOPs
    try:
        flops = get_model_complexity_info(
            SegmentorExport(model), inputs=(x[:1], ), show_table=False,
            show_arch=False)['flops']
    finally:
        logger.setLevel(level)
    params = sum(p.numel() for n, p in model.named_parameters()
                 if n.split('.')[1] not in TRAINING_ONLY)
    return params, flops


def cpu_note(device):
    if device.startswith('cuda'):
        return f'{torch.cuda.get_device_name(device)}'
    bf16 = torch.backends.mkldnn.is_available() and \
        torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return (f'cpu, {torch.get_num_threads()} threads, oneDNN bf16 '
            f'{"supported" if bf16 else "NOT supported (bf16 will be slow)"}')


def main(argv=None):
    args = parse_args(argv)
    device = args.device
    if device.startswith('cuda'):
        if not torch.cuda.is_available():
            raise SystemExit('--device cuda: no CUDA device here; use '
                             '--device cpu')
        if args.onnx:
            raise SystemExit('--onnx times ONNX Runtime on the CPU: use '
                             '--device cpu (on a GPU, build a TensorRT '
                             'engine from the exported file instead)')
        torch.backends.cudnn.benchmark = True
    elif device != 'cpu':
        raise SystemExit(f'--device must be cpu or cuda[:N], got {device}')
    if args.threads:
        torch.set_num_threads(args.threads)
    images = list_images(args.images) if args.images else None

    model = init_model(args.config, args.checkpoint, device=device)
    shape = tuple(args.shape)
    x = torch.randn(args.batch, 3, *shape, device=device)
    params, flops = complexity(model, x)
    weights = f'checkpoint {args.checkpoint}' if args.checkpoint else \
        'random weights'
    print(f'{osp.basename(args.config)} at {shape[0]}x{shape[1]}, batch '
          f'{args.batch}, {cpu_note(device)}, torch {torch.__version__}, '
          f'{weights}')
    print(f'params {params / 1e6:.2f} M (without the training-only heads), '
          f'{flops / 1e9:.1f} GFLOPs (multiply-adds, one image)')
    print(f'load average before: {os.getloadavg()[0]:.2f}')

    dtype = reduced_dtype(device)
    low = f'prepared {dtype_name(dtype)}'
    variants = {}
    if args.compare or not args.fuse:
        name = f'plain autocast {dtype_name(dtype)}' if args.amp else 'plain'
        variants[name] = make_runner(model, dtype if args.amp else None)
    if args.fuse and not args.compare:
        name = low if args.amp else 'prepared'
        variants[name + (' compiled' if args.compile else '')] = make_runner(
            prepare_for_inference(
                copy.deepcopy(model),
                dtype=dtype if args.amp else torch.float32,
                compile=args.compile))
    if args.compare:
        prepared = prepare_for_inference(copy.deepcopy(model))
        variants['prepared'] = make_runner(prepared)
        if args.nchw:
            variants['prepared nchw'] = make_runner(
                prepare_for_inference(
                    copy.deepcopy(model), channels_last=False))
        variants[low] = make_runner(
            prepare_for_inference(copy.deepcopy(model), dtype=dtype))
        if args.compile:
            for name, dt in (('prepared', torch.float32), (low, dtype)):
                variants[f'{name} compiled'] = make_runner(
                    prepare_for_inference(
                        copy.deepcopy(model), dtype=dt, compile=True))
        if args.onnx:
            variants['onnxruntime'] = make_onnx_runner(
                prepared, shape, args.batch, args.threads)

    times = time_variants(variants, x, device, args.seconds, args.repeat)
    print(f'load average after: {os.getloadavg()[0]:.2f}')
    print(format_times(times, args.batch))

    if images:
        others = {k: v for k, v in variants.items() if k != 'plain'}
        shares = label_agreement(variants['plain'], others, images, shape,
                                 model, device, args.batch)
        note = '' if args.checkpoint else (
            ' (random weights: the logits are near-ties, so this says '
            'little about a trained model)')
        print(f'labels equal to the plain fp32 model\'s on {len(images)} '
              f'images at {shape[0]}x{shape[1]}{note}:')
        width = max(map(len, shares)) + 2
        for name, share in shares.items():
            print(f'  {name:<{width}}{share * 100:.3f}% of pixels')
    elif args.compare:
        print(f'(add --images DIR for the share of {dtype_name(dtype)} '
              'labels equal to fp32)')


if __name__ == '__main__':
    main()

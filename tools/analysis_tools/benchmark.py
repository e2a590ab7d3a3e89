# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Time SANet on any set of backends and precisions, interleaved in one run.

Every runner is timed against "plain", the model as trained (init_model,
float32 PyTorch, which computes what the authors' code computes): random
input of --shape, a warm-up that also sizes each runner's iterations to
--seconds, then --repeat rounds in which every runner runs its iterations
in turn (the order rotates each round, CUDA synchronised); the table gives
latency, FPS and each runner's time as a ratio to plain's in the same round.
It also prints params, FLOPs (MMEngine's complexity analysis) and the CPU
features that decide the reduced-precision speed (AMX, AVX-512 BF16,
AVX-512 VNNI / AVX-VNNI). Runners are BACKEND:PRECISION
(sanet_mmseg.deploy.build_predictor): torch:fp32/bf16/fp16 (the prepared
model), onnxruntime:fp32/int8, openvino:fp32/bf16/int8. int8 is
calibrated on --calib images (the config's dataset or a folder), or on
random inputs, which is fine for timing only. --images DIR adds the share of
pixels whose label equals the plain model's, on those images.
"""
import logging
import os
import os.path as osp
import platform
import re
import time

import numpy as np
import torch
from mmengine.analysis import get_model_complexity_info
from mmengine.config import Config
from mmengine.logging import MMLogger

from sanet_mmseg.cli import add_shape, add_threads, positive, tool_parser
from sanet_mmseg.deploy import (PRECISIONS, DeployedSegmentor,
                                PipelineInputs, TorchPredictor,
                                build_predictor, check_backend,
                                load_segmentor)
from sanet_mmseg.deploy.artefact import library_versions
from sanet_mmseg.models.segmentor_output import SegmentorOutput

CPU_DEFAULT = ('torch:fp32,torch:bf16,onnxruntime:fp32,onnxruntime:int8,'
               'openvino:fp32,openvino:bf16,openvino:int8')
CUDA_DEFAULT = 'torch:fp32,torch:fp16'
CPU_FEATURES = ('amx_tile', 'amx_bf16', 'amx_int8', 'avx512_bf16',
                'avx512_vnni', 'avx_vnni', 'avx512f')


def parse_backends(text):
    """'a:b,c:d' -> [('a', 'b'), ('c', 'd')], checked."""
    runners = []
    for item in text.split(','):
        backend, _, precision = item.strip().partition(':')
        check_backend(backend, precision or 'fp32')
        runners.append((backend, precision or 'fp32'))
    return runners


def parse_args(argv=None):
    parser = tool_parser(__doc__, 'config')
    parser.add_argument(
        '--checkpoint', help='checkpoint file (default: random weights)')
    add_shape(parser, 'input height and width (default 1024 2048)',
              default=[1024, 2048])
    parser.add_argument(
        '--backends',
        help=f'runners to time besides plain (default on CPU: {CPU_DEFAULT};'
        f' on CUDA: {CUDA_DEFAULT}); choices: ' + ', '.join(
            f'{b}:{p}' for b, ps in PRECISIONS.items() for p in ps))
    parser.add_argument(
        '--calib', help="int8 calibration images: 'config' or a folder "
        '(default: random inputs, for timing only)')
    parser.add_argument(
        '--calib-num', type=positive(int), default=3,
        help='number of calibration images (default 3)')
    parser.add_argument(
        '--images', help='folder of images (searched recursively) on which '
        'to count the pixels labelled as by plain')
    parser.add_argument('--device', default='cpu', help='cpu or cuda[:N]')
    add_threads(parser)
    parser.add_argument(
        '--seconds', type=positive(float), default=5,
        help='time per runner per round (default 5)')
    parser.add_argument(
        '--repeat', type=positive(int), default=3,
        help='timed rounds (default 3)')
    args = parser.parse_args(argv)
    cuda = args.device.startswith('cuda')
    if not cuda and args.device != 'cpu':
        parser.error(f'--device must be cpu or cuda[:N], got {args.device}')
    try:
        args.backends = parse_backends(
            args.backends or (CUDA_DEFAULT if cuda else CPU_DEFAULT))
    except ValueError as e:
        parser.error(f'--backends: {e}')
    if cuda and any(b != 'torch' for b, _ in args.backends):
        parser.error('onnxruntime and openvino run on the CPU here: use '
                     '--device cpu')
    return args


def cpu_description():
    """The CPU model and which of CPU_FEATURES it has (Linux)."""
    name, flags = platform.processor() or platform.machine(), set()
    if osp.isfile('/proc/cpuinfo'):
        with open('/proc/cpuinfo') as f:
            info = f.read()
        match = re.search(r'model name\s*:\s*(.*)', info)
        name = match.group(1).strip() if match else name
        match = re.search(r'flags\s*:\s*(.*)', info)
        flags = set(match.group(1).split()) if match else set()
    found = [f for f in CPU_FEATURES if f in flags]
    return f'{name}; {" ".join(found) or "none of " + ", ".join(CPU_FEATURES)}'


def versions():
    found = library_versions(('torch', 'onnxruntime', 'openvino', 'nncf'))
    return ', '.join(f'{n} {v}' for n, v in found.items() if v)


def sync(device):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


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


def format_times(times, batch=1):
    """A table of latency, spread, FPS and the ratio to the first runner
    computed round by round (mean and min-max)."""
    base_name = next(iter(times))
    base = np.array(times[base_name])
    width = max(len(name) for name in times) + 2
    lines = [f'{"runner":<{width}}{"latency ms":>11}{"spread ms":>11}'
             f'{"FPS":>8}  ratio to {base_name} (min-max)']
    for name, t in times.items():
        t = np.array(t)
        ratio = t / base
        lines.append(f'{name:<{width}}{t.mean() * 1e3:>11.1f}'
                     f'{(t.max() - t.min()) * 1e3:>11.1f}'
                     f'{batch / t.mean():>8.2f}  {ratio.mean():.3f} '
                     f'({ratio.min():.3f}-{ratio.max():.3f})')
    return '\n'.join(lines)


def label_agreement(runners, images, align_corners):
    """Share of pixels whose label from each runner equals the first
    runner's, the logits upsampled to the input as the segmentor does.

    Returns:
        dict[str, float]: share per runner after the first.
    """
    models = {
        name: DeployedSegmentor(run, align_corners=align_corners)
        for name, run in runners.items()
    }
    base, *others = models
    equal = dict.fromkeys(others, 0)
    total = 0
    for x in images:
        expected = models[base].encode_decode(x, None).argmax(1).cpu()
        for name in others:
            labels = models[name].encode_decode(x, None).argmax(1).cpu()
            equal[name] += (labels == expected).sum().item()
        total += expected.numel()
    return {name: n / total for name, n in equal.items()}


def complexity(model, x):
    """(params without the training-only heads, FLOPs of one image)."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)  # notes on operators without FLOPs
    try:
        flops = get_model_complexity_info(
            SegmentorOutput(model), inputs=(x[:1], ), show_table=False,
            show_arch=False)['flops']
    finally:
        logger.setLevel(level)
    head = model.decode_head
    skip = tuple(f'decode_head.{n}.' for n in head.TRAINING_ONLY)
    params = sum(p.numel() for n, p in model.named_parameters()
                 if not n.startswith(skip))
    return params, flops


def main(argv=None):
    args = parse_args(argv)
    device = args.device
    if device.startswith('cuda'):
        if not torch.cuda.is_available():
            raise SystemExit('--device cuda: no CUDA device here')
        torch.backends.cudnn.benchmark = True
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = Config.fromfile(args.config)
    model = load_segmentor(cfg, args.checkpoint, device)
    shape = tuple(args.shape)
    x = torch.randn(1, 3, *shape, device=device)
    params, flops = complexity(model, x)
    hardware = torch.cuda.get_device_name(device) if \
        device.startswith('cuda') else cpu_description()
    weights = f'checkpoint {args.checkpoint}' if args.checkpoint else \
        'random weights'
    print(f'{osp.basename(args.config)} at {shape[0]}x{shape[1]}, batch 1, '
          f'{weights}')
    print(f'{hardware}; {torch.get_num_threads()} threads; {versions()}')
    print(f'params {params / 1e6:.2f} M (without the training-only heads), '
          f'{flops / 1e9:.1f} GFLOPs (multiply-adds)')

    # lazy; made first so that a missing folder fails before the timing
    images = args.images and PipelineInputs(cfg, args.images, shape=shape)
    calib = None
    if any(p == 'int8' for _, p in args.backends):
        if args.calib:
            calib = PipelineInputs(cfg, args.calib, args.calib_num, shape)
        else:
            calib = [torch.randn(1, 3, *shape) for _ in range(args.calib_num)]
            print(f'int8 calibrated on {args.calib_num} random inputs '
                  '(timing only; --calib for real images)')
    runners = {'plain': TorchPredictor(model, 'fp32')}
    for backend, precision in args.backends:
        runner = build_predictor(
            model, backend, precision, shape, calib, threads=args.threads)
        runners[runner.name] = runner
    print(f'load average before: {os.getloadavg()[0]:.2f}')
    times = time_variants(runners, x, device, args.seconds, args.repeat)
    print(f'load average after: {os.getloadavg()[0]:.2f}')
    print(format_times(times))

    if images:
        shares = label_agreement(
            runners, (i.to(device) for i in images),
            model.decode_head.align_corners)
        note = '' if args.checkpoint else (
            ' (random weights: the logits are near-ties, so this says '
            'little about a trained model)')
        print(f'labels equal to plain\'s on {len(images)} images at '
              f'{shape[0]}x{shape[1]}{note}:')
        width = max(map(len, shares)) + 2
        for name, share in shares.items():
            print(f'  {name:<{width}}{share * 100:.3f}% of pixels')


if __name__ == '__main__':
    main()

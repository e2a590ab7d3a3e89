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
random inputs, which is fine for timing only. --artefact DIR (one or more)
times exported artefacts of tools/deployment/export.py as they are shipped
(checked against CONFIG as tools/deployment/test.py checks them; --shape
defaults to theirs); with --artefact, --backends defaults to none.
--images DIR adds the share of pixels whose label equals the plain model's,
on those images.
"""
import os
import os.path as osp

import torch
from mmengine.config import Config

from sanet_mmseg.benchmark import (complexity, cpu_description,
                                   format_times, label_agreement,
                                   parse_runners, precision_notes,
                                   time_variants, versions)
from sanet_mmseg.cli import (add_shape, add_threads, checkpoint_file,
                             open_for_config, positive, tool_parser)
from sanet_mmseg.deploy import (PRECISIONS, PipelineInputs, TorchPredictor,
                                build_predictor, check_backend,
                                load_predictor, load_segmentor)

CPU_DEFAULT = ('torch:fp32,torch:bf16,onnxruntime:fp32,onnxruntime:int8,'
               'openvino:fp32,openvino:bf16,openvino:int8')
CUDA_DEFAULT = 'torch:fp32,torch:fp16'


def parse_args(argv=None):
    parser = tool_parser(__doc__, 'config')
    parser.add_argument(
        '--checkpoint', type=checkpoint_file,
        help='checkpoint file (default: random weights)')
    add_shape(
        parser, "input height and width (default: the artefacts', else "
        '1024 2048)')
    parser.add_argument(
        '--backends',
        help=f'runners to time besides plain (default on CPU: {CPU_DEFAULT};'
        f' on CUDA: {CUDA_DEFAULT}; with --artefact: none); choices: ' +
        ', '.join(f'{b}:{p}' for b, ps in PRECISIONS.items() for p in ps))
    parser.add_argument(
        '--artefact', nargs='+', default=[], metavar='DIR',
        help='artefact folders of tools/deployment/export.py to time')
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
    default = '' if args.artefact else CUDA_DEFAULT if cuda else CPU_DEFAULT
    try:
        args.backends = parse_runners(args.backends or default, check_backend)
    except ValueError as e:
        parser.error(f'--backends: {e}')
    if cuda and (args.artefact or any(b != 'torch' for b, _ in args.backends)):
        parser.error('onnxruntime and openvino run on the CPU here: use '
                     '--device cpu')
    return args


def artefact_runners(cfg, folders, shape, threads):
    """{name: predictor} of the artefacts, checked against ``cfg`` (as
    tools/deployment/test.py checks them), and the input (H, W): ``shape``,
    else the artefacts' own, else 1024x2048."""
    runners, sizes = {}, set()
    for folder in folders:
        meta, size = open_for_config(folder, cfg)
        if size is not None:
            sizes.add(tuple(size))
        name = f'{osp.basename(osp.normpath(folder))} ' \
            f'({meta["backend"]}:{meta["precision"]})'
        runners[name] = (folder, meta)
    if len(sizes) > 1 or (shape and sizes and sizes != {tuple(shape)}):
        given = [f'{h}x{w}' for h, w in sizes | ({tuple(shape)} if shape
                                                 else set())]
        raise SystemExit(f'the artefacts and --shape take different input '
                         f'sizes ({", ".join(sorted(given))}): time them in '
                         'separate runs')
    shape = tuple(shape) if shape else sizes.pop() if sizes else (1024, 2048)
    return {name: load_predictor(folder, threads)
            for name, (folder, _) in runners.items()}, shape


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
    artefacts, shape = artefact_runners(cfg, args.artefact, args.shape,
                                        args.threads)
    model = load_segmentor(cfg, args.checkpoint, device)
    x = torch.randn(1, 3, *shape, device=device)
    params, flops = complexity(model, x)
    hardware = torch.cuda.get_device_name(device) if \
        device.startswith('cuda') else cpu_description()
    weights = f'checkpoint {args.checkpoint}' if args.checkpoint else \
        'random weights'
    print(f'{osp.basename(args.config)} at {shape[0]}x{shape[1]}, batch 1, '
          f'plain with {weights}')
    print(f'{hardware}; {torch.get_num_threads()} threads; {versions()}')
    print(f'params {params / 1e6:.2f} M (without the training-only heads), '
          f'{flops / 1e9:.1f} GFLOPs (multiply-adds)')
    for name, predictor in artefacts.items():
        source = predictor.meta.get('source', {})
        weights = source.get('checkpoint') or ('random weights' if
                                               'checkpoint' in source else
                                               'an unrecorded checkpoint')
        print(f'artefact {name}: {predictor.meta["folder"]}, from {weights}')

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
    runners.update(artefacts)
    for note in precision_notes(runners):
        print(note)
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

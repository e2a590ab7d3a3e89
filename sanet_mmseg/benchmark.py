# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Timing runners side by side (interleaved rounds, ratios to a baseline
measured in the same rounds), and what to print beside the figures: the
CPU's features, library versions, params and FLOPs, label agreement."""
import logging
import time
from typing import (Callable, Dict, Iterable, List, Optional, Sequence,
                    Tuple)

import numpy as np
import torch
import torch.nn as nn
from mmengine.analysis import get_model_complexity_info
from mmengine.logging import MMLogger
from torch import Tensor

from .comparison import compare_logits
from .cpu import cpu_info
from .deploy.artefact import library_versions
from .models.segmentor_output import SegmentorOutput

#: /proc/cpuinfo flags that decide the reduced-precision speed on the CPU
CPU_FEATURES = ('amx_tile', 'amx_bf16', 'amx_int8', 'avx512_bf16',
                'avx512_vnni', 'avx_vnni', 'avx512f', 'avx2')


def cpu_description(cpuinfo: str = '/proc/cpuinfo') -> str:
    """'MODEL NAME; FLAGS': the CPU model and which of
    :data:`CPU_FEATURES` it has (read from ``cpuinfo`` on Linux)."""
    name, flags = cpu_info(cpuinfo)
    found = [f for f in CPU_FEATURES if f in flags]
    return f'{name}; {" ".join(found) or "none of " + ", ".join(CPU_FEATURES)}'


def precision_notes(runners: Dict[str, Callable]) -> List[str]:
    """A line for each runner whose runtime computes in another precision
    than its name says: OpenVINO on a CPU without bf16 support compiles a
    bf16 request as f32 (``INFERENCE_PRECISION_HINT`` of the compiled
    model), so its times are float32's."""
    notes = []
    for name, runner in runners.items():
        compiled = getattr(runner, 'compiled', None)
        if compiled is None or runner.precision != 'bf16':
            continue
        hint = compiled.get_property('INFERENCE_PRECISION_HINT')
        if hint.get_type_name() != 'bf16':
            notes.append(f'{name} runs in {hint.get_type_name()}: OpenVINO '
                         'has no bf16 on this CPU')
    return notes


def _sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def time_variants(variants: Dict[str, Callable],
                  x,
                  device: str = 'cpu',
                  seconds: float = 5.,
                  repeat: int = 3) -> Dict[str, List[float]]:
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
        _sync(device)
        start = time.perf_counter()
        run(x)
        _sync(device)
        iters[name] = max(1, round(seconds / (time.perf_counter() - start)))
    names = list(variants)
    times = {name: [] for name in names}
    for r in range(repeat):
        for name in names[r % len(names):] + names[:r % len(names)]:
            run = variants[name]
            _sync(device)
            start = time.perf_counter()
            for _ in range(iters[name]):
                run(x)
            _sync(device)
            times[name].append((time.perf_counter() - start) / iters[name])
    return times


def format_times(times: Dict[str, List[float]], batch: int = 1) -> str:
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


def label_agreement(runners: Dict[str, Callable[[Tensor], Tensor]],
                    inputs: Iterable[Tensor],
                    align_corners: bool) -> Dict[str, float]:
    """Share of pixels whose label from each runner equals the first
    runner's, the logits upsampled to the input as ``EncoderDecoder``
    does (:func:`compare_logits` on each input).

    Args:
        runners (dict): Name -> predictor (normalised input -> logits).
        inputs (Iterable[Tensor]): Normalised inputs (1, 3, H, W).
        align_corners (bool): Of the upsampling.

    Returns:
        dict[str, float]: share per runner after the first.
    """

    def upsampled(run, x):
        return nn.functional.interpolate(
            run(x).float().to(x.device), size=x.shape[2:], mode='bilinear',
            align_corners=align_corners)

    base, *others = runners
    equal, total = dict.fromkeys(others, 0.), 0
    for x in inputs:
        expected = upsampled(runners[base], x)
        pixels = expected.shape[0] * expected.shape[2] * expected.shape[3]
        for name in others:
            got = upsampled(runners[name], x)
            equal[name] += compare_logits(got, expected).labels_equal * pixels
        total += pixels
    return {name: n / total for name, n in equal.items()}


def complexity(model: nn.Module, x: Tensor) -> Tuple[int, int]:
    """(params without the training-only heads, FLOPs of one image
    (multiply-adds, MMEngine's complexity analysis))."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)  # notes on operators without FLOPs
    try:
        flops = get_model_complexity_info(
            SegmentorOutput(model), inputs=(x[:1], ), show_table=False,
            show_arch=False)['flops']
    finally:
        logger.setLevel(level)
    skip = tuple(f'decode_head.{n}.' for n in model.decode_head.TRAINING_ONLY)
    params = sum(p.numel() for n, p in model.named_parameters()
                 if not n.startswith(skip))
    return params, flops


def versions(names: Sequence[str] = ('torch', 'onnxruntime', 'openvino',
                                     'nncf')) -> str:
    """'torch 2.x, openvino 2026.x, ...': the installed ones of ``names``."""
    found = library_versions(names)
    return ', '.join(f'{n} {v}' for n, v in found.items() if v)


def parse_runners(text: str,
                  check: Optional[Callable[[str, str], None]] = None
                  ) -> List[Tuple[str, str]]:
    """'a:b,c' -> [('a', 'b'), ('c', 'fp32')] ('' -> []), each pair passed
    to ``check`` (which raises a ValueError for a pair it refuses)."""
    runners = []
    for item in filter(None, text.split(',')):
        backend, _, precision = item.strip().partition(':')
        pair = backend, precision or 'fp32'
        if check is not None:
            check(*pair)
        runners.append(pair)
    return runners

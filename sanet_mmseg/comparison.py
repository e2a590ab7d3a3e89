# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""How close two models' outputs are: the one comparison of logits that the
export checks, the benchmark and the tests make."""
from typing import NamedTuple, Union

import numpy as np
import torch
from torch import Tensor

Array = Union[Tensor, np.ndarray]


def _tensor(x: Array) -> Tensor:
    return torch.as_tensor(x).detach().cpu().double()


def relative_error(got: Array, expected: Array) -> float:
    """max |got - expected| / max |expected|: the largest difference, as a
    share of the largest reference value (so a float32 rounding error reads
    ~1e-7 whatever the logits' scale).

    Raises:
        ValueError: If the shapes differ, naming both.
    """
    got, expected = _tensor(got), _tensor(expected)
    if got.shape != expected.shape:
        raise ValueError(f'cannot compare outputs of shape '
                         f'{tuple(got.shape)} with {tuple(expected.shape)}')
    scale = expected.abs().max().item()
    diff = (got - expected).abs().max().item()
    if scale == 0:
        return 0.0 if diff == 0 else float('inf')
    return diff / scale


class LogitsComparison(NamedTuple):
    """Result of :func:`compare_logits`."""
    #: :func:`relative_error` of the logits
    rel_err: float
    #: share of positions whose argmax over the classes (dim 1) is equal
    labels_equal: float


def compare_logits(got: Array, expected: Array) -> LogitsComparison:
    """Compare logits (N, C, H, W) with reference logits of the same shape:
    their :func:`relative_error` and the share of equal labels (argmax over
    C)."""
    err = relative_error(got, expected)
    got, expected = _tensor(got), _tensor(expected)
    if got.dim() < 2:
        raise ValueError('logits have a class dimension (N, C, ...), got '
                         f'shape {tuple(got.shape)}')
    same = (got.argmax(1) == expected.argmax(1)).double().mean().item()
    return LogitsComparison(err, same)

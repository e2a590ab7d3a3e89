# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Stop a training run at the first loss or gradient that is not finite."""
import math
from typing import Dict, List

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import find_latest_checkpoint

from mmseg.registry import HOOKS


class NonFiniteError(RuntimeError):
    """A loss term or the weights after an update are NaN or Inf."""


@HOOKS.register_module()
class CheckNonFiniteHook(Hook):
    """Stop training at once when a loss term is NaN or Inf, or when the
    update made a weight NaN or Inf (the gradients were not finite), instead
    of training on for hours. MMDetection's ``CheckInvalidLossHook``, every
    iteration, for the gradients too and on every rank at the same
    iteration.

    After each iteration: the loss terms of the model's ``log_vars``, then
    the parameters. When any rank finds one that is not finite, every rank
    raises :class:`NonFiniteError` with the iteration, the loss terms that
    are not finite (with their values, per rank) and the last checkpoint
    to resume from (``WORK_DIR/last_checkpoint``). It runs before the
    checkpoint hook, so no checkpoint of that iteration is written.

    Under MMEngine's ``AmpOptimWrapper`` (fp16 with a loss scaler) a step
    the scaler skips because of an overflow is not a failure: the weights
    are unchanged and the scale goes down; only ``max_skipped_steps``
    skipped steps in a row stop the run.

    Args:
        max_skipped_steps (int): Consecutive steps the fp16 loss scaler may
            skip before the run stops. Default: 50.
    """

    priority = 'ABOVE_NORMAL'  # before the logger and checkpoint hooks

    def __init__(self, max_skipped_steps: int = 50):
        self.max_skipped_steps = max_skipped_steps
        self._scale = None
        self._skipped = 0

    @staticmethod
    def _scaler(runner):
        """The loss scaler of an ``AmpOptimWrapper`` (or of any wrapper
        with a ``loss_scaler``), or None."""
        scaler = getattr(runner.optim_wrapper, 'loss_scaler', None)
        return scaler if hasattr(scaler, 'get_scale') else None

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        scaler = self._scaler(runner)
        self._scale = scaler.get_scale() if scaler is not None else None

    @staticmethod
    def _bad_losses(outputs) -> Dict[str, float]:
        bad = {}
        for name, value in (outputs or {}).items():
            value = float(value.detach().float().mean()) if isinstance(
                value, torch.Tensor) else float(value)
            if not math.isfinite(value):
                bad[name] = value
        return bad

    @staticmethod
    def _bad_params(runner) -> List[str]:
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        names, params = zip(*model.named_parameters())
        finite = torch.stack([torch.isfinite(p).all() for p in params])
        if bool(finite.all()):  # one device sync per iteration
            return []
        return [n for n, ok in zip(names, finite.tolist()) if not ok]

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        losses = self._bad_losses(outputs)
        scaler = self._scaler(runner)
        skipped = (scaler is not None and self._scale is not None
                   and scaler.get_scale() < self._scale)
        if skipped:
            self._skipped += 1
            runner.logger.warning(
                f'iteration {runner.iter + 1}: the fp16 loss scaler skipped '
                f'the step (scale {self._scale} -> {scaler.get_scale()}; '
                f'loss terms not finite: {losses or "none"})')
            losses = {}
        else:
            self._skipped = 0
        params = self._bad_params(runner)
        too_many = self._skipped > self.max_skipped_steps
        flag = torch.tensor([float(bool(losses or params or too_many))])
        if get_world_size() > 1:
            all_reduce(flag)
        if not flag.item():
            return
        ckpt = find_latest_checkpoint(runner.work_dir)
        found = []
        if losses:
            found.append('loss terms ' + ', '.join(
                f'{k}={v}' for k, v in losses.items()))
        if params:
            found.append(f'{len(params)} weights after the update (the '
                         f'gradients were not finite), e.g. '
                         + ', '.join(params[:3]))
        if too_many:
            found.append(f'{self._skipped} steps in a row skipped by the fp16 '
                         'loss scaler')
        where = (f'rank {runner.rank}: ' + '; '.join(found)
                 if found else 'on another rank')
        resume = (f'the last good checkpoint is {ckpt}: fix the cause and '
                  'resume from it (tools/train.py CONFIG --resume)'
                  if ckpt else 'no checkpoint was saved before it')
        raise NonFiniteError(
            f'not finite at iteration {runner.iter + 1}, {where}; {resume}')

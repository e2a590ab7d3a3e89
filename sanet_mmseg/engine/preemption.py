# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Stop a training run cleanly on a signal (Slurm's warning before a time
limit or a preemption), and continue a relaunched one."""
import os
import os.path as osp
import signal
from typing import Sequence, Union

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import CheckpointHook, Hook

from mmseg.registry import HOOKS


def relaunched() -> bool:
    """Whether this process is a relaunch of a run: a worker group that
    torchrun restarted (``TORCHELASTIC_RESTART_COUNT`` > 0, with
    ``--max-restarts``) or a Slurm job that was requeued
    (``SLURM_RESTART_COUNT`` > 0). Such a run resumes from the last
    checkpoint of its work dir."""
    return any(
        int(os.environ.get(name, '0') or 0) > 0
        for name in ('TORCHELASTIC_RESTART_COUNT', 'SLURM_RESTART_COUNT'))


@HOOKS.register_module()
class PreemptionHook(Hook):
    """On ``signals`` (default SIGUSR1: ``tools/slurm_submit.sh`` asks Slurm
    for it before the time limit and forwards it at a preemption), finish
    the current iteration, write one complete checkpoint of it and stop
    training; the launcher then requeues the job, which resumes from that
    checkpoint.

    The signal handler only records the signal, so a signal in the middle
    of an iteration, a validation or a checkpoint save lets it finish.
    After every training iteration the ranks agree (an all-reduce) whether
    any of them was signalled, so all stop after the same iteration. The
    checkpoint is written by the run's checkpoint hook (atomically with
    :class:`AtomicCheckpointHook`), unless it has just written that
    iteration's.

    Args:
        signals (Sequence[str | int]): The signals that stop the run.
            Default: ('SIGUSR1', ).
    """

    priority = 'LOWEST'  # after the checkpoint hook of the same iteration

    def __init__(self, signals: Sequence[Union[str, int]] = ('SIGUSR1', )):
        self.signals = [
            getattr(signal, s) if isinstance(s, str) else signal.Signals(s)
            for s in signals
        ]
        self.received = None
        self._previous = {}

    def _handler(self, signum, frame):
        self.received = signal.Signals(signum).name

    def before_run(self, runner):
        self._previous = {
            signum: signal.signal(signum, self._handler)
            for signum in self.signals
        }
        for signum in self.signals:
            # restart the system calls the signal interrupts in other
            # threads (data loaders, gloo, OpenMP) instead of failing them
            signal.siginterrupt(signum, False)

    def after_run(self, runner):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        flag = torch.tensor([float(self.received is not None)])
        if get_world_size() > 1:
            all_reduce(flag)
        if not flag.item():
            return
        step = runner.iter + 1
        hook = next(
            (h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
        if hook is None:
            raise RuntimeError('PreemptionHook needs a CheckpointHook')
        path = osp.join(hook.out_dir, hook.filename_tmpl.format(step))
        if hook.last_ckpt != path:
            hook._save_checkpoint(runner)
        runner.logger.warning(
            f'{self.received or "a signal on another rank"}: stopped after '
            f'iteration {step}, checkpoint {hook.last_ckpt}; a relaunch '
            'resumes from it')
        runner.train_loop.stop_training = True

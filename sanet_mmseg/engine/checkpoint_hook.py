# Copyright (c) sanet-mmseg contributors. All rights reserved.
import errno
import os
import os.path as osp
import shutil
from contextlib import contextmanager
from typing import Iterator, Optional

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook

from mmseg.registry import HOOKS
from sanet_mmseg.fileio import atomic_path


@contextmanager
def naming_full_disk(path: str) -> Iterator[None]:
    """Re-raise a full disk or quota (ENOSPC, EDQUOT) while ``path`` is
    written as an OSError that names ``path`` and the space left there;
    other errors pass unchanged."""
    try:
        yield
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        folder = osp.dirname(osp.abspath(path))
        free = shutil.disk_usage(folder).free / 2**20
        raise OSError(
            e.errno, f'{os.strerror(e.errno)} while writing {path} '
            f'({free:.1f} MiB free in {folder}); nothing of it was kept, '
            'the previous checkpoint and last_checkpoint are unchanged: free '
            'space and resume (tools/train.py CONFIG --resume)') from e


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """:class:`CheckpointHook` that never leaves a half-written checkpoint.

    Each checkpoint, the best one (``save_best``) included, is written under
    a temporary name, flushed to disk and renamed once complete;
    ``last_checkpoint`` is then replaced the same way; only after that are
    checkpoints beyond ``max_keep_ckpts`` and the previous best removed
    (MMEngine removes them before saving). A crash at any point leaves
    ``last_checkpoint`` naming a complete checkpoint and at least one
    complete best checkpoint once there was one; a full disk is an error
    that names the file and the space left. Takes the arguments of
    CheckpointHook; other storage backends than local files are saved as
    CheckpointHook does.

    MMEngine has no public extension point for the order of saving and
    removing (``save_checkpoint`` is the runner's, the file backends only
    write bytes), so this overrides CheckpointHook's private
    ``_save_checkpoint_with_step`` and ``_save_best_checkpoint``;
    ``setup.py`` pins MMEngine to the minor version they are tested with
    (``tests/test_checkpoint_hook.py`` checks their signatures).
    """

    def _save_atomically(self, runner, filename: str, **kwargs) -> None:
        """``runner.save_checkpoint`` to ``out_dir/filename`` through a
        temporary file, flushed to disk before the rename."""
        if not is_main_process():  # runner.save_checkpoint is master_only
            return
        path = osp.join(self.out_dir, filename)
        with naming_full_disk(path), atomic_path(path, fsync=True) as tmp:
            runner.save_checkpoint(
                self.out_dir,
                osp.basename(tmp),
                self.file_client_args,
                backend_args=self.backend_args,
                **kwargs)

    def _save_checkpoint_with_step(self, runner, step, meta):
        if not isinstance(self.file_backend, LocalBackend):
            return super()._save_checkpoint_with_step(runner, step, meta)
        outdated = []
        if self.max_keep_ckpts > 0 and (not self.keep_ckpt_ids
                                        or self.keep_ckpt_ids[-1] != step):
            self.keep_ckpt_ids.append(step)
            while len(self.keep_ckpt_ids) > self.max_keep_ckpts:
                outdated.append(self.keep_ckpt_ids.popleft())
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = osp.join(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        self._save_atomically(
            runner,
            filename,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            **self.args)
        if not is_main_process():
            return
        last = osp.join(runner.work_dir, 'last_checkpoint')
        with naming_full_disk(last), atomic_path(last, fsync=True) as tmp:
            with open(tmp, 'w') as f:
                f.write(self.last_ckpt)
        for old in outdated:
            path = osp.join(self.out_dir, self.filename_tmpl.format(old))
            if osp.isfile(path):
                os.remove(path)

    def _info_key(self, name: str, key: str) -> str:
        """MMEngine's message-hub key of ``name`` ('best_score' or
        'best_ckpt') for the metric ``key``."""
        return name if len(self.key_indicators) == 1 else f'{name}_{key}'

    def _record_best(self, runner, key: str, score: float,
                     path: Optional[str]) -> None:
        """Record the best score and checkpoint path of metric ``key``."""
        if len(self.key_indicators) == 1:
            self.best_ckpt_path = path
        else:
            self.best_ckpt_path_dict[key] = path
        runner.message_hub.update_info(self._info_key('best_score', key),
                                       score)
        runner.message_hub.update_info(self._info_key('best_ckpt', key),
                                       path)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        """MMEngine's ``save_best`` (one or several metrics, ``'auto'``,
        rules and names as there: ``best_{metric}_iter_{n}.pth``), with the
        new best written before the previous one is removed."""
        if not self.save_best or not isinstance(self.file_backend,
                                                LocalBackend):
            return super()._save_best_checkpoint(runner, metrics)
        step = runner.epoch if self.by_epoch else runner.iter
        meta = dict(epoch=runner.epoch, iter=runner.iter)
        if 'auto' in self.key_indicators:
            self._init_rule(self.rules, [list(metrics.keys())[0]])
        updated = False
        for key, rule in zip(self.key_indicators, self.rules):
            best = runner.message_hub.runtime_info.get(
                self._info_key('best_score', key), self.init_value_map[rule])
            score = metrics[key]
            if score is None or not self.is_better_than[key](score, best):
                continue
            updated = True
            previous = (self.best_ckpt_path if len(self.key_indicators) == 1
                        else self.best_ckpt_path_dict[key])
            name = f'best_{key}_{self.filename_tmpl.format(step)}'.replace(
                '/', '_')
            path = osp.join(self.out_dir, name)
            # recorded before the save, so that the checkpoint carries it
            self._record_best(runner, key, score, path)
            try:
                self._save_atomically(
                    runner,
                    name,
                    save_optimizer=False,
                    save_param_scheduler=False,
                    meta=meta,
                    by_epoch=False)
            except BaseException:
                self._record_best(runner, key, best, previous)
                raise
            runner.logger.info(
                f'The best checkpoint with {score:0.4f} {key} at {step} '
                f'{"epoch" if self.by_epoch else "iter"} is saved to {name}.')
            if (previous and previous != path and is_main_process()
                    and osp.isfile(previous)):
                os.remove(previous)
                runner.logger.info(
                    f'The previous best checkpoint {previous} is removed')
        # as MMEngine: save the latest checkpoint again, so that it carries
        # the new best score and path for --resume
        if updated and self.last_ckpt is not None:
            self._save_checkpoint_with_step(runner, step, meta)

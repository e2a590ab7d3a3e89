"""Faults of a long training run (docs/reliability.md), each with real
processes and files, each ending with the weights of an uninterrupted run
of the same iterations: a loss that turns NaN, a disk that fills while a
checkpoint is written, a worker that dies (torchrun restarts), a Slurm job
that is preempted (signal, checkpoint, requeue, resume).

The runs train the demo config on the generated frames for 4 iterations
(256x256 crops, batch 2), one thread per process."""
import glob
import inspect
import os
import os.path as osp
import shutil
import signal
import subprocess
import threading
import time

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapper
from mmengine.registry import HOOKS, OPTIM_WRAPPERS
from mmengine.runner import Runner

from sanet_mmseg.engine import NonFiniteError, PreemptionHook, setup_runtime
from shared_data import REQUIRE_SHARED
from workflow_utils import REPO, free_port, launch_env, small_config

ITERS = 4


def reliability_config(data_root, work_dir, checkpoint_interval=1,
                       default_hooks=None, val_interval=None, **options):
    """The demo config, small, ``ITERS`` iterations, a checkpoint after
    every ``checkpoint_interval`` iterations, a validation every
    ``val_interval`` (None: none); ``default_hooks`` are merged in."""
    if val_interval is None:
        options.update(val_dataloader=None, val_cfg=None, val_evaluator=None)
    else:
        options['train_cfg'] = dict(max_iters=ITERS, val_interval=val_interval)
    return small_config(
        data_root,
        work_dir,
        config='sanet-s_demo.py',
        iters=ITERS,
        default_hooks=dict(
            checkpoint=dict(interval=checkpoint_interval, max_keep_ckpts=2),
            **(default_hooks or {})),
        randomness=dict(seed=0, deterministic=True),
        **options)


def train_in_process(config, resume=False, hooks=()):
    """Train ``config`` in this process (one thread); return the runner."""
    cfg = Config.fromfile(config)
    setup_runtime(cfg)
    cfg.resume = resume
    runner = Runner.from_cfg(cfg)
    for hook in hooks:
        runner.register_hook(hook)
    runner.train()
    return runner


def weights(source):
    """Parameters and buffers of a runner's model or a checkpoint file."""
    if isinstance(source, Runner):
        return source.model.state_dict()
    return torch.load(source, map_location='cpu')['state_dict']


def assert_same_weights(expected, actual, rtol=0.0):
    """Bit for bit; within ``rtol`` of each tensor's largest value where a
    test allows rounding."""
    assert expected.keys() == actual.keys()
    different = [
        k for k in expected
        if not (torch.equal(expected[k], actual[k]) if rtol == 0 else
                torch.allclose(expected[k].double(), actual[k].double(),
                               rtol=0, atol=rtol * float(
                                   expected[k].double().abs().max())))
    ]
    assert not different, f'{len(different)} tensors differ: {different[:5]}'


@pytest.fixture(scope='module')
def straight(generated_cityscapes_mini, tmp_path_factory):
    """The weights of an uninterrupted single-process run."""
    torch.set_num_threads(1)
    work_dir = tmp_path_factory.mktemp('straight')
    runner = train_in_process(
        reliability_config(generated_cityscapes_mini, work_dir))
    return {k: v.clone() for k, v in weights(runner).items()}


def test_checkpoint_hook_private_method_exists():
    """PreemptionHook saves through CheckpointHook's private
    ``_save_checkpoint(runner)`` (the MMEngine pin of setup.py)."""
    from mmengine.hooks import CheckpointHook
    assert str(inspect.signature(
        CheckpointHook._save_checkpoint)) == '(self, runner) -> None'


class PoisonBatch(Hook):
    """Make the images of iteration ``at`` (1-based) NaN."""

    def __init__(self, at):
        self.at = at

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.at:
            inputs = data_batch['inputs']
            for i, image in enumerate(inputs):
                inputs[i] = torch.full(image.shape, float('nan'))


def test_nan_loss_stops_with_last_checkpoint(generated_cityscapes_mini,
                                             tmp_path, straight):
    """A batch that makes the loss NaN at iteration 3 stops the run there,
    naming the loss terms and iter_2.pth; no checkpoint of iteration 3 is
    written; resuming from it ends with the uninterrupted run's weights."""
    torch.set_num_threads(1)
    config = reliability_config(generated_cityscapes_mini, tmp_path)
    with pytest.raises(NonFiniteError) as error:
        train_in_process(config, hooks=[PoisonBatch(at=3)])
    message = str(error.value)
    assert 'not finite at iteration 3' in message, message
    assert 'loss_sem=nan' in message, message
    assert f'the last good checkpoint is {tmp_path / "iter_2.pth"}' in message
    assert open(tmp_path / 'last_checkpoint').read().endswith('iter_2.pth')
    assert not (tmp_path / 'iter_3.pth').exists()
    resumed = train_in_process(config, resume=True)
    assert_same_weights(straight, weights(resumed))


@OPTIM_WRAPPERS.register_module(force=True)
class InfGradientOptimWrapper(OptimWrapper):
    """MMEngine's OptimWrapper whose third step sees an Inf gradient in
    the first parameter (the loss stays finite)."""

    def step(self, **kwargs):
        self.steps = getattr(self, 'steps', 0) + 1
        if self.steps == 3:
            params = self.optimizer.param_groups[0]['params']
            params[0].grad.view(-1)[0] = float('inf')
        super().step(**kwargs)


def test_inf_gradient_stops(generated_cityscapes_mini, tmp_path):
    """An Inf gradient at iteration 3 with finite losses: the run stops
    there, naming the weights it made non-finite and iter_2.pth."""
    torch.set_num_threads(1)
    config = reliability_config(
        generated_cityscapes_mini, tmp_path,
        optim_wrapper=dict(type='InfGradientOptimWrapper'))
    with pytest.raises(NonFiniteError) as error:
        train_in_process(config)
    message = str(error.value)
    assert ('not finite at iteration 3, rank 0: 1 weights after the update '
            '(the gradients were not finite), e.g. '
            'backbone.stem.0.conv.weight;') in message, message
    assert 'loss terms' not in message
    assert str(tmp_path / 'iter_2.pth') in message
    assert not (tmp_path / 'iter_3.pth').exists()


@OPTIM_WRAPPERS.register_module(force=True)
class CPUScaledOptimWrapper(OptimWrapper):
    """MMEngine's ``AmpOptimWrapper`` loss scaling on the CPU: its backward
    and step with a dynamic ``torch.amp.GradScaler('cpu')`` (the wrapper
    itself needs CUDA), without fp16 autocast."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.loss_scaler = torch.amp.GradScaler('cpu')

    def backward(self, loss, **kwargs):
        self.loss_scaler.scale(loss).backward(**kwargs)
        self._inner_count += 1

    def step(self, **kwargs):
        self.loss_scaler.step(self.optimizer, **kwargs)
        self.loss_scaler.update()


class RecordParams(Hook):
    """Each iteration's parameters, after its update."""

    priority = 'LOWEST'

    def __init__(self):
        self.after = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.after.append({
            k: v.detach().clone()
            for k, v in runner.model.named_parameters()
        })


def test_skipped_scaled_step_is_not_a_failure(generated_cityscapes_mini,
                                              tmp_path):
    """With a loss scaler (AmpOptimWrapper's, on the CPU), the NaN batch of
    iteration 3 makes the scaler skip the step: a warning, the weights stay
    those of iteration 2, the scale halves, the run goes on to the end;
    with ``max_skipped_steps=0`` the same skip stops it."""
    torch.set_num_threads(1)
    config = reliability_config(
        generated_cityscapes_mini, tmp_path / 'scaled',
        optim_wrapper=dict(type='CPUScaledOptimWrapper'))
    record = RecordParams()
    runner = train_in_process(config, hooks=[PoisonBatch(at=3), record])
    assert runner.iter == ITERS
    assert len(record.after) == ITERS
    for key, value in record.after[1].items():
        assert torch.equal(value, record.after[2][key]), key
    assert runner.optim_wrapper.loss_scaler.get_scale() == 2.0**15
    log = open(glob.glob(str(tmp_path / 'scaled' / '*' / '*.log'))[0]).read()
    assert ('iteration 3: the fp16 loss scaler skipped the step (scale '
            '65536.0 -> 32768.0; loss terms not finite: {') in log

    config = reliability_config(
        generated_cityscapes_mini, tmp_path / 'strict',
        optim_wrapper=dict(type='CPUScaledOptimWrapper'),
        default_hooks=dict(non_finite=dict(max_skipped_steps=0)))
    with pytest.raises(NonFiniteError, match='at iteration 3, rank 0: 1 '
                       'steps in a row skipped by the fp16 loss scaler'):
        train_in_process(config, hooks=[PoisonBatch(at=3)])


class SignalDuringValidation(Hook):
    """Send this process SIGUSR1 in the first validation iteration."""

    def after_val_iter(self, runner, batch_idx, data_batch=None,
                       outputs=None):
        if batch_idx == 0:
            signal.pthread_kill(threading.main_thread().ident,
                                signal.SIGUSR1)


@pytest.fixture
def stray_signals():
    """SIGUSR1s this process gets outside a run's PreemptionHook, counted
    instead of ending it (the default action, e.g. in a pytest-xdist
    worker: a signal the test sends as a run ends must not kill the
    suite); restored after the test."""
    got = []
    previous = signal.signal(signal.SIGUSR1, lambda *a: got.append(a[0]))
    signal.siginterrupt(signal.SIGUSR1, False)
    yield got
    signal.signal(signal.SIGUSR1, previous)


def test_signal_during_validation_or_save(generated_cityscapes_mini,
                                          tmp_path, straight, monkeypatch,
                                          stray_signals):
    """SIGUSR1 in the middle of iteration 2's validation: the validation
    ends, the run stops after iteration 3 with a checkpoint of it (the
    periodic ones are every 2). SIGUSR1 in the middle of writing
    iter_2.pth: the file is completed, the run stops after iteration 2.
    Both resume to the uninterrupted run's weights."""
    from mmengine.fileio import LocalBackend
    torch.set_num_threads(1)
    config = reliability_config(generated_cityscapes_mini,
                                tmp_path / 'val', checkpoint_interval=2,
                                val_interval=2)
    runner = train_in_process(config, hooks=[SignalDuringValidation()])
    assert runner.iter == 3
    assert open(tmp_path / 'val' / 'last_checkpoint').read().endswith(
        'iter_3.pth')
    assert_same_weights(weights(train_in_process(config, resume=True)),
                        straight)

    put = LocalBackend.put

    def signal_while_writing(self, obj, filepath):
        signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)
        return put(self, obj, filepath)

    monkeypatch.setattr(LocalBackend, 'put', signal_while_writing)
    config = reliability_config(generated_cityscapes_mini,
                                tmp_path / 'save', checkpoint_interval=2)
    runner = train_in_process(config)
    monkeypatch.setattr(LocalBackend, 'put', put)
    assert runner.iter == 2
    assert torch.load(tmp_path / 'save' / 'iter_2.pth',
                      map_location='cpu')['meta']['iter'] == 2
    assert_same_weights(weights(train_in_process(config, resume=True)),
                        straight)


REQUIRE_TMPFS = os.environ.get('SANET_REQUIRE_TMPFS') == '1'


@pytest.fixture
def small_disk(tmp_path):
    """A 512 MiB tmpfs mounted at ``tmp_path / 'disk'`` (needs root and
    mount rights); skips with the reason where mounting is not allowed,
    fails instead under ``SANET_REQUIRE_TMPFS=1`` (.ci/run)."""
    disk = tmp_path / 'disk'
    disk.mkdir()
    mount = subprocess.run(
        ['mount', '-t', 'tmpfs', '-o', 'size=512m', 'tmpfs', str(disk)],
        capture_output=True, text=True)
    if mount.returncode != 0:
        reason = ('cannot mount a tmpfs: '
                  f'{(mount.stdout + mount.stderr).strip()}')
        if REQUIRE_TMPFS:
            pytest.fail(f'SANET_REQUIRE_TMPFS=1 but {reason}')
        pytest.skip(reason)
    try:
        yield disk
    finally:
        subprocess.run(['umount', '-l', str(disk)], check=False)


class FillDisk(Hook):
    """After the checkpoint of iteration ``after`` (1-based), fill the disk
    of the work dir with ``filler`` until it is full."""

    priority = 'LOWEST'

    def __init__(self, after, filler):
        self.after, self.filler = after, filler

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.iter + 1 != self.after:
            return
        with open(self.filler, 'wb', buffering=0) as f:
            for size in (2**20, 2**12):
                try:
                    while True:
                        f.write(b'\0' * size)
                except OSError:
                    pass


def test_full_disk_keeps_last_checkpoint(generated_cityscapes_mini,
                                         small_disk, straight):
    """The disk fills after iteration 2's checkpoint: writing iteration 3's
    fails with an error naming it, iter_2.pth and last_checkpoint stay
    complete, no partial file is left; with space again, resuming ends
    with the uninterrupted run's weights."""
    torch.set_num_threads(1)
    work_dir = small_disk / 'work'
    config = reliability_config(generated_cityscapes_mini, work_dir)
    filler = str(small_disk / 'filler')
    with pytest.raises(OSError) as error:
        train_in_process(config, hooks=[FillDisk(2, filler)])
    assert error.value.errno == 28
    message = str(error.value)
    assert f'No space left on device while writing {work_dir}/iter_3.pth' \
        in message, message
    assert open(work_dir / 'last_checkpoint').read() == str(
        work_dir / 'iter_2.pth')
    assert torch.load(work_dir / 'iter_2.pth',
                      map_location='cpu')['meta']['iter'] == 2
    assert not (work_dir / 'iter_3.pth').exists()
    assert not glob.glob(str(work_dir / '.*'))  # no temporary file
    os.remove(filler)
    resumed = train_in_process(config, resume=True)
    assert_same_weights(straight, weights(resumed))


@HOOKS.register_module(force=True)
class PauseFirstAttempt(Hook):
    """In the first attempt of a run (not a torchrun restart or a Slurm
    requeue), after iteration ``after`` and its checkpoint, the ranks
    ``ranks`` write their pid to ``WORK_DIR/paused{RANK}`` and wait until
    ``WORK_DIR/go`` exists or, with ``until_signal``, their PreemptionHook
    got its signal (at most ``timeout`` seconds), so that a test can kill
    or signal them at a known iteration. The ranks ``forget_signal`` then
    forget the signal, as if it came late."""

    priority = 'LOWEST'

    def __init__(self, after, ranks=(0, 1), timeout=120,
                 until_signal=False, forget_signal=()):
        self.after, self.ranks, self.timeout = after, ranks, timeout
        self.until_signal = until_signal
        self.forget_signal = forget_signal

    def _preemption(self, runner):
        return next(h for h in runner.hooks if isinstance(h, PreemptionHook))

    def _signalled(self, runner):
        """With ``until_signal``: whether this rank's PreemptionHook has
        received its signal."""
        return self.until_signal and self._preemption(runner).received

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        first = all(
            os.environ.get(name, '0') in ('', '0')
            for name in ('TORCHELASTIC_RESTART_COUNT', 'SLURM_RESTART_COUNT'))
        if (not first or runner.iter + 1 != self.after
                or runner.rank not in self.ranks):
            return
        with open(osp.join(runner.work_dir, f'paused{runner.rank}'),
                  'w') as f:
            f.write(str(os.getpid()))
        go = osp.join(runner.work_dir, 'go')
        end = time.time() + self.timeout
        while (not osp.exists(go) and not self._signalled(runner)
               and time.time() < end):
            time.sleep(0.1)
        if runner.rank in self.forget_signal:
            # as if the signal reached this rank only after the next check
            self._preemption(runner).received = None


def two_rank_config(data_root, work_dir, **options):
    """:func:`reliability_config` that imports this module's hooks."""
    return reliability_config(
        data_root,
        work_dir,
        custom_imports=dict(
            imports=['sanet_mmseg', 'test_reliability'],
            allow_failed_imports=False),
        **options)


def dist_train(config, env, wait=True):
    """tools/dist_train.sh CONFIG 2 with ``env``; the process, or its
    output after it ended successfully."""
    proc = subprocess.Popen(['bash', 'tools/dist_train.sh', config, '2'],
                            cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if not wait:
        return proc
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out[-6000:]
    return out


@pytest.fixture(scope='module')
def straight_two_ranks(generated_cityscapes_mini, tmp_path_factory):
    """The final checkpoint's weights of an uninterrupted two-process run
    (tools/dist_train.sh, gloo)."""
    work_dir = tmp_path_factory.mktemp('straight2')
    config = two_rank_config(generated_cityscapes_mini, work_dir)
    dist_train(config, launch_env(PORT=free_port()))
    return weights(work_dir / f'iter_{ITERS}.pth')


def wait_for(path, proc, timeout=300):
    """Wait until ``path`` exists; fail if ``proc`` ends first."""
    end = time.time() + timeout
    while not osp.exists(path):
        assert proc.poll() is None, proc.communicate()[0][-6000:]
        assert time.time() < end, f'no {path} after {timeout} s'
        time.sleep(0.2)


def test_dead_worker_restarts_from_last_checkpoint(generated_cityscapes_mini,
                                                   tmp_path,
                                                   straight_two_ranks):
    """MAX_RESTARTS=1 tools/dist_train.sh CONFIG 2: rank 1 is killed
    (SIGKILL) after iteration 2's checkpoint; torchrun restarts both
    processes, they resume from iter_2.pth, and the run ends with the
    weights of an uninterrupted run."""
    config = two_rank_config(
        generated_cityscapes_mini, tmp_path,
        custom_hooks=[dict(type='PauseFirstAttempt', after=2, ranks=[1])])
    proc = dist_train(config, launch_env(PORT=free_port(), MAX_RESTARTS=1),
                      wait=False)
    try:
        wait_for(tmp_path / 'paused1', proc)
        os.kill(int(open(tmp_path / 'paused1').read()), signal.SIGKILL)
        out = proc.communicate(timeout=600)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-6000:]
    # the restarted group resumed: iterations 1 and 2 ran once, 3 and 4 once
    assert (f'relaunched run: resuming from {tmp_path / "iter_2.pth"}'
            in out and 'resumed epoch: 0, iter: 2' in out), out[-6000:]
    assert [out.count(f'Iter(train) [{i}/{ITERS}]')
            for i in range(1, ITERS + 1)] == [1] * ITERS, out[-6000:]
    assert_same_weights(straight_two_ranks,
                        weights(tmp_path / f'iter_{ITERS}.pth'))


def slurm_missing():
    """Why the Slurm partition of tests/setup/slurm.sh cannot take a job,
    or None."""
    for command in ('sbatch', 'scontrol', 'scancel', 'sinfo'):
        if shutil.which(command) is None:
            return f'no {command} (install: bash tests/setup/slurm.sh)'
    state = subprocess.run(['sinfo', '-h', '-p', 'debug', '-o', '%t'],
                           capture_output=True, text=True, timeout=30)
    if state.returncode != 0 or state.stdout.split() not in (['idle'],
                                                             ['mix']):
        return ('Slurm partition debug is not up with an idle node (sinfo: '
                f'{(state.stdout + state.stderr).strip()!r}); start it with '
                'bash tests/setup/slurm.sh')
    return None


def job_field(job, field):
    """A field of ``scontrol show job JOB`` ('' once the job is gone)."""
    out = subprocess.run(['scontrol', '-o', 'show', 'job', job],
                         capture_output=True, text=True).stdout
    for item in out.split():
        if item.startswith(field + '='):
            return item.split('=', 1)[1]
    return ''


def wait_until(condition, timeout, what):
    end = time.time() + timeout
    while not condition():
        assert time.time() < end, f'{what}: not after {timeout} s'
        time.sleep(0.5)


def test_slurm_preemption_requeues_and_resumes(generated_cityscapes_mini,
                                               tmp_path,
                                               straight_two_ranks):
    """tools/slurm_submit.sh, two tasks: both pause after iteration 2 until
    SIGUSR1 reaches them (``scancel --signal=USR1 --batch``: the batch
    shell passes it on); rank 0 then forgets it (as if it came late), yet
    both stop after iteration 3 with one checkpoint of it (the periodic
    ones are every 4), the job requeues itself and the requeued job
    resumes from iter_3.pth by itself; the run ends with the weights of an
    uninterrupted run."""
    reason = slurm_missing()
    if reason and REQUIRE_SHARED:
        pytest.fail(f'SANET_REQUIRE_SHARED=1 but {reason}')
    if reason:
        pytest.skip(reason)
    work_dir = tmp_path / 'work'
    config = two_rank_config(
        generated_cityscapes_mini, work_dir,
        checkpoint_interval=ITERS,
        custom_hooks=[
            dict(
                type='PauseFirstAttempt',
                after=2,
                until_signal=True,
                forget_signal=[0])
        ])
    env = launch_env(GPUS=2, GPUS_PER_NODE=2, CPUS_PER_TASK=1, GRES='none',
                     PORT=free_port(), SCRIPT_DIR=tmp_path)
    submit = subprocess.run(
        ['bash', 'tools/slurm_submit.sh', 'debug', 'sanet-requeue', config],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert submit.returncode == 0, submit.stdout + submit.stderr
    job = submit.stdout.strip()
    log = tmp_path / f'sanet-requeue-{job}.log'
    script = open(tmp_path / 'sanet-requeue.sbatch').read()
    for option in ('--requeue', '--signal=B:USR1@600', '--open-mode=append'):
        assert f'#SBATCH {option}\n' in script
    try:
        wait_until(lambda: osp.exists(work_dir / 'paused0') and osp.exists(
            work_dir / 'paused1'), 300, 'both tasks at iteration 2')
        subprocess.run(['scancel', '--signal=USR1', '--batch', job],
                       check=True)
        # Slurm holds a requeued job for about 2 minutes (its BeginTime,
        # until the credential of the run it killed has expired): release
        # it after 5 s (a credential of the same second as the requeue is
        # refused: 'Job credential revoked')
        wait_until(
            lambda: job_field(job, 'Restarts') == '1' or job_field(
                job, 'JobState') in ('COMPLETED', 'FAILED', ''), 120,
            'the job requeued or ended')
        assert job_field(job, 'Restarts') == '1', log.read_text()[-6000:]
        subprocess.run(['scontrol', 'update', f'JobId={job}',
                        'StartTime=now+5'], check=True)
        wait_until(lambda: job_field(job, 'JobState') in (
            'COMPLETED', 'FAILED', 'CANCELLED', ''), 180, 'the job ended')
        assert job_field(job, 'JobState') == 'COMPLETED', log.read_text()
    finally:
        subprocess.run(['scancel', job])
    out = log.read_text()
    assert 'a signal on another rank: stopped after iteration 3, ' \
        'checkpoint ' \
        f'{work_dir / "iter_3.pth"}' in out, out[-6000:]
    assert not (work_dir / 'iter_2.pth').exists()
    assert 'requeued, it resumes from the last checkpoint' in out
    assert (f'relaunched run: resuming from {work_dir / "iter_3.pth"}'
            in out and 'resumed epoch: 0, iter: 3' in out), out[-6000:]
    assert [out.count(f'Iter(train) [{i}/{ITERS}]')
            for i in range(1, ITERS + 1)] == [1] * ITERS, out[-6000:]
    # within 1e-3 of each tensor's largest value: one run in twelve here
    # computed iteration 3 (after the pause, before the stop) with other
    # rounding, cause unknown; a resume from the wrong iteration or weights
    # is far off, and the iteration counts above are exact
    assert_same_weights(straight_two_ranks,
                        weights(work_dir / f'iter_{ITERS}.pth'), rtol=1e-3)

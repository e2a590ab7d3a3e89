"""Training beyond one machine, on the CPU (gloo): two torchrun "nodes" on
localhost (tools/dist_train.sh with NNODES, NODE_RANK, MASTER_ADDR, PORT)
and a real Slurm job step (tools/slurm_train.sh and slurm_test.sh on the
one-node cluster of tests/setup/slurm.sh). Both train the demo config for
two iterations; every rank saves its parameters (``SaveRankWeights``), and
the ranks must end with the same ones."""
import os
import os.path as osp
import re
import shutil
import subprocess

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from shared_data import REQUIRE_SHARED
from workflow_utils import REPO, free_port, launch_env, small_config

PARTITION = 'debug'  # tests/setup/slurm.sh's
LAUNCH_ENV = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'GROUP_RANK', 'MASTER_ADDR',
              'MASTER_PORT', 'SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_JOB_ID')


@HOOKS.register_module(force=True)
class SaveRankWeights(Hook):
    """Save this rank's parameters before and after training and the
    launcher's variables to ``WORK_DIR/rank{RANK}.pth``."""

    def _params(self, runner):
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        return {k: v.detach().clone() for k, v in model.named_parameters()}

    def before_train(self, runner):
        self.before = self._params(runner)

    def after_train(self, runner):
        torch.save(
            dict(
                world_size=runner.world_size,
                env={k: os.environ.get(k) for k in LAUNCH_ENV},
                before=self.before,
                after=self._params(runner)),
            osp.join(runner.work_dir, f'rank{runner.rank}.pth'))


def two_rank_config(data_root, work_dir):
    """The demo config, small, with :class:`SaveRankWeights`, without
    validation (the test split stays for slurm_test.sh)."""
    return small_config(
        data_root,
        work_dir,
        config='sanet-s_demo.py',
        iters=2,
        val_dataloader=None,
        val_cfg=None,
        val_evaluator=None,
        custom_imports=dict(
            imports=['sanet_mmseg', 'test_multinode'],
            allow_failed_imports=False),
        custom_hooks=[dict(type='SaveRankWeights')])


def check_output(proc, out):
    assert proc.returncode == 0, out[-6000:]
    return out


def check_ranks(work_dir):
    """Both ranks' files: 2 ranks, same parameters after training (and
    different from before), equal to the checkpoint's. Returns their
    launcher variables."""
    ranks = [
        torch.load(osp.join(work_dir, f'rank{r}.pth'), map_location='cpu')
        for r in (0, 1)
    ]
    assert [r['world_size'] for r in ranks] == [2, 2]
    after0, after1 = ranks[0]['after'], ranks[1]['after']
    assert after0.keys() == after1.keys() and len(after0) > 100
    for key in after0:
        assert torch.equal(after0[key], after1[key]), key
    assert any(not torch.equal(ranks[0]['before'][k], after0[k])
               for k in after0), 'training did not change the weights'
    ckpt = torch.load(osp.join(work_dir, 'iter_2.pth'), map_location='cpu')
    for key in after0:
        assert torch.equal(ckpt['state_dict'][key], after0[key]), key
    return [r['env'] for r in ranks]


def test_dist_train_two_nodes(generated_cityscapes_mini, tmp_path):
    """tools/dist_train.sh as MMSeg runs it on two machines
    (NNODES=2 NODE_RANK=0|1 MASTER_ADDR PORT), both on localhost."""
    config = two_rank_config(generated_cityscapes_mini, tmp_path)
    port = free_port()
    nodes = [
        subprocess.Popen(
            ['bash', 'tools/dist_train.sh', config, '1'],
            cwd=REPO,
            env=launch_env(
                NNODES=2, NODE_RANK=rank, MASTER_ADDR='127.0.0.1',
                PORT=port),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True) for rank in (0, 1)
    ]
    try:
        outs = [node.communicate(timeout=600)[0] for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
    for node, out in zip(nodes, outs):
        check_output(node, out)
    assert 'Iter(train) [2/2]' in outs[0]
    envs = check_ranks(tmp_path)
    assert [(e['RANK'], e['GROUP_RANK'], e['WORLD_SIZE']) for e in envs] == [
        ('0', '0', '2'), ('1', '1', '2')
    ]


def slurm_missing():
    """Why the tests' Slurm cluster cannot take a job, or None."""
    for command in ('srun', 'sinfo', 'scontrol'):
        if shutil.which(command) is None:
            return f'no {command} (install: bash tests/setup/slurm.sh)'
    state = subprocess.run(['sinfo', '-h', '-p', PARTITION, '-o', '%t'],
                           capture_output=True, text=True, timeout=30)
    if state.returncode != 0 or state.stdout.split() not in (
            ['idle'], ['mix']):
        return (f'Slurm partition {PARTITION!r} is not up with an idle node '
                f'(sinfo: {(state.stdout + state.stderr).strip()!r}); start '
                'it with bash tests/setup/slurm.sh')
    return None


@pytest.fixture
def slurm():
    """A Slurm partition that takes jobs (tests/setup/slurm.sh); skips
    without one, fails under ``SANET_REQUIRE_SHARED=1`` (CI runs the
    set-up first)."""
    reason = slurm_missing()
    if reason and REQUIRE_SHARED:
        pytest.fail(f'SANET_REQUIRE_SHARED=1 but {reason}')
    if reason:
        pytest.skip(reason)
    return PARTITION


def slurm_script(*args):
    """Run tools/slurm_*.sh with two tasks of one CPU on the CPU node."""
    env = launch_env(
        GPUS=2, GPUS_PER_NODE=2, CPUS_PER_TASK=1, GRES='none',
        PORT=free_port())
    proc = subprocess.run(['bash', *args], cwd=REPO, env=env, timeout=600,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    return check_output(proc, proc.stdout)


def test_slurm_train_and_test(slurm, generated_cityscapes_mini, tmp_path):
    """tools/slurm_train.sh with two tasks (--launcher slurm, gloo), then
    tools/slurm_test.sh on its checkpoint: the two ranks' mIoU is the one
    process's."""
    config = two_rank_config(generated_cityscapes_mini, tmp_path)
    out = slurm_script('tools/slurm_train.sh', slurm, 'sanet-train', config)
    assert 'Iter(train) [2/2]' in out
    assert 'srun -p debug --job-name=sanet-train --ntasks=2' in out
    envs = check_ranks(tmp_path)
    assert [(e['SLURM_PROCID'], e['RANK'], e['WORLD_SIZE']) for e in envs
            ] == [('0', '0', '2'), ('1', '1', '2')]
    assert envs[0]['SLURM_JOB_ID'] == envs[1]['SLURM_JOB_ID']
    assert envs[0]['MASTER_ADDR'] == 'localhost'

    out = slurm_script('tools/slurm_test.sh', slurm, 'sanet-test', config,
                       str(tmp_path / 'iter_2.pth'), '--work-dir',
                       str(tmp_path / 'test'))
    miou = re.search(r'Iter\(test\) \[\d+/\d+\].*mIoU: ([0-9.]+)', out)
    assert miou, out[-3000:]
    assert miou.group(1) == one_process_miou(
        generated_cityscapes_mini, tmp_path / 'one', tmp_path / 'iter_2.pth')


def one_process_miou(data_root, work_dir, checkpoint):
    """The mIoU (as logged) of ``checkpoint`` on the test split in one
    process, as tools/test.py computes it, from a config written afresh
    (the runs dump theirs over it)."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    from sanet_mmseg.engine import setup_runtime
    cfg = Config.fromfile(two_rank_config(data_root, work_dir))
    cfg.load_from = str(checkpoint)
    setup_runtime(cfg)
    return f"{Runner.from_cfg(cfg).test()['mIoU']:.4f}"


def test_slurm_launcher_outside_srun_is_named(tmp_path, monkeypatch):
    """--launcher slurm without srun's variables stops with their names."""
    from mmengine.config import Config
    from sanet_mmseg.engine import setup_runtime
    if torch.cuda.is_available():
        pytest.skip('with CUDA MMEngine initialises the slurm launch')
    for name in ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'):
        monkeypatch.delenv(name, raising=False)
    cfg = Config(dict(model=dict(type='X')))
    with pytest.raises(RuntimeError, match='SLURM_PROCID, SLURM_NTASKS'):
        setup_runtime(cfg, 'slurm')

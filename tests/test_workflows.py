"""MMSeg's workflows with SANet on the CPU: tools/train.py, tools/test.py,
mim test, --tta, --amp, --show-dir, TensorBoard, submission, train+val,
distributed run, exact resume, atomic and best checkpoints, on the real
Cityscapes frames (or the generated stand-in)."""
import glob
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.fileio import LocalBackend
from mmengine.runner import Runner

import sanet_mmseg  # noqa: F401
from sanet_mmseg.engine import (AtomicCheckpointHook, close_distributed,
                                setup_runtime)
from tool_runner import run_script
from workflow_utils import CONFIGS, REPO, run, small_config


@pytest.fixture(scope='module')
def trained(cityscapes_mini, tmp_path_factory):
    """tools/train.py --tensorboard for 2 iterations with validation;
    returns the work dir, config and checkpoint."""
    work_dir = tmp_path_factory.mktemp('train')
    config = small_config(cityscapes_mini, work_dir)
    out = run('tools/train.py', config, '--tensorboard')
    assert re.search(r'Iter\(train\) \[2/2\].*decode.loss_sem_bd', out)
    miou = re.search(r'Iter\(val\).*mIoU: ([0-9.]+)', out)
    assert miou, out[-2000:]
    print('mIoU after 2 iterations:', miou.group(1))
    assert open(osp.join(work_dir, 'last_checkpoint')).read().endswith(
        'iter_2.pth')
    return str(work_dir), config, osp.join(str(work_dir), 'iter_2.pth')


def test_test_tool(trained, tmp_path):
    work_dir, config, ckpt = trained
    out = run('tools/test.py', config, ckpt, '--work-dir', str(tmp_path),
              '--show-dir', str(tmp_path / 'painted'))
    assert re.search(r'Iter\(test\).*mIoU: [0-9.]+', out)
    # every val frame is painted (MMSeg's hook paints every 50th)
    painted = glob.glob(str(tmp_path / 'painted' / '**' / '*.png'),
                        recursive=True)
    assert len(painted) == 2


def test_best_checkpoint_and_tensorboard(trained):
    work_dir, _, _ = trained
    best = glob.glob(osp.join(work_dir, 'best_mIoU_*.pth'))
    assert [osp.basename(p) for p in best] == ['best_mIoU_iter_2.pth']
    ckpt = torch.load(best[0], map_location='cpu')
    assert ckpt['meta']['iter'] == 2 and 'optimizer' not in ckpt
    assert not glob.glob(osp.join(work_dir, '.*.tmp'))
    from tensorboard.backend.event_processing.event_accumulator import \
        EventAccumulator
    events = glob.glob(
        osp.join(work_dir, '*', 'vis_data', 'events.out.tfevents.*'))
    assert len(events) == 1
    scalars = EventAccumulator(events[0]).Reload().Tags()['scalars']
    assert {'loss', 'lr', 'decode.loss_sem_bd', 'mIoU'} <= set(scalars)


def tta_labels(model, path):
    """The labels of an image by hand from the config's TTA views (each
    scale of its TestTimeAug, unflipped and flipped): the softmax of each
    view's logits at the image's size, averaged, then the argmax; and the
    labels of the last view alone."""
    from mmcv.transforms import Compose
    from mmengine.dataset import pseudo_collate
    load, tta = model.cfg.tta_pipeline[:2]
    scores = 0
    for resize in tta['transforms'][0]:
        for prob in (0., 1.):
            view = Compose([
                load, resize,
                dict(type='RandomFlip', prob=prob, direction='horizontal'),
                dict(type='PackSegInputs')
            ])
            with torch.no_grad():
                sample = model.test_step(
                    pseudo_collate([view(dict(img_path=path))]))[0]
            scores = scores + sample.seg_logits.data.softmax(0)
    single = sample.seg_logits.data.argmax(0)  # the last view alone
    return scores.argmax(0).numpy(), single.numpy()


def test_test_tool_tta(trained, tmp_path):
    """--tta runs the config's views (2 scales x 2 flips in the small
    config) and averages them: its labels (of the first frame) are those of
    the views averaged by hand, which differ from one view's."""
    work_dir, config, ckpt = trained
    out = run('tools/test.py', config, ckpt, '--tta', '--work-dir',
              str(tmp_path), '--out', str(tmp_path / 'labels'))
    assert re.search(r'Iter\(test\).*mIoU: [0-9.]+', out)
    frames = sorted(glob.glob(osp.join(
        Config.fromfile(config).test_dataloader.dataset.data_root,
        'leftImg8bit', 'val', '*', '*.png')))
    assert sorted(os.listdir(tmp_path / 'labels')) == sorted(
        osp.basename(f) for f in frames)
    from PIL import Image
    import numpy as np
    from mmseg.apis import init_model
    model = init_model(config, ckpt, device='cpu')
    written = np.array(Image.open(tmp_path / 'labels' /
                                  osp.basename(frames[0])))
    expected, single = tta_labels(model, frames[0])
    assert (written == expected).mean() > 0.999
    assert (single != expected).mean() > 0.01  # TTA changes labels


def test_mim_test(trained, tmp_path):
    work_dir, config, ckpt = trained
    out = run('-m', 'mim', 'test', 'mmseg', config, '--checkpoint', ckpt,
              '--work-dir', str(tmp_path))
    assert re.search(r'Iter\(test\).*mIoU: [0-9.]+', out)


def test_mim_train(cityscapes_mini, tmp_path):
    config = small_config(cityscapes_mini, tmp_path, iters=1)
    out = run('-m', 'mim', 'train', 'mmseg', config, '--work-dir',
              str(tmp_path))
    assert 'Iter(train) [1/1]' in out
    assert osp.isfile(tmp_path / 'iter_1.pth')


def test_missing_checkpoint_is_named(trained, tmp_path):
    work_dir, config, _ = trained
    out = run_script('tools/test.py', config, str(tmp_path / 'nope.pth'),
                     cwd=REPO)
    assert out.returncode != 0
    assert 'checkpoint not found' in out.stderr and 'nope.pth' in out.stderr


def test_submission_writes_label_ids(trained, cityscapes_mini, tmp_path):
    work_dir, _, ckpt = trained
    out_dir = tmp_path / 'labelIds'
    config = small_config(
        cityscapes_mini,
        tmp_path,
        config='sanet-s_cityscapes-submission.py',
        test_evaluator=dict(output_dir=str(out_dir)))
    # the mini dataset has no test split: submit its val frames
    run('tools/test.py', config, ckpt, '--cfg-options',
        'test_dataloader.dataset.data_prefix.img_path=leftImg8bit/val')
    written = sorted(os.listdir(out_dir))
    frames = sorted(
        osp.basename(p).replace('_leftImg8bit.png', '')
        for p in glob.glob(
            osp.join(cityscapes_mini, 'leftImg8bit', 'val', '*', '*.png')))
    assert written == [f + '_leftImg8bit.png' for f in frames]
    from PIL import Image
    import numpy as np
    ids = np.unique(np.array(Image.open(out_dir / written[0])))
    # labelIds of the 19 train classes, not trainIds
    assert set(ids) <= {7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25,
                        26, 27, 28, 31, 32, 33}


def test_train_val_config(cityscapes_mini, tmp_path):
    """The train+val config trains on both splits and does not validate."""
    config = small_config(
        cityscapes_mini, tmp_path, 'sanet-s_cityscapes-trainval.py', iters=1)
    cfg = Config.fromfile(config)
    assert cfg.val_dataloader is None and cfg.val_cfg is None
    setup_runtime(cfg)
    runner = Runner.from_cfg(cfg)
    assert len(runner.train_dataloader.dataset) == 5 + 2
    runner.train()
    assert osp.isfile(tmp_path / 'iter_1.pth')
    assert not glob.glob(str(tmp_path / 'best_*.pth'))
    assert cfg.test_evaluator.format_only  # writes the test split's PNGs


def dist_script(*args, port):
    """Run tools/dist_*.sh with this interpreter; return its output."""
    env = dict(os.environ, PORT=str(port), PYTHON=sys.executable)
    out = subprocess.run(['bash', *args], capture_output=True, text=True,
                         cwd=REPO, env=env, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    return out.stdout + out.stderr


def test_distributed_two_processes(cityscapes_mini, tmp_path):
    """tools/dist_train.sh and dist_test.sh, two processes on the CPU; the
    two ranks' evaluation gives the one-process mIoU. (Their SyncBN is BN
    here: torch runs SyncBN on GPUs only, see
    test_sync_bn_refuses_cpu_ranks; test_cuda.py runs it under NCCL.)"""
    config = small_config(cityscapes_mini, tmp_path)
    out = dist_script('tools/dist_train.sh', config, '2', port=29531)
    assert 'Iter(train) [2/2]' in out
    assert osp.isfile(tmp_path / 'iter_2.pth')
    out = dist_script('tools/dist_test.sh', config,
                      str(tmp_path / 'iter_2.pth'), '2', '--work-dir',
                      str(tmp_path / 'test'), port=29532)
    miou = re.search(r'Iter\(test\) \[\d+/\d+\].*mIoU: ([0-9.]+)', out)
    assert miou, out[-2000:]
    # the config as written for the test (dist_train.sh dumped over it)
    cfg = Config.fromfile(small_config(cityscapes_mini, tmp_path / 'one'))
    cfg.load_from = str(tmp_path / 'iter_2.pth')
    setup_runtime(cfg)
    assert miou.group(1) == f"{Runner.from_cfg(cfg).test()['mIoU']:.4f}"


def test_sync_bn_refuses_cpu_ranks(tmp_path):
    """Why the distributed CPU runs convert SyncBN to BN: in training under
    a process group torch's SyncBatchNorm takes GPU tensors only."""
    import torch.distributed as dist
    dist.init_process_group(
        'gloo', init_method=f'file://{tmp_path / "store"}', rank=0,
        world_size=1)
    try:
        norm = torch.nn.SyncBatchNorm(4).train()
        with pytest.raises(ValueError, match='expected input tensor to be '
                           'on GPU'):
            norm(torch.randn(2, 4, 3, 3))
    finally:
        close_distributed()


def train_in_process(config, resume=False, amp=False):
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(dict(randomness=dict(seed=0, deterministic=True)))
    setup_runtime(cfg, amp=amp)
    cfg.resume = resume
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner.model.state_dict()


def test_resume_continues_exactly(cityscapes_mini, tmp_path):
    straight = train_in_process(
        small_config(cityscapes_mini, tmp_path / 'straight', iters=4))
    config = small_config(
        cityscapes_mini, tmp_path / 'resumed', iters=4,
        train_cfg=dict(max_iters=4, val_interval=100))
    # an interrupted run: stopped after 2 of 4 iterations
    cfg = Config.fromfile(config)
    cfg.train_cfg.max_iters = 2
    cfg.param_scheduler[0].end = 4  # the decay of the whole run
    cfg.default_hooks.checkpoint.interval = 2
    first = tmp_path / 'resumed' / 'first.py'
    cfg.dump(str(first))
    train_in_process(str(first))
    resumed = train_in_process(config, resume=True)
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key


def test_crash_while_saving_keeps_last_checkpoint(cityscapes_mini, tmp_path,
                                                  monkeypatch):
    config = small_config(
        cityscapes_mini, tmp_path, iters=2,
        default_hooks=dict(checkpoint=dict(interval=1, max_keep_ckpts=1)),
        train_cfg=dict(max_iters=2, val_interval=100))
    cfg = Config.fromfile(config)
    setup_runtime(cfg)
    runner = Runner.from_cfg(cfg)
    put = LocalBackend.put

    def crash_on_second(self, obj, filepath):
        if runner.iter >= 1:  # the second checkpoint: half written, then
            with open(filepath, 'wb') as f:  # the machine dies
                f.write(obj[:len(obj) // 2])
            raise KeyboardInterrupt
        return put(self, obj, filepath)

    monkeypatch.setattr(LocalBackend, 'put', crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        runner.train()
    monkeypatch.setattr(LocalBackend, 'put', put)
    last = open(tmp_path / 'last_checkpoint').read()
    assert last.endswith('iter_1.pth')
    ckpt = torch.load(last, map_location='cpu')  # complete and loadable
    assert ckpt['meta']['iter'] == 1
    assert sorted(os.listdir(tmp_path)) == sorted(
        ['config.py', 'iter_1.pth', 'last_checkpoint',
         osp.basename(runner.log_dir)])  # no temporary file left


def test_crash_while_saving_best_keeps_previous_best(cityscapes_mini,
                                                     tmp_path, monkeypatch):
    config = small_config(cityscapes_mini, tmp_path, iters=1,
                          train_cfg=dict(max_iters=1, val_interval=100))
    cfg = Config.fromfile(config)
    setup_runtime(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()
    hook = next(h for h in runner.hooks
                if isinstance(h, AtomicCheckpointHook))
    hook._save_best_checkpoint(runner, dict(mIoU=10.0))
    first = tmp_path / 'best_mIoU_iter_1.pth'
    assert first.is_file()
    runner.train_loop._iter = 3  # a later, better validation ...
    put = LocalBackend.put

    def crash(self, obj, filepath):  # ... dies half-way through the save
        with open(filepath, 'wb') as f:
            f.write(obj[:len(obj) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(LocalBackend, 'put', crash)
    with pytest.raises(KeyboardInterrupt):
        hook._save_best_checkpoint(runner, dict(mIoU=20.0))
    monkeypatch.setattr(LocalBackend, 'put', put)
    assert torch.load(first, map_location='cpu')['meta']['iter'] == 1
    assert not (tmp_path / 'best_mIoU_iter_3.pth').exists()
    assert not glob.glob(str(tmp_path / '.*.tmp'))
    # saved completely, the new best replaces the old one
    hook._save_best_checkpoint(runner, dict(mIoU=20.0))
    assert not first.exists()
    best = torch.load(tmp_path / 'best_mIoU_iter_3.pth', map_location='cpu')
    assert best['meta']['iter'] == 3
    assert best['message_hub']['runtime_info']['best_score'] == 20.0


def test_amp_on_cpu_trains_in_bfloat16(cityscapes_mini, tmp_path):
    config = small_config(cityscapes_mini, tmp_path, iters=1,
                          train_cfg=dict(max_iters=1, val_interval=100))
    cfg = Config.fromfile(config)
    setup_runtime(cfg, amp=True)
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA: --amp means fp16 there')
    assert cfg.optim_wrapper.type == 'CPUAmpOptimWrapper'
    runner = Runner.from_cfg(cfg)
    dtypes = []
    first_conv = next(m for m in runner.model.modules()
                      if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_hook(
        lambda module, args, out: dtypes.append((module.training, out.dtype)))
    runner.train()
    # the training forward ran under autocast, the final validation not
    assert dtypes == [(True, torch.bfloat16)] + [(False, torch.float32)] * 2
    assert all(p.dtype == torch.float32 for p in runner.model.parameters())
    assert runner.message_hub.get_scalar('train/loss').current() > 0
    # the poly decay ends at max_iters (the config leaves `end` to MMEngine)
    assert runner.param_schedulers[0].end == 1


def test_setup_runtime_on_cpu():
    cfg = Config.fromfile(osp.join(CONFIGS, 'sanet-s_cityscapes.py'))
    setup_runtime(cfg)
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA: the config is kept as it is')
    assert cfg.model.backbone.norm_cfg.type == 'BN'
    assert cfg.model.decode_head.norm_cfg.type == 'BN'
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.env_cfg.cudnn_benchmark is False


def test_training_checkpoint_loads_weights_only(trained):
    _, config, ckpt = trained
    state = torch.load(ckpt, map_location='cpu')  # weights_only by default
    assert {'meta', 'state_dict', 'message_hub', 'optimizer'} <= set(state)
    from mmseg.apis import init_model
    model = init_model(config, ckpt, device='cpu')
    assert model.dataset_meta['classes'][-1] == 'bicycle'


def test_close_distributed(tmp_path):
    """The tools end a run's process group before they exit (and do nothing
    without one)."""
    import torch.distributed as dist
    close_distributed()
    dist.init_process_group(
        'gloo', init_method=f'file://{tmp_path / "store"}', rank=0,
        world_size=1)
    assert dist.is_initialized()
    close_distributed()
    assert not dist.is_initialized()

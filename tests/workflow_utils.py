"""A small SANet-S Cityscapes config for CPU tests of the workflows."""
import os
import os.path as osp
import socket
import subprocess
import sys

from mmengine.config import Config
from tool_runner import run_script

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TESTS = osp.join(REPO, 'tests')
CONFIGS = osp.join(REPO, 'configs', 'sanet')


def _shrink(pipeline):
    """Resize to 512x256 and crop 256x256 in a copy of a pipeline."""
    pipeline = [dict(t) for t in pipeline]
    for t in pipeline:
        if t['type'] in ('Resize', 'RandomResize') and 'scale' in t:
            t['scale'] = (512, 256)
        if t['type'] == 'RandomResize':
            t['ratio_range'] = (0.75, 1.25)
        if t['type'] == 'RandomChoiceResize':  # the authors' scale draw
            t['scales'] = [(512, 256)]
        if t['type'] == 'PadSegFields':
            t['size'] = (256, 256)
        if t['type'] == 'RandomCrop':
            t['crop_size'] = (256, 256)
    return pipeline


def small_config(data_root, work_dir, config='sanet-s_cityscapes.py',
                 iters=2, **options):
    """The config at a size a CPU test affords: frames resized to 512x256,
    256x256 crops, batch 2, ``iters`` iterations, validation at the end;
    every dataset (each part of a ``ConcatDataset`` too) reads
    ``data_root``; ``options`` are merged last. Returns the path of the
    dumped config."""
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(name)
        if loader is None:  # e.g. no validation in the train+val configs
            continue
        loader.update(num_workers=0, persistent_workers=False)
        for dataset in loader.dataset.get('datasets', [loader.dataset]):
            dataset.data_root = data_root
            dataset.pipeline = _shrink(dataset.pipeline)
    cfg.train_dataloader.batch_size = 2
    cfg.merge_from_dict(
        dict(
            work_dir=str(work_dir),
            model=dict(data_preprocessor=dict(size=(256, 256))),
            train_cfg=dict(max_iters=iters, val_interval=iters),
            default_hooks=dict(
                logger=dict(interval=1),
                checkpoint=dict(interval=iters)),
            log_level='INFO'))
    cfg.merge_from_dict(options)
    cfg.tta_pipeline[1]['transforms'][0] = [
        dict(type='Resize', scale=(512, 256), keep_ratio=True),
        dict(type='Resize', scale=(384, 192), keep_ratio=True)
    ]
    os.makedirs(str(work_dir), exist_ok=True)
    path = osp.join(str(work_dir), 'config.py')
    cfg.dump(path)
    return path


def run(*args, cwd=None, timeout=600):
    """Run a command (``python ARGS``), return its output; fail with it on
    a non-zero exit. A script runs in a process forked from one that has
    imported torch and MMSeg (:mod:`tool_runner`); ``-c`` and ``-m`` in a
    new interpreter."""
    if args[0].startswith('-'):
        out = subprocess.run([sys.executable, *args], capture_output=True,
                             text=True, cwd=cwd or REPO, timeout=timeout)
    else:
        out = run_script(*args, cwd=cwd or REPO, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    return out.stdout + out.stderr


def random_checkpoint(config, path):
    """Save the randomly initialised model of ``config`` as an MMSeg
    checkpoint with the Cityscapes classes and palette. Returns ``path``."""
    import torch
    from mmengine.registry import init_default_scope
    from mmseg.datasets import CityscapesDataset
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(config).model)
    meta = dict(
        dataset_meta=dict(
            classes=CityscapesDataset.METAINFO['classes'],
            palette=CityscapesDataset.METAINFO['palette']))
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    torch.save(dict(meta=meta, state_dict=model.state_dict()), path)
    return path


def free_port():
    """A TCP port free on localhost now."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def launch_env(**variables):
    """The environment of a launched run: this interpreter, one thread per
    process, the tests folder importable (for test hooks named in
    ``custom_imports``), plus ``variables``."""
    return dict(
        os.environ,
        PYTHON=sys.executable,
        OMP_NUM_THREADS='1',
        PYTHONPATH=os.pathsep.join([TESTS, os.environ.get('PYTHONPATH',
                                                          '')]),
        **{k: str(v)
           for k, v in variables.items()})


def randomize_bn(model):
    """Random BN statistics and affine parameters (from torch's generator:
    seed it first), so that a random model's outputs vary over the image;
    returns the model."""
    import torch
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return model

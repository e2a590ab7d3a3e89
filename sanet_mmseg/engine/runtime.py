# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Run the GPU-minded configs on whatever the machine has."""
import logging
import os
import os.path as osp
import subprocess
from typing import Optional

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.logging import print_log


def _plain_bn(node):
    """Replace SyncBN norm configs by BN, recursively."""
    if isinstance(node, dict):
        if node.get('type') == 'SyncBN':
            node['type'] = 'BN'
        for value in node.values():
            _plain_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _plain_bn(value)
    return node


def load_config(path: str,
                cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None,
                sub_dir: str = '') -> Config:
    """A config as MMSeg's tools/train.py and test.py read it.

    Args:
        path (str): The config file.
        cfg_options (dict, optional): ``--cfg-options``, merged in.
            Default: None.
        work_dir (str, optional): ``--work-dir``; None: the config's own,
            else ``work_dirs/CONFIG_NAME/SUB_DIR``. Default: None.
        sub_dir (str): Below the default work dir. Default: ''.
    """
    cfg = Config.fromfile(path)
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None or sub_dir:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(path))[0], sub_dir)
    return cfg


def setup_runtime(cfg: Config, launcher: str = 'none',
                  amp: bool = False) -> Config:
    """Adapt a config to the machine, in place, before building the Runner.

    With CUDA nothing changes but ``--amp`` (MMEngine's AmpOptimWrapper).
    Without CUDA: SyncBN becomes BN, cudnn benchmark is off, ``amp`` means
    bfloat16 autocast (:class:`CPUAmpOptimWrapper`), and a distributed
    launch (``pytorch`` from torchrun, ``slurm`` from srun) uses gloo, is
    initialised here (MMEngine's ``init_dist`` calls
    ``torch.cuda.set_device``) and wraps the model in DDP without device ids.

    Args:
        cfg (Config): The config; changed in place and returned.
        launcher (str): 'none', 'pytorch', 'slurm' or 'mpi'.
        amp (bool): Enable automatic mixed precision.
    """
    cuda = torch.cuda.is_available()
    if launcher == 'pytorch' and _restart_attempt() > 0:
        _init_restarted_group('nccl' if cuda else 'gloo')
    if amp and 'optim_wrapper' in cfg:
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper not in ('OptimWrapper', 'AmpOptimWrapper',
                           'CPUAmpOptimWrapper'):
            raise ValueError('--amp needs optim_wrapper type OptimWrapper, '
                             f'got {wrapper}')
        if cuda:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
        else:
            cfg.optim_wrapper.type = 'CPUAmpOptimWrapper'
            cfg.optim_wrapper.pop('loss_scale', None)
            print_log('no CUDA: --amp trains under bfloat16 autocast on the '
                      'CPU', logger='current', level=logging.WARNING)
    elif not cuda and cfg.get('optim_wrapper', {}).get(
            'type') == 'AmpOptimWrapper':
        cfg.optim_wrapper.type = 'CPUAmpOptimWrapper'
        cfg.optim_wrapper.pop('loss_scale', None)
    if cuda:
        return cfg

    _plain_bn(cfg.model)
    cfg.setdefault('env_cfg', {})
    cfg.env_cfg['cudnn_benchmark'] = False
    cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    if launcher != 'none':
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        if launcher in ('pytorch', 'slurm') and not dist.is_initialized():
            if launcher == 'slurm':
                _slurm_environment()
            dist.init_process_group(
                'gloo',
                rank=int(os.environ['RANK']),
                world_size=int(os.environ['WORLD_SIZE']))
    return cfg


def _restart_attempt() -> int:
    """torchrun's restart count of this worker group (0: the first)."""
    return int(os.environ.get('TORCHELASTIC_RESTART_COUNT', '0') or 0)


def _init_restarted_group(backend: str) -> None:
    """Start the process group of a worker group that torchrun restarted
    (``--max-restarts``) on keys of this attempt.

    torchrun's static rendezvous keeps one store for all attempts, and
    ``init_process_group``'s ``env://`` reads it without a prefix per
    attempt, so a restarted rank could read the address (gloo) or NCCL id
    its dead predecessor left there and fail ('Connection refused'). Here
    the ranks meet in that store under ``attempt_N/``. With CUDA the rank
    is bound to GPU ``LOCAL_RANK`` first, as MMEngine's ``init_dist``
    does; MMEngine then finds the group started."""
    if dist.is_initialized():
        return
    if backend == 'nccl':
        torch.cuda.set_device(int(os.environ['LOCAL_RANK']))
    store = dist.TCPStore(
        os.environ['MASTER_ADDR'],
        int(os.environ['MASTER_PORT']),
        is_master=os.environ.get('TORCHELASTIC_USE_AGENT_STORE') != 'True'
        and os.environ['RANK'] == '0')
    dist.init_process_group(
        backend,
        store=dist.PrefixStore(f'attempt_{_restart_attempt()}', store),
        rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']))


def _slurm_environment() -> None:
    """Set torch's RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT
    from an ``srun`` task's variables as MMEngine's ``_init_dist_slurm``
    does, without its ``torch.cuda`` calls: SLURM_PROCID, SLURM_NTASKS,
    SLURM_LOCALID; the first host of SLURM_NODELIST unless MASTER_ADDR is
    set; MASTER_PORT, else 29500 (tools/slurm_train.sh sets it from
    PORT)."""
    missing = [
        name for name in ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST')
        if name not in os.environ
    ]
    if missing:
        raise RuntimeError(
            f'--launcher slurm: no {", ".join(missing)} in the environment; '
            'start the tool with srun (tools/slurm_train.sh, slurm_test.sh)')
    if 'MASTER_ADDR' not in os.environ:
        hosts = subprocess.run(
            ['scontrol', 'show', 'hostnames', os.environ['SLURM_NODELIST']],
            capture_output=True, text=True)
        if hosts.returncode != 0 or not hosts.stdout.split():
            raise RuntimeError('--launcher slurm: `scontrol show hostnames '
                               f'{os.environ["SLURM_NODELIST"]}` failed: '
                               f'{hosts.stderr.strip()}')
        os.environ['MASTER_ADDR'] = hosts.stdout.split()[0]
    os.environ.setdefault('MASTER_PORT', '29500')
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')


def close_distributed() -> None:
    """End the process group of a distributed run, if any, before the tool
    exits: a gloo or NCCL thread still running when the interpreter shuts
    down can abort the process ('terminate called without an active
    exception') after its work is done."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def add_tensorboard(cfg: Config) -> Config:
    """Log to TensorBoard as well (MMEngine's ``TensorboardVisBackend``:
    losses, learning rate and metrics; with ``--show-dir`` the painted
    images), in place. The event files go to the run's
    ``WORK_DIR/TIMESTAMP/vis_data``; view them with
    ``tensorboard --logdir WORK_DIR``.

    Args:
        cfg (Config): The config; changed in place and returned.
    """
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise ImportError('--tensorboard needs the tensorboard package: '
                          'pip install tensorboard') from None
    backends = cfg.visualizer.setdefault('vis_backends', [])
    if not any(b.get('type') == 'TensorboardVisBackend' for b in backends):
        backends.append(dict(type='TensorboardVisBackend'))
    return cfg

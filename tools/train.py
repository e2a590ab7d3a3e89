# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Train a segmentor: MMSeg's tools/train.py, on GPUs or on the CPU."""
import argparse
import os

from mmengine.config import DictAction
from mmengine.runner import Runner

from mmseg.registry import RUNNERS
from sanet_mmseg.engine import add_tensorboard, load_config, setup_runtime


def parse_args():
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        action='store_true',
        default=False,
        help='resume from the latest checkpoint in the work_dir automatically')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training (fp16 on CUDA, '
        'bfloat16 autocast on the CPU)')
    parser.add_argument(
        '--tensorboard',
        action='store_true',
        help='log to TensorBoard too (event files in '
        'WORK_DIR/TIMESTAMP/vis_data)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    cfg.launcher = args.launcher
    setup_runtime(cfg, args.launcher, amp=args.amp)
    if args.tensorboard:
        add_tensorboard(cfg)
    cfg.resume = args.resume

    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    runner.train()


if __name__ == '__main__':
    main()

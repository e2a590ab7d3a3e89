# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Test (and evaluate) a segmentor: MMSeg's tools/test.py, on GPUs or on the
CPU."""
import argparse
import os
import os.path as osp

from mmengine.config import DictAction
from mmengine.runner import Runner

from sanet_mmseg.engine import add_tensorboard, load_config, setup_runtime


def parse_args():
    parser = argparse.ArgumentParser(
        description='MMSeg test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='if specified, the evaluation metric results will be dumped '
        'into the directory as json')
    parser.add_argument(
        '--out',
        type=str,
        help='The directory to save output prediction for offline evaluation')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved (under '
        'work_dir/timestamp/)')
    parser.add_argument(
        '--show-interval',
        type=int,
        default=1,
        help='with --show or --show-dir, paint every N-th batch (default: '
        'every one; MMSeg\'s tools/test.py paints every 50th)')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--tensorboard',
        action='store_true',
        help='log to TensorBoard too (metrics; with --show-dir the painted '
        'images), event files in WORK_DIR/TIMESTAMP/vis_data or under '
        '--show-dir')
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
    parser.add_argument(
        '--tta', action='store_true', help='Test time augmentation')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if args.show_interval < 1:
        parser.error('--show-interval must be at least 1')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def trigger_visualization_hook(cfg, args):
    if 'visualization' not in cfg.default_hooks:
        raise RuntimeError('--show and --show-dir need a visualization hook '
                           'in default_hooks')
    hook = cfg.default_hooks['visualization']
    hook['draw'] = True
    hook['interval'] = args.show_interval
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        cfg.visualizer['save_dir'] = args.show_dir
    return cfg


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    cfg.launcher = args.launcher
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {args.checkpoint}')
    cfg.load_from = args.checkpoint
    setup_runtime(cfg, args.launcher)

    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)
    if args.tensorboard:
        add_tensorboard(cfg)
    if args.tta:
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if args.out is not None:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True

    runner = Runner.from_cfg(cfg)
    runner.test()


if __name__ == '__main__':
    main()

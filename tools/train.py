# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Train a segmentor: MMSeg's tools/train.py, on GPUs or on the CPU."""
import os
import sys

from mmengine.logging import print_log
from mmengine.runner import Runner, find_latest_checkpoint

from mmseg.registry import RUNNERS
from sanet_mmseg.cli import add_runner_args, runner_config, tool_parser
from sanet_mmseg.engine import close_distributed, load_config, relaunched


def parse_args():
    parser = tool_parser(__doc__, 'config')
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
        '--check-data',
        action='store_true',
        help='first read every image and label of the train and val '
        'datasets (tools/analysis_tools/check_dataset.py) and stop if any '
        'has a problem')
    add_runner_args(parser, launcher=True)
    return parser.parse_args()


def check_data(cfg) -> None:
    """tools/analysis_tools/check_dataset.py on the train and val datasets,
    in the first process of a launch only; exits with status 1 on any
    problem."""
    rank = os.environ.get('RANK', os.environ.get('SLURM_PROCID', '0'))
    if rank != '0':
        return
    from sanet_mmseg.dataset_check import check_datasets, format_problems
    report = check_datasets(cfg, ('train', 'val'))
    if report.problems:
        print(format_problems(report.problems))
    print(report.summary(), flush=True)
    if report.problems:
        sys.exit(1)


def resume_relaunched(cfg) -> None:
    """A group torchrun restarted (MAX_RESTARTS) or a requeued Slurm job
    continues from the last checkpoint of its work dir, if there is one
    (MMEngine's resume would take ``load_from``, the initial weights,
    where the config sets it)."""
    latest = find_latest_checkpoint(cfg.work_dir)
    if latest is not None:
        cfg.resume, cfg.load_from = True, latest
    print_log(
        f'relaunched run: resuming from {latest}' if latest else
        'relaunched run: no checkpoint yet, starting again',
        logger='current')


def main():
    args = parse_args()
    if args.check_data and not relaunched():  # checked at the first run
        check_data(load_config(args.config, args.cfg_options, args.work_dir))
    cfg = runner_config(args, amp=args.amp)
    cfg.resume = args.resume
    if relaunched():
        resume_relaunched(cfg)

    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    runner.train()
    close_distributed()


if __name__ == '__main__':
    main()

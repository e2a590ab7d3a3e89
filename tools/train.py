# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Train a segmentor: MMSeg's tools/train.py, on GPUs or on the CPU."""
from mmengine.runner import Runner

from mmseg.registry import RUNNERS
from sanet_mmseg.cli import add_runner_args, runner_config, tool_parser
from sanet_mmseg.engine import close_distributed


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
    add_runner_args(parser, launcher=True)
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = runner_config(args, amp=args.amp)
    cfg.resume = args.resume

    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    runner.train()
    close_distributed()


if __name__ == '__main__':
    main()

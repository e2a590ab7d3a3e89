# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Test (and evaluate) a segmentor: MMSeg's tools/test.py, on GPUs or on the
CPU."""
from mmengine.runner import Runner

from sanet_mmseg.cli import (add_runner_args, add_test_outputs,
                             apply_test_outputs, runner_config, tool_parser)
from sanet_mmseg.engine import close_distributed


def parse_args():
    parser = tool_parser(__doc__, 'config', 'checkpoint')
    add_test_outputs(parser)
    parser.add_argument(
        '--tta', action='store_true', help='Test time augmentation')
    add_runner_args(parser, launcher=True)
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = apply_test_outputs(runner_config(args), args)
    cfg.load_from = args.checkpoint
    if args.tta:
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model

    runner = Runner.from_cfg(cfg)
    runner.test()
    close_distributed()


if __name__ == '__main__':
    main()

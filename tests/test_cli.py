"""The command-line arguments the tools share (sanet_mmseg.cli), and that
each tool declares them the same way."""
import os
import os.path as osp
import sys

import pytest

from sanet_mmseg.cli import (add_runner_args, add_shape, add_test_outputs,
                             apply_test_outputs, positive, runner_config,
                             tool_parser)
from test_deploy import load_tool
from workflow_utils import CONFIGS

CONFIG = osp.join(CONFIGS, 'sanet-s_demo.py')


def test_positive(capsys):
    parser = tool_parser('a tool')
    add_shape(parser, 'input size')
    parser.add_argument('--seconds', type=positive(float))
    args = parser.parse_args(['--shape', '64', '128', '--seconds', '0.5'])
    assert args.shape == [64, 128] and args.seconds == 0.5
    for argv, message in ((['--shape', '64', '0'], 'argument --shape: must '
                           'be positive, got 0'),
                          (['--seconds', '-1'], 'must be positive, got -1'),
                          (['--shape', '6.5', '8'], "invalid positive int "
                           "value: '6.5'")):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
        assert message in capsys.readouterr().err


def test_tool_parser_positionals(capsys):
    parser = tool_parser('Line one.\n  kept as written', 'config',
                         'checkpoint', ('video', 'a video'),
                         random_weights=True)
    args = parser.parse_args(['c.py', 'none', 'v.mp4'])
    assert (args.config, args.checkpoint, args.video) == ('c.py', 'none',
                                                          'v.mp4')
    parser.print_help()
    text = capsys.readouterr().out
    assert "'none' for random weights" in text and 'a video' in text
    assert 'Line one.\n  kept as written' in text
    with pytest.raises(KeyError):
        tool_parser('a tool', 'no_such_positional')


def test_runner_config(monkeypatch, tmp_path):
    parser = tool_parser('a tool', 'config')
    parser.add_argument('--work-dir')
    add_runner_args(parser, launcher=True)
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    args = parser.parse_args([
        CONFIG, '--local-rank', '3', '--tensorboard', '--cfg-options',
        'train_cfg.max_iters=7'
    ])
    cfg = runner_config(args, sub_dir='deploy')
    assert os.environ['LOCAL_RANK'] == '3'
    assert cfg.train_cfg.max_iters == 7 and cfg.launcher == 'none'
    assert cfg.work_dir == osp.join('./work_dirs', 'sanet-s_demo', 'deploy')
    assert {'type': 'TensorboardVisBackend'} in cfg.visualizer.vis_backends
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'  # setup_runtime, no CUDA
    # a launcher's LOCAL_RANK is kept; --work-dir wins
    monkeypatch.setenv('LOCAL_RANK', '1')
    cfg = runner_config(
        parser.parse_args([CONFIG, '--work-dir', str(tmp_path)]))
    assert os.environ['LOCAL_RANK'] == '1' and cfg.work_dir == str(tmp_path)
    assert not any(b['type'] == 'TensorboardVisBackend'
                   for b in cfg.visualizer.vis_backends)


def test_test_outputs(tmp_path):
    parser = tool_parser('a tool', 'config')
    add_test_outputs(parser)
    add_runner_args(parser)
    args = parser.parse_args([CONFIG])
    cfg = apply_test_outputs(runner_config(args), args)
    assert not cfg.default_hooks.visualization.get('draw', False)
    assert 'output_dir' not in cfg.test_evaluator

    args = parser.parse_args([
        CONFIG, '--show-dir', str(tmp_path), '--show-interval', '3', '--out',
        str(tmp_path / 'pred'), '--show', '--wait-time', '0.5'
    ])
    cfg = apply_test_outputs(runner_config(args), args)
    hook = cfg.default_hooks.visualization
    assert (hook.draw, hook.interval) == (True, 3)
    assert (hook.show, hook.wait_time) == (True, 0.5)
    assert cfg.visualizer.save_dir == str(tmp_path)
    assert cfg.test_evaluator.output_dir == str(tmp_path / 'pred')
    assert cfg.test_evaluator.keep_results
    del cfg.default_hooks['visualization']
    with pytest.raises(RuntimeError, match='need a visualization hook'):
        apply_test_outputs(cfg, args)


@pytest.mark.parametrize('tool', ['tools/test.py', 'tools/deployment/test.py'])
def test_test_tools_share_outputs(tool, monkeypatch):
    """Both evaluation tools take the same output options."""
    argv = ['CONFIG', 'MODEL', '--show-interval', '2', '--out', 'o']
    monkeypatch.setattr(sys, 'argv', [tool, *argv])  # tools/test.py reads it
    args = load_tool(tool).parse_args()
    assert (args.show_interval, args.out, args.show) == (2, 'o', False)

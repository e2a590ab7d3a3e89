"""The command-line arguments the tools share (sanet_mmseg.cli), and that
each tool declares them the same way."""
import os
import os.path as osp
import sys

import pytest
import torch

from sanet_mmseg.cli import (add_runner_args, add_shape, add_test_outputs,
                             apply_test_outputs, checkpoint_file,
                             checkpoint_or_artefact, is_checkpoint, positive,
                             runner_config, tool_parser)
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


@pytest.fixture
def small_checkpoint(tmp_path):
    path = str(tmp_path / 'small.pth')
    torch.save(dict(state_dict=dict(w=torch.zeros(2))), path)
    return path


@pytest.mark.parametrize('tool', ['tools/test.py', 'tools/deployment/test.py'])
def test_test_tools_share_outputs(tool, monkeypatch, small_checkpoint):
    """Both evaluation tools take the same output options."""
    argv = ['CONFIG', small_checkpoint, '--show-interval', '2', '--out', 'o']
    monkeypatch.setattr(sys, 'argv', [tool, *argv])  # tools/test.py reads it
    args = load_tool(tool).parse_args()
    assert (args.show_interval, args.out, args.show) == (2, 'o', False)


def test_checkpoint_file(tmp_path, small_checkpoint):
    """Files torch.save wrote (zip, and the legacy format) are checkpoints;
    anything else is refused by name before torch's unpickler sees it."""
    legacy = str(tmp_path / 'legacy.pth')
    torch.save(dict(w=torch.zeros(1)), legacy,
               _use_new_zipfile_serialization=False)
    assert checkpoint_file(small_checkpoint) == small_checkpoint
    assert is_checkpoint(legacy)
    others = {
        'notes.txt': b'a text file\n',
        'model.xml': b'<?xml version="1.0"?>\n<net name="m" version="11">',
        'model.bin': bytes(64),
        'pickle.pkl': b'\x80\x04K\x01.',  # pickle.dumps(1): not torch's
        'empty.pth': b'',
    }
    for name, data in others.items():
        (tmp_path / name).write_bytes(data)
    zipped = str(tmp_path / 'other.zip')  # a zip that torch did not write
    import zipfile
    with zipfile.ZipFile(zipped, 'w') as z:
        z.writestr('readme.txt', 'hello')
    paths = [str(tmp_path / n) for n in others] + [zipped]
    if osp.isfile('/etc/passwd'):
        paths.append('/etc/passwd')
    for path in paths:
        assert not is_checkpoint(path), path
        with pytest.raises(Exception, match=f'not a checkpoint: {path}'):
            checkpoint_file(path)
    with pytest.raises(Exception, match='checkpoint not found: '):
        checkpoint_file(str(tmp_path / 'missing.pth'))
    with pytest.raises(Exception, match='checkpoint not found'):
        checkpoint_file(str(tmp_path))  # a folder
    # an artefact folder passes as is where a tool takes either
    assert checkpoint_or_artefact(str(tmp_path)) == str(tmp_path)
    with pytest.raises(Exception, match='not a checkpoint'):
        checkpoint_or_artefact(str(tmp_path / 'model.xml'))


@pytest.mark.parametrize('tool', [
    'tools/test.py', 'tools/deployment/export.py',
    'tools/deployment/pytorch2onnx.py', 'tools/video_demo.py',
    'tools/analysis_tools/benchmark.py', 'tools/analysis_tools/'
    'receptive_field.py', 'tools/visualization/heat_map.py',
    'tools/visualization/segmentation_image.py', 'tools/image_demo.py'
])
def test_every_checkpoint_argument_is_checked(tool, tmp_path, monkeypatch,
                                              capsys):
    """Every tool that takes a checkpoint says 'not a checkpoint' for any
    other file, at the argument (exit 2, usage), before building a model."""
    text = tmp_path / 'notes.txt'
    text.write_text('not a checkpoint')
    positional = {
        'tools/test.py': ['CONFIG', str(text)],
        'tools/deployment/export.py': ['CONFIG', str(text)],
        'tools/deployment/pytorch2onnx.py': ['CONFIG', str(text)],
        'tools/video_demo.py': ['0', 'CONFIG', str(text)],
        'tools/analysis_tools/benchmark.py': ['CONFIG', '--checkpoint',
                                              str(text)],
        'tools/analysis_tools/receptive_field.py': ['CONFIG', '--checkpoint',
                                                    str(text)],
        'tools/visualization/heat_map.py': ['CONFIG', str(text), 'img.png',
                                            '--category', 'road',
                                            '--out-dir', 'o'],
        'tools/visualization/segmentation_image.py': ['CONFIG', str(text),
                                                      'img.png', '--out-dir',
                                                      'o'],
        'tools/image_demo.py': ['img.png', 'CONFIG', str(text), '--out-file',
                                'o.png'],
    }[tool]
    monkeypatch.setattr(sys, 'argv', [tool, *positional])
    module = load_tool(tool)
    with pytest.raises(SystemExit) as e:
        module.main()  # reads sys.argv
    assert e.value.code == 2
    assert f'not a checkpoint: {text}' in capsys.readouterr().err

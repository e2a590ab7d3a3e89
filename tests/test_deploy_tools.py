"""The deployment tools: export.py and the evaluation of an artefact
(tools/deployment/test.py); the video demo and the benchmark have their
own test files."""
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmseg.datasets import CityscapesDataset
from sanet_mmseg.comparison import compare_logits
from sanet_mmseg.deploy import (PipelineInputs, export_artefact,
                                load_predictor, load_segmentor, read_meta)
from sanet_mmseg.engine import setup_runtime
from test_deploy import CONFIG, load_tool, random_segmentor
from workflow_utils import random_checkpoint, small_config

META = dict(
    classes=CityscapesDataset.METAINFO['classes'],
    palette=CityscapesDataset.METAINFO['palette'])


@pytest.fixture(scope='module')
def random_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp('ckpt') / 'random.pth'
    return random_checkpoint(CONFIG, str(path))


def test_export_and_evaluate(cityscapes_mini, random_ckpt, tmp_path,
                             capsys):
    """An exported artefact evaluated by tools/deployment/test.py gives the
    mIoU tools/test.py gives for the checkpoint (fp32), and the usual
    per-class table."""
    config = small_config(cityscapes_mini, tmp_path / 'work')
    out = str(tmp_path / 'openvino')
    export = load_tool('tools/deployment/export.py')
    export.main([config, random_ckpt, '--backend', 'openvino',
                 '--precision', 'fp32', '--calib', 'config', '--calib-num',
                 '1', '--out-dir', out, '--verify'])
    printed = capsys.readouterr().out
    assert 'exported openvino fp32 (256x512)' in printed
    assert printed.count('max relative error') == 2, printed
    assert 'FAILED' not in printed
    meta = read_meta(out)
    assert meta['source']['checkpoint'] == osp.abspath(random_ckpt)
    assert meta['classes'] == list(META['classes'])

    evaluate = load_tool('tools/deployment/test.py')
    deployed = evaluate.main([config, out, '--work-dir',
                              str(tmp_path / 'deployed')])
    printed = capsys.readouterr()
    assert 'evaluating openvino fp32 (256x512)' in printed.out
    cfg = Config.fromfile(config)
    cfg.load_from = random_ckpt
    cfg.work_dir = str(tmp_path / 'torch')
    setup_runtime(cfg)
    expected = Runner.from_cfg(cfg).test()
    assert abs(deployed['mIoU'] - expected['mIoU']) <= 0.01, (
        deployed, expected)
    assert abs(deployed['aAcc'] - expected['aAcc']) <= 0.01


def test_export_tool_int8(cityscapes_mini, tmp_path, capsys):
    """The int8 artefact of random weights (seeded, rebuilt here) stays
    close to the float model on the calibration images, and the tool's
    --verify prints those very figures."""
    export = load_tool('tools/deployment/export.py')
    out = str(tmp_path / 'int8')
    folder = osp.join(cityscapes_mini, 'leftImg8bit', 'train')
    torch.manual_seed(0)
    export.main([CONFIG, 'none', '--backend', 'onnxruntime', '--precision',
                 'int8', '--calib', folder, '--calib-num', '2', '--shape',
                 '64', '128', '--out-dir', out, '--verify'])
    printed = capsys.readouterr().out
    assert 'RANDOM weights' in printed
    assert f'calibration: 2 images of {folder}' in printed
    assert printed.count('labels equal on') == 3 and 'FAILED' not in printed
    meta = read_meta(out)
    assert meta['precision'] == 'int8' and meta['input']['shape'] == [
        1, 3, 64, 128]
    assert meta['calibration']['images'] == 2
    figures = {
        name: (err, same) for name, err, same in re.findall(
            r'  (.+): max relative error (\S+), labels equal on (\S+)%',
            printed)
    }
    err, same = figures['random input']  # outside the calibration range
    assert float(err) < 0.5 and float(same) > 80, figures
    torch.manual_seed(0)
    model = load_segmentor(CONFIG, 'none')
    predictor = load_predictor(out)
    calib = PipelineInputs(Config.fromfile(CONFIG), folder, 2, (64, 128))
    for i in range(2):
        with torch.no_grad():
            expected = model._forward(calib[i])
        got = predictor(calib[i])
        cosine = torch.cosine_similarity(got.flatten(), expected.flatten(), 0)
        err, same = compare_logits(got, expected)
        assert 0 < err < 0.1 and same > 0.9 and cosine > 0.99, (err, same)
        assert figures[f'calibration image {i}'] == (f'{err:.3g}',
                                                     f'{same * 100:.2f}')


@pytest.mark.parametrize('argv,message', [
    (['--backend', 'onnxruntime', '--precision', 'int8'], 'calibration'),
    (['--backend', 'onnxruntime', '--precision', 'bf16'], 'runs fp32, int8'),
    (['--backend', 'openvino', '--precision', 'fp32', '--preset', 'mixed'],
     "['preset']"),  # named as not applying to fp32
    (['--backend', 'torch', '--precision', 'fp32'], 'invalid choice'),
])
def test_export_tool_arguments(argv, message, tmp_path, capsys):
    export = load_tool('tools/deployment/export.py')
    with pytest.raises(SystemExit):
        export.parse_args([CONFIG, 'none', '--out-dir', str(tmp_path), *argv])
    assert message in capsys.readouterr().err


def test_export_tool_missing_checkpoint(tmp_path, capsys):
    export = load_tool('tools/deployment/export.py')
    with pytest.raises(SystemExit):
        export.main([CONFIG, str(tmp_path / 'missing.pth'), '--backend',
                     'openvino', '--precision', 'fp32', '--out-dir',
                     str(tmp_path)])
    assert 'checkpoint not found' in capsys.readouterr().err


def test_evaluate_refuses_other_classes(cityscapes_mini, tmp_path):
    config = small_config(cityscapes_mini, tmp_path / 'work')
    out = export_artefact(
        random_segmentor('s'), str(tmp_path / 'artefact'), 'onnxruntime',
        'fp32', (64, 128),
        dict(classes=[f'c{i}' for i in range(19)], palette=META['palette']))
    evaluate = load_tool('tools/deployment/test.py')
    with pytest.raises(SystemExit, match='the artefact predicts 19 classes'):
        evaluate.main([config, out])
    with pytest.raises(FileNotFoundError, match='not an artefact'):
        evaluate.main([config, str(tmp_path)])


@pytest.mark.parametrize('tool', [
    'tools/analysis_tools/benchmark.py', 'tools/deployment/pytorch2onnx.py',
    'tools/deployment/export.py', 'tools/deployment/test.py',
    'tools/video_demo.py'
])
def test_tools_help(tool, capsys):
    with pytest.raises(SystemExit) as e:
        load_tool(tool).parse_args(['--help'])
    assert e.value.code == 0 and 'usage' in capsys.readouterr().out

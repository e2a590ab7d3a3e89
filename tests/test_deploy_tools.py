"""The deployment tools: export.py, the evaluation of an artefact
(tools/deployment/test.py), the video demo and the benchmark."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.runner import Runner

from mmseg.datasets import CityscapesDataset
from sanet_mmseg.deploy import export_artefact, read_meta
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


@pytest.fixture(scope='module')
def onnx_artefact(tmp_path_factory):
    """An ONNX Runtime fp32 artefact for 64x128 inputs."""
    out = str(tmp_path_factory.mktemp('artefact'))
    return export_artefact(random_segmentor('s'), out, 'onnxruntime', 'fp32',
                           (64, 128), META)


@pytest.fixture(scope='module')
def video(cityscapes_mini, tmp_path_factory):
    """A 6-frame MJPG video of 256x128 made of the val frames."""
    folder = osp.join(cityscapes_mini, 'leftImg8bit', 'val')
    frames = sorted(
        osp.join(root, f) for root, _, files in os.walk(folder)
        for f in files)
    path = str(tmp_path_factory.mktemp('video') / 'frames.avi')
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'MJPG'), 10,
                             (256, 128))
    for i in range(6):
        writer.write(cv2.resize(cv2.imread(frames[i % len(frames)]),
                                (256, 128)))
    writer.release()
    return path


def frame_count(path):
    cap = cv2.VideoCapture(path)
    count = 0
    while cap.read()[0]:
        count += 1
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    cap.release()
    return count, size


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
    assert abs(deployed['mIoU'] - expected['mIoU']) <= 0.01, (deployed,
                                                             expected)
    assert abs(deployed['aAcc'] - expected['aAcc']) <= 0.01


def test_export_tool_int8(cityscapes_mini, tmp_path, capsys):
    export = load_tool('tools/deployment/export.py')
    out = str(tmp_path / 'int8')
    folder = osp.join(cityscapes_mini, 'leftImg8bit', 'train')
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


@pytest.mark.parametrize('argv,message', [
    (['--backend', 'onnxruntime', '--precision', 'int8'], 'calibration'),
    (['--backend', 'onnxruntime', '--precision', 'bf16'], 'runs fp32, int8'),
    (['--backend', 'openvino', '--precision', 'fp32', '--preset', 'mixed'],
     'openvino int8'),
    (['--backend', 'torch', '--precision', 'fp32'], 'invalid choice'),
])
def test_export_tool_arguments(argv, message, tmp_path, capsys):
    export = load_tool('tools/deployment/export.py')
    with pytest.raises(SystemExit):
        export.parse_args([CONFIG, 'none', '--out-dir', str(tmp_path), *argv])
    assert message in capsys.readouterr().err


def test_export_tool_missing_checkpoint(tmp_path):
    export = load_tool('tools/deployment/export.py')
    with pytest.raises(FileNotFoundError, match='no checkpoint file'):
        export.main([CONFIG, str(tmp_path / 'missing.pth'), '--backend',
                     'openvino', '--precision', 'fp32', '--out-dir',
                     str(tmp_path)])


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


def test_video_demo(video, onnx_artefact, random_ckpt, tmp_path, capsys):
    demo = load_tool('tools/video_demo.py')
    out = str(tmp_path / 'painted.mp4')
    demo.main([video, CONFIG, onnx_artefact, '--output-file', out])
    printed = capsys.readouterr().out
    assert 'onnxruntime:fp32 (64x128)' in printed
    assert '6 frames in' in printed and 'FPS' in printed
    assert 'inference latency ms: mean' in printed
    assert 'p50' in printed and 'p95' in printed
    assert frame_count(out) == (6, (256, 128))
    assert os.listdir(tmp_path) == ['painted.mp4']  # no temp file left
    # a checkpoint, run in PyTorch at the size given
    out = str(tmp_path / 'torch.avi')
    demo.main([video, CONFIG, random_ckpt, '--backend', 'torch',
               '--shape', '64', '128', '--output-file', out, '--opacity',
               '1'])
    assert 'torch:fp32 (64x128)' in capsys.readouterr().out
    count, size = frame_count(out)
    assert (count, size) == (6, (256, 128))
    cap = cv2.VideoCapture(out)
    frame = cap.read()[1]
    cap.release()
    # opacity 1: the frame is the palette's colours (and the FPS text)
    palette = torch.tensor(META['palette'])[:, [2, 1, 0]]
    pixels = torch.from_numpy(frame[64:, :].reshape(-1, 3)).long()
    near = (pixels[:, None] - palette[None]).abs().sum(-1).min(1).values
    assert (near < 40).float().mean() > 0.9  # MJPG is lossy


@pytest.mark.parametrize('align_corners', [True, False])
def test_video_demo_paint_follows_the_evaluation_labels(align_corners):
    """paint() at opacity 1: the palette colour of the evaluation's labels
    (logits resized to the frame, then argmax) away from class boundaries;
    blends of two class colours only within a few pixels of them."""
    demo = load_tool('tools/video_demo.py')
    torch.manual_seed(0)
    logits = F.interpolate(torch.randn(1, 3, 4, 8), (16, 32), mode='bilinear',
                           align_corners=True)[0] * 4
    frame = np.zeros((128, 256, 3), np.uint8)
    palette = np.zeros((256, 3), np.uint8)
    palette[:3] = [[255, 0, 0], [0, 255, 0], [0, 0, 255]]
    img = demo.paint(frame, logits, palette, 1.0, (64, 32), align_corners)
    labels = F.interpolate(logits[None], (128, 256), mode='bilinear',
                           align_corners=align_corners)[0].argmax(0).numpy()
    # pixels more than 4 pixels (one label pixel at a quarter of the frame)
    # away from any evaluation boundary
    edges = np.zeros_like(labels, bool)
    edges[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edges[1:] |= labels[1:] != labels[:-1]
    near = cv2.dilate(edges.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    assert 0.3 < near.mean() < 0.8  # the field has boundaries and interiors
    assert (img[~near] == palette[labels[~near]]).all()
    # near the boundaries: every colour is a blend of class colours
    assert (abs(img[near].astype(int).sum(-1) - 255) <= 3).all()


def test_video_demo_errors(video, onnx_artefact, random_ckpt, tmp_path,
                           capsys):
    demo = load_tool('tools/video_demo.py')
    out = ['--output-file', str(tmp_path / 'out.mp4')]
    with pytest.raises(SystemExit, match='no video file'):
        demo.main([str(tmp_path / 'missing.mp4'), CONFIG, onnx_artefact,
                   *out])
    with pytest.raises(SystemExit, match='cannot open camera 99'):
        demo.main(['99', CONFIG, onnx_artefact, *out])
    not_video = tmp_path / 'text.avi'
    not_video.write_text('not a video')
    with pytest.raises(SystemExit, match='cannot read video'):
        demo.main([str(not_video), CONFIG, onnx_artefact, *out])
    with pytest.raises(SystemExit, match='int8'):
        demo.main([video, CONFIG, random_ckpt, '--precision', 'int8', *out])
    with pytest.raises(SystemExit, match='the artefact is fp32'):
        demo.main([video, CONFIG, onnx_artefact, '--precision', 'bf16',
                   *out])
    with pytest.raises(FileNotFoundError, match='no checkpoint file'):
        demo.main([video, CONFIG, str(tmp_path / 'missing.pth'), *out])
    with pytest.raises(RuntimeError, match='FourCC ZZZZ'):
        demo.main([video, CONFIG, onnx_artefact, *out, '--output-fourcc',
                   'ZZZZ'])  # fails in the painting thread
    with pytest.raises(SystemExit):
        demo.main([video, CONFIG, onnx_artefact])  # no output, no --show
    assert 'nothing to do' in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ['text.avi']


def test_benchmark_tool(capsys, cityscapes_mini):
    tool = load_tool('tools/analysis_tools/benchmark.py')
    tool.main([CONFIG, '--shape', '64', '128', '--backends',
               'torch:bf16,onnxruntime:fp32,openvino:int8',
               '--repeat', '2', '--seconds', '0.05', '--images',
               osp.join(cityscapes_mini, 'leftImg8bit', 'val')])
    out = capsys.readouterr().out
    assert 'GFLOPs' in out and 'random weights' in out
    assert 'int8 calibrated on 3 random inputs' in out
    assert tool.cpu_description() in out
    for name in ('plain', 'torch:bf16', 'onnxruntime:fp32', 'openvino:int8'):
        assert f'\n{name} ' in out, out
    assert 'ratio to plain' in out
    assert 'near-ties' in out and out.count('% of pixels') == 3


def test_time_variants_interleaves():
    tool = load_tool('tools/analysis_tools/benchmark.py')
    calls = []
    variants = {n: (lambda x, n=n: calls.append(n)) for n in 'abc'}
    times = tool.time_variants(variants, None, seconds=1e-9, repeat=3)
    assert all(len(t) == 3 for t in times.values())
    # warm-up (3 calls each), then rounds in rotated order
    assert ''.join(calls[9:]) == 'abc' + 'bca' + 'cab'
    table = tool.format_times({'a': [1., 1.], 'b': [0.5, 0.7]})
    assert '0.600 (0.500-0.700)' in table


def test_benchmark_arguments(capsys):
    tool = load_tool('tools/analysis_tools/benchmark.py')
    for argv, message in (
        (['--backends', 'tensorrt:fp32'], 'unknown backend'),
        (['--backends', 'onnxruntime:bf16'], 'runs fp32, int8'),
        (['--shape', '0', '8'], 'must be positive'),
        (['--device', 'cuda', '--backends', 'openvino:fp32'], 'on the CPU'),
        (['--device', 'tpu'], 'cpu or cuda'),
    ):
        with pytest.raises(SystemExit):
            tool.parse_args([CONFIG, *argv])
        assert message in capsys.readouterr().err
    args = tool.parse_args([CONFIG])
    assert ('openvino', 'int8') in args.backends and len(args.backends) == 7
    args = tool.parse_args([CONFIG, '--backends', 'openvino,torch:bf16'])
    assert args.backends == [('openvino', 'fp32'), ('torch', 'bf16')]


@pytest.mark.parametrize('tool', [
    'tools/analysis_tools/benchmark.py', 'tools/deployment/pytorch2onnx.py',
    'tools/deployment/export.py', 'tools/deployment/test.py',
    'tools/video_demo.py'
])
def test_tools_help(tool, capsys):
    with pytest.raises(SystemExit) as e:
        load_tool(tool).parse_args(['--help'])
    assert e.value.code == 0 and 'usage' in capsys.readouterr().out

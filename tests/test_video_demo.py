"""The video demo (tools/video_demo.py) and what it runs on: the painting
(sanet_mmseg.painting) and the three-thread pipeline (sanet_mmseg.video)."""
import json
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from sanet_mmseg.deploy import export_artefact, read_meta
from sanet_mmseg.painting import paint, palette_bgr
from sanet_mmseg.video import VideoFile, open_video, run_video
from test_deploy import CONFIG, load_tool, random_segmentor
from test_deploy_tools import META
from workflow_utils import random_checkpoint


@pytest.fixture(scope='module')
def random_ckpt(tmp_path_factory):
    return random_checkpoint(
        CONFIG, str(tmp_path_factory.mktemp('ckpt') / 'random.pth'))


@pytest.fixture(scope='module')
def onnx_artefact(tmp_path_factory):
    """An ONNX Runtime fp32 artefact for 64x128 inputs."""
    out = str(tmp_path_factory.mktemp('artefact'))
    return export_artefact(random_segmentor('s'), out, 'onnxruntime', 'fp32',
                           (64, 128), META)


@pytest.fixture(scope='module')
def video(cityscapes_mini, tmp_path_factory):
    """A 6-frame MJPG video of 256x128 made of the val frames (real, or
    generated where ../shared is absent)."""
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
    # the artefact, opacity 1, lossless: the evaluation's labels
    out = str(tmp_path / 'lossless.avi')
    demo.main([video, CONFIG, onnx_artefact, '--output-file', out,
               '--opacity', '1', '--output-fourcc', 'FFV1'])
    check_painted_labels(video, out, onnx_artefact)


def check_painted_labels(video, painted, artefact):
    """Every painted frame (opacity 1) has the palette colour of the labels
    that DeployedSegmentor gives its input frame (logits resized to the
    frame, then argmax), except within 10 pixels (the painting's label
    pixel) of their class boundaries and under the FPS text."""
    from mmseg.apis import inference_model
    from sanet_mmseg.deploy import DeployedSegmentor, deploy_pipeline
    from test_data_errors import off_boundaries
    cfg = Config.fromfile(CONFIG)
    model = DeployedSegmentor(
        artefact, data_preprocessor=cfg.model.data_preprocessor)
    model.cfg = Config(dict(test_pipeline=deploy_pipeline(cfg, (64, 128))))
    colours = palette_bgr(META['palette'])
    frames, out = cv2.VideoCapture(video), cv2.VideoCapture(painted)
    for _ in range(6):
        frame, img = frames.read()[1], out.read()[1]
        labels = inference_model(model, frame).pred_sem_seg.data[0].numpy()
        away = off_boundaries(labels, 10)
        away[:24] = False
        assert away.mean() > 0.2, away.mean()
        assert (img[away] == colours[labels[away]]).all(), (
            (img[away] != colours[labels[away]]).any(-1).mean())
    frames.release()
    out.release()


@pytest.mark.parametrize('align_corners', [True, False])
def test_paint_follows_the_evaluation_labels(align_corners):
    """paint() at opacity 1: the palette colour of the evaluation's labels
    (logits resized to the frame, then argmax) away from class boundaries;
    blends of two class colours only within a few pixels of them."""
    torch.manual_seed(0)
    logits = F.interpolate(torch.randn(1, 3, 4, 8), (16, 32), mode='bilinear',
                           align_corners=True)[0] * 4
    frame = np.zeros((128, 256, 3), np.uint8)
    palette = palette_bgr([[0, 0, 255], [0, 255, 0], [255, 0, 0]])
    assert palette[:3].tolist() == [[255, 0, 0], [0, 255, 0], [0, 0, 255]]
    img = paint(frame, logits, palette, 1.0, (64, 32), align_corners)
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


def test_palette_bgr_refuses_other_shapes():
    with pytest.raises(ValueError, match='up to 256 RGB triples'):
        palette_bgr([[0, 0, 0]] * 257)
    with pytest.raises(ValueError, match='RGB triples'):
        palette_bgr([[1, 2]])


def test_run_video_errors_stop_the_pipeline(video, tmp_path):
    """An error in any stage (here inference, then painting) is raised once
    the other threads stopped, and the output is not kept."""
    out = str(tmp_path / 'out.avi')

    def fail(_):
        raise RuntimeError('inference failed')

    with pytest.raises(RuntimeError, match='inference failed'):
        run_video(open_video(video), lambda f: f, fail, lambda *a: a[0],
                  VideoFile(out, 10))

    def fail_painting(*args):
        raise RuntimeError('painting failed')

    with pytest.raises(RuntimeError, match='painting failed'):
        run_video(open_video(video), lambda f: f, lambda x: x,
                  fail_painting, VideoFile(out, 10))
    assert os.listdir(tmp_path) == []
    stats = run_video(open_video(video), lambda f: f, lambda x: x,
                      lambda *a: a[0], VideoFile(out, 10))
    assert len(stats.done) == len(stats.infer) == 6
    assert '6 frames in' in stats.summary()
    assert frame_count(out) == (6, (256, 128))


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
    with pytest.raises(SystemExit, match='no folder'):
        demo.main([video, CONFIG, onnx_artefact, '--output-file',
                   str(tmp_path / 'nowhere' / 'out.mp4')])
    with pytest.raises(RuntimeError, match='FourCC ZZZZ'):
        demo.main([video, CONFIG, onnx_artefact, *out, '--output-fourcc',
                   'ZZZZ'])  # fails in the painting thread
    with pytest.raises(SystemExit):
        demo.main([video, CONFIG, onnx_artefact])  # no output, no --show
    assert 'nothing to do' in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ['text.avi']


@pytest.mark.parametrize(
    'name', ['missing.pth', '/etc/passwd', 'model.onnx', 'model.xml',
             'notes.txt'])
def test_video_demo_refuses_what_is_not_a_checkpoint(
        name, video, onnx_artefact, tmp_path, capsys):
    """Any file that is not a checkpoint is named as such before torch's
    unpickler sees it (which ended in IndexError or weights_only advice)."""
    path = str(tmp_path / name)
    if name == 'model.onnx':
        shutil.copy(read_meta(onnx_artefact)['paths'][0], path)
    elif name == 'model.xml':  # the start of an OpenVINO IR
        (tmp_path / name).write_text(
            '<?xml version="1.0"?>\n<net name="Model0" version="11">\n')
    elif name == 'notes.txt':
        (tmp_path / name).write_text('not a checkpoint\n')
    elif name == '/etc/passwd':
        if not osp.isfile(name):
            pytest.skip('no /etc/passwd here')
        path = name
    demo = load_tool('tools/video_demo.py')
    with pytest.raises(SystemExit) as e:
        demo.main([video, CONFIG, path, '--output-file',
                   str(tmp_path / 'out.mp4')])
    assert e.value.code == 2
    err = capsys.readouterr().err
    expected = 'checkpoint not found' if name == 'missing.pth' else \
        'not a checkpoint'
    assert f'{expected}: {path}' in err
    assert not osp.exists(tmp_path / 'out.mp4')


def test_video_demo_checks_config_against_artefact(video, onnx_artefact,
                                                   tmp_path):
    """As tools/deployment/test.py: a config normalising otherwise than the
    artefact (mean 0, std 1, no BGR->RGB) is refused; so is an artefact
    whose deploy.json lists 3 classes for a 19-class model."""
    demo = load_tool('tools/video_demo.py')
    out = ['--output-file', str(tmp_path / 'out.mp4')]
    cfg = Config.fromfile(CONFIG)
    cfg.model.data_preprocessor.update(
        mean=[0., 0., 0.], std=[1., 1., 1.], bgr_to_rgb=False)
    other = str(tmp_path / 'other_normalisation.py')
    cfg.dump(other)
    with pytest.raises(SystemExit, match='normalises as'):
        demo.main([video, other, onnx_artefact, *out])

    three = tmp_path / 'three_classes'
    shutil.copytree(onnx_artefact, three)
    with open(three / 'deploy.json') as f:
        meta = json.load(f)
    meta.update(classes=meta['classes'][:3], palette=meta['palette'][:3],
                num_classes=3)
    with open(three / 'deploy.json', 'w') as f:
        json.dump(meta, f)
    with pytest.raises((SystemExit, ValueError),
                       match='3 classes|num_classes|19'):
        demo.main([video, CONFIG, str(three), *out])
    # the same with num_classes left at 19: deploy.json contradicts itself
    meta['num_classes'] = 19
    with open(three / 'deploy.json', 'w') as f:
        json.dump(meta, f)
    with pytest.raises(ValueError, match="deploy.json: key 'classes'"):
        demo.main([video, CONFIG, str(three), *out])
    assert not osp.exists(tmp_path / 'out.mp4')

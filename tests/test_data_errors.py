"""Bad data stops with an error that names the file: a label whose size is
not its image's, an undecodable image (in training and in
tools/image_demo.py); and tools/image_demo.py's memory-lean inference."""
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

import sanet_mmseg  # noqa: F401
from mmseg.registry import DATASETS
from sanet_mmseg.inference import segment_image
from sanet_mmseg.painting import blend_labels
from workflow_utils import CONFIGS, REPO, random_checkpoint, randomize_bn
from tool_runner import run_script

DEMO = osp.join(CONFIGS, 'sanet-s_demo.py')  # tests at 512x256


def one_frame(root, image_size=(64, 32), label_size=(64, 32)):
    """A Cityscapes-layout train split of one frame; returns the image and
    label paths."""
    img = osp.join(root, 'leftImg8bit', 'train', 'c', 'c_0_0_leftImg8bit.png')
    label = osp.join(root, 'gtFine', 'train', 'c',
                     'c_0_0_gtFine_labelTrainIds.png')
    for path in (img, label):
        os.makedirs(osp.dirname(path), exist_ok=True)
    Image.fromarray(np.zeros((image_size[1], image_size[0], 3),
                             np.uint8)).save(img)
    Image.fromarray(np.ones((label_size[1], label_size[0]),
                            np.uint8)).save(label)
    return img, label


def train_sample(root):
    """The first sample of sanet-s_cityscapes.py's train set at ``root``."""
    init_default_scope('mmseg')
    cfg = Config.fromfile(osp.join(CONFIGS, 'sanet-s_cityscapes.py'))
    dataset = DATASETS.build(
        dict(cfg.train_dataloader.dataset, data_root=str(root)))
    return dataset[0]


@pytest.mark.parametrize('label_size', [(100, 50), (300, 300)])
def test_label_of_another_size(tmp_path, label_size):
    """A 100x50 label of a 512x256 image used to train silently (rescaled),
    a 300x300 one to fail in GenerateEdge with an IndexError."""
    img, label = one_frame(tmp_path, (512, 256), label_size)
    with pytest.raises(ValueError) as e:
        train_sample(tmp_path)
    message = str(e.value)
    assert label in message and img in message, message
    assert f'{label_size[0]}x{label_size[1]}' in message
    assert '512x256' in message


def spoil(path, kind):
    if kind == 'empty':
        open(path, 'wb').close()
    else:  # a truncated PNG
        with open(path, 'rb') as f:
            data = f.read()
        with open(path, 'wb') as f:
            f.write(data[:60])


@pytest.mark.parametrize('kind', ['empty', 'truncated'])
def test_undecodable_image_in_training(tmp_path, kind):
    img, _ = one_frame(tmp_path)
    spoil(img, kind)
    with pytest.raises(ValueError, match=f'cannot read image {img}'):
        train_sample(tmp_path)


@pytest.mark.parametrize('kind', ['empty', 'truncated'])
def test_undecodable_image_in_image_demo(tmp_path, kind):
    img = str(tmp_path / 'x.png')
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(img)
    spoil(img, kind)
    checkpoint = str(tmp_path / 'c.pth')
    torch.save({}, checkpoint)  # read after the image
    out = run_script('tools/image_demo.py', img, DEMO, checkpoint,
                     '--out-file', str(tmp_path / 'o.png'), cwd=REPO)
    assert out.returncode != 0
    assert f'cannot read image {img}' in out.stderr, out.stderr[-2000:]
    assert 'Traceback' not in out.stderr.split('ValueError')[-1]


@pytest.fixture(scope='module')
def demo_model(tmp_path_factory):
    """The demo config's SANet-S, random weights and random BN statistics
    (with the default ones it labels 88% of the pixels alike)."""
    from mmseg.apis import init_model
    checkpoint = random_checkpoint(
        DEMO, str(tmp_path_factory.mktemp('ckpt') / 'demo.pth'))
    model = init_model(DEMO, checkpoint, device='cpu')
    torch.manual_seed(0)
    return randomize_bn(model)


def off_boundaries(labels, width):
    """Pixels more than ``width`` pixels away from any class boundary."""
    edges = np.zeros(labels.shape, np.uint8)
    edges[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edges[1:] |= labels[1:] != labels[:-1]
    return cv2.dilate(edges, np.ones((2 * width + 1, ) * 2, np.uint8)) == 0


@pytest.mark.parametrize('size_divisor', [None, 96])
def test_lean_labels_equal_mmseg(demo_model, size_divisor, monkeypatch):
    """segment_image gives MMSeg's labels: where it resizes the logits as
    MMSeg does, and where it resizes the labels instead on an image at the
    model's scale (512x256 in the demo config); elsewhere MMSeg's except
    within 2 pixels of class boundaries (but for a few pixels of one-pixel
    islands at the model's scale, near-ties of the random model). With
    ``size_divisor`` the inputs are padded (492x256 to 576x288) and the
    padding's logits must be cut off."""
    from mmseg.apis import inference_model
    if size_divisor:
        monkeypatch.setattr(demo_model.data_preprocessor, 'test_cfg',
                            dict(size_divisor=size_divisor))
    rng = np.random.default_rng(0)
    for size, bound in (((96, 64), None), ((512, 256), 0), ((384, 200), 0)):
        img = rng.integers(0, 255, (size[1], size[0], 3), np.uint8)
        theirs = inference_model(demo_model,
                                 img).pred_sem_seg.data[0].numpy()
        kwargs = {} if bound is None else dict(max_logits_bytes=bound)
        ours = segment_image(demo_model, img, **kwargs)
        assert ours.shape == theirs.shape and ours.dtype == np.uint8
        if size == (384, 200):  # resized: equal off the boundaries
            away = off_boundaries(theirs, 2)
            assert 0.3 < away.mean() < 0.9, away.mean()
            assert (ours != theirs)[away].mean() < 1e-4
        else:
            assert (ours == theirs).all(), size


def test_blend_labels_paints_as_mmseg(demo_model):
    from mmseg.visualization import SegLocalVisualizer
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (70, 50, 3), np.uint8)
    labels = rng.integers(0, 21, (70, 50)).astype(np.uint8)
    labels[0, 0] = 255
    meta = demo_model.dataset_meta
    visualizer = SegLocalVisualizer(alpha=0.5)
    visualizer.dataset_meta = dict(classes=meta['classes'],
                                   palette=meta['palette'])
    visualizer.add_datasample(
        'x', img, SegDataSample(pred_sem_seg=PixelData(
            data=torch.from_numpy(labels)[None])), draw_gt=False,
        with_labels=False)
    expected = visualizer.get_image()
    ours = blend_labels(img, labels, meta['palette'], 0.5, rows=16)
    np.testing.assert_array_equal(ours, expected)


MEASURE = '''
import sys, numpy as np
from mmseg.apis import init_model, inference_model
import sanet_mmseg
from sanet_mmseg.inference import segment_image


def status(key):  # MB
    with open('/proc/self/status') as f:
        return next(int(l.split()[1]) // 1024 for l in f if l.startswith(key))


model = init_model(sys.argv[1], sys.argv[2], device='cpu')
img = np.zeros((6000, 6000, 3), np.uint8)
img[:, 3000:] = 200
segment_image(model, img[:64, :64])  # warm up at a small size
with open('/proc/self/clear_refs', 'w') as f:
    f.write('5')  # restart the peak (VmHWM) from the current RSS
before = status('VmRSS:')
if sys.argv[3] == 'mmseg':
    inference_model(model, img)
else:
    segment_image(model, img)
print(before, status('VmHWM:'))
'''


def test_lean_inference_memory(tmp_path):
    """On a 6000x6000 image the demo model's full-size logits take 7 x 144
    MB: MMSeg's inference_model rises above the memory held before it by
    about that much more than the lean one, which stays within 250 MB of it
    (RSS before and peak RSS during inference, MB, each in a fresh process;
    the peak restarted after loading, so that what loading held and freed
    does not hide it)."""
    checkpoint = random_checkpoint(DEMO, str(tmp_path / 'demo.pth'))
    peaks = {}
    for kind in ('mmseg', 'lean'):
        out = subprocess.run(
            [sys.executable, '-c', MEASURE, DEMO, checkpoint, kind],
            capture_output=True, text=True, cwd=REPO, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        peaks[kind] = [int(v) for v in out.stdout.split()[-2:]]
    rise = {k: peak - before for k, (before, peak) in peaks.items()}
    assert rise['mmseg'] - rise['lean'] > 700, peaks
    assert rise['lean'] < 250, peaks
    print(peaks)

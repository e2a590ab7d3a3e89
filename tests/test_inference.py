"""MMSeg's inference API and tools/image_demo.py with SANet configs and
checkpoints."""
import glob
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch

import sanet_mmseg  # noqa: F401
from mmseg.apis import (MMSegInferencer, inference_model, init_model,
                        show_result_pyplot)
from mmseg.datasets import CityscapesDataset
from workflow_utils import CONFIGS, REPO, random_checkpoint, run
from tool_runner import run_script

CONFIG = osp.join(CONFIGS, 'sanet-s_cityscapes.py')


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """A randomly initialised SANet-S in the converter's checkpoint form."""
    return random_checkpoint(
        CONFIG, str(tmp_path_factory.mktemp('ckpt') / 'sanet-s.pth'))


@pytest.fixture(scope='module')
def model(checkpoint):
    return init_model(CONFIG, checkpoint, device='cpu')


@pytest.fixture(scope='module')
def frame(cityscapes_mini, tmp_path_factory):
    """A real frame, downscaled to 512x256 to keep the test fast."""
    src = sorted(
        glob.glob(osp.join(cityscapes_mini, 'leftImg8bit', 'val', '*',
                           '*.png')))[0]
    path = str(tmp_path_factory.mktemp('frame') / 'frame.png')
    mmcv.imwrite(mmcv.imresize(mmcv.imread(src), (512, 256)), path)
    return path


def test_init_and_inference(checkpoint, frame, tmp_path):
    model = init_model(CONFIG, checkpoint, device='cpu')
    assert model.dataset_meta['classes'] == CityscapesDataset.METAINFO[
        'classes']
    result = inference_model(model, frame)
    assert result.pred_sem_seg.data.shape == (1, 256, 512)
    assert result.seg_logits.data.shape == (19, 256, 512)
    out = str(tmp_path / 'painted.png')
    show_result_pyplot(model, frame, result, show=False, out_file=out)
    painted = mmcv.imread(out)
    assert painted.shape[:2] == (256, 512)


@pytest.mark.parametrize('size', [(333, 517), (100, 61)])
def test_inference_odd_sizes(checkpoint, size):
    model = init_model(CONFIG, checkpoint, device='cpu')
    image = np.random.randint(0, 255, (*size, 3), np.uint8)
    result = inference_model(model, image)
    assert result.pred_sem_seg.data.shape == (1, *size)


def painted_as_expected(image_bgr, pred, opacity=0.5):
    """What MMSeg's visualizer paints (without class names): the image
    blended with the Cityscapes palette colour of each predicted class."""
    palette = np.array(CityscapesDataset.METAINFO['palette'], np.float64)
    rgb = image_bgr[..., ::-1] * (1 - opacity) + palette[pred] * opacity
    return rgb.astype(np.uint8)[..., ::-1]


def test_inferencer(checkpoint, frame, tmp_path):
    inferencer = MMSegInferencer(
        model=CONFIG, weights=checkpoint, device='cpu')
    out = inferencer(
        frame,
        out_dir=str(tmp_path),
        return_datasamples=True,
        opacity=0.5,
        with_labels=False)
    assert out.pred_sem_seg.data.shape == (1, 256, 512)
    painted = glob.glob(str(tmp_path / 'vis' / '*.png'))
    assert len(painted) == 1
    # every pixel is painted in the checkpoint's palette colour of its class
    pred = out.pred_sem_seg.data[0].numpy()
    assert inferencer.visualizer.dataset_meta['classes'][0] == 'road'
    assert len(np.unique(pred)) > 1  # several colours to tell apart
    np.testing.assert_array_equal(
        mmcv.imread(painted[0]), painted_as_expected(mmcv.imread(frame),
                                                     pred))


@pytest.mark.parametrize('kind', ['1x1', 'gray', 'rgba'])
def test_image_demo_paints(checkpoint, model, kind, tmp_path):
    """tools/image_demo.py on a one-pixel image (MMSeg's visualizer fails
    on it), a grayscale and an RGBA one: the labels and colours of the
    image as BGR (gray repeated, alpha dropped)."""
    from PIL import Image
    rng = np.random.default_rng(0)
    img = str(tmp_path / f'{kind}.png')
    if kind == '1x1':
        pixels = np.array([[[30, 120, 200]]], np.uint8)
        converted = pixels[..., ::-1]
    elif kind == 'gray':
        pixels = rng.integers(0, 255, (40, 60), np.uint8)
        converted = np.repeat(pixels[..., None], 3, -1)
    else:
        pixels = rng.integers(0, 255, (40, 60, 4), np.uint8)
        converted = pixels[..., 2::-1]
    Image.fromarray(pixels).save(img)
    out = str(tmp_path / 'painted.png')
    names = [] if kind == '1x1' else ['--no-names']
    log = run('tools/image_demo.py', img, CONFIG, checkpoint, '--out-file',
              out, *names)
    assert f'saved {out}' in log
    painted = mmcv.imread(out)
    assert painted.shape[:2] == mmcv.imread(img).shape[:2]
    if kind == '1x1':  # class names are left out on tiny images
        assert 'without their names' in log
    result = inference_model(model, np.ascontiguousarray(converted))
    pred = result.pred_sem_seg.data[0].numpy()
    np.testing.assert_array_equal(
        painted, painted_as_expected(converted, pred))


def test_image_demo_truncated_image(checkpoint, tmp_path):
    from PIL import Image
    img = tmp_path / 'cut.png'
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(img)
    img.write_bytes(img.read_bytes()[:60])
    out = run_script('tools/image_demo.py', str(img), CONFIG, checkpoint,
                     '--out-file', str(tmp_path / 'painted.png'), cwd=REPO)
    assert out.returncode != 0
    assert f'cannot read image {img}' in out.stderr


def test_checkpoint_of_wrong_variant(checkpoint):
    with pytest.raises(ValueError, match='use the config of its variant'):
        init_model(
            osp.join(CONFIGS, 'sanet-m_cityscapes.py'), checkpoint,
            device='cpu')


def test_deterministic_eval(checkpoint, frame):
    model = init_model(CONFIG, checkpoint, device='cpu')
    a = inference_model(model, frame).seg_logits.data
    b = inference_model(model, frame).seg_logits.data
    assert torch.equal(a, b)


def _logits(kind, channels, h, w, generator):
    """Logits of a kind that tests the labels' exactness: random, integer
    valued (exact ties everywhere), smooth (large regions, as a trained
    model gives), with a duplicated class (ties to the first)."""
    if kind == 'random':
        return torch.randn(channels, h, w, generator=generator) * 5
    if kind == 'integers':
        return torch.randint(-2, 3, (channels, h, w),
                             generator=generator).float()
    if kind == 'smooth':
        coarse = torch.randn(1, channels, max(h // 4, 2), max(w // 4, 2),
                             generator=generator)
        return torch.nn.functional.interpolate(
            coarse, (h, w), mode='bilinear')[0] * 10
    logits = torch.randn(channels, h, w, generator=generator)
    logits[2] = logits[0]
    return logits


@pytest.mark.parametrize('align_corners', [True, False])
@pytest.mark.parametrize('shape', [
    (19, 128, 256, 1024, 2048),  # SANet's logits to a Cityscapes input
    (19, 45, 80, 360, 640),
    (19, 64, 128, 500, 999),  # not a whole factor
    (7, 9, 5, 144, 80),  # factor 16, 7 classes
    (6, 7, 11, 77, 131),
    (8, 50, 60, 40, 100),  # smaller on one side
    (5, 2, 2, 100, 100),  # the fewest pixels
    (4, 3, 4, 60, 80),  # H + W <= 128: PyTorch's other kernel
    (3, 16, 32, 128, 256),  # 3 classes: PyTorch's other kernel
])
def test_argmax_upsampled_equals_interpolate(shape, align_corners):
    """The labels of argmax_upsampled are those of the logits resized by
    F.interpolate (mmseg's resize) and the argmax, to the last pixel, for
    every kind of logits, size and corner alignment."""
    from sanet_mmseg.inference import _kernel_rounding, argmax_upsampled
    assert _kernel_rounding() is not None  # the fast path runs
    channels, h, w, height, width = shape
    generator = torch.Generator().manual_seed(sum(shape))
    kinds = ('random', 'integers', 'smooth', 'duplicate')
    for kind in kinds[::2] if height * width > 10**6 else kinds:  # time
        logits = _logits(kind, channels, h, w, generator)
        expected = torch.nn.functional.interpolate(
            logits[None], (height, width), mode='bilinear',
            align_corners=align_corners)[0].argmax(0).numpy()
        labels = argmax_upsampled(logits, (height, width), align_corners)
        assert labels.dtype == np.uint8
        np.testing.assert_array_equal(labels, expected, err_msg=kind)


def test_argmax_upsampled_resizes_few_pixels(monkeypatch):
    """The fast path resizes no full-size logits; without the kernel's
    rounding found (None) they are resized, with the same labels; logits
    that are not finite take that way too."""
    from sanet_mmseg import inference
    generator = torch.Generator().manual_seed(0)
    logits = _logits('smooth', 19, 128, 256, generator)
    calls = []
    interpolate = torch.nn.functional.interpolate

    def counted(x, size=None, *args, **kwargs):
        calls.append(tuple(x.shape[-2:]) if size is None else tuple(size))
        return interpolate(x, size, *args, **kwargs)

    monkeypatch.setattr(inference.F, 'interpolate', counted)
    labels = inference.argmax_upsampled(logits, (1024, 2048), True)
    assert (1024, 2048) not in calls
    monkeypatch.setattr(inference, '_kernel_rounding', lambda: None)
    full = inference.argmax_upsampled(logits, (1024, 2048), True)
    assert calls[-1] == (1024, 2048)
    np.testing.assert_array_equal(labels, full)
    logits[3, 5, 7] = float('nan')
    monkeypatch.undo()
    monkeypatch.setattr(inference.F, 'interpolate', counted)
    inference.argmax_upsampled(logits, (1024, 2048), True)
    assert calls[-1] == (1024, 2048)


def test_segmenter_full_size_equals_inference_model(model):
    """The predict engine's labels of an image the model takes at its size
    (so the fast path: the logits resized once) equal inference_model's,
    with the model as trained."""
    from sanet_mmseg.deploy import TorchPredictor
    from sanet_mmseg.predict import Segmenter
    rng = np.random.default_rng(0)
    img = mmcv.imresize(rng.integers(0, 256, (16, 32, 3), np.uint8),
                        (1024, 512))
    meta = dict(model.dataset_meta, align_corners=model.align_corners)
    segmenter = Segmenter(model.cfg, TorchPredictor(model, 'fp32'), meta,
                          shape=(512, 1024))
    model.cfg.test_pipeline[1]['scale'] = (1024, 512)  # input = image
    try:
        expected = inference_model(model, img).pred_sem_seg.data[0].numpy()
    finally:
        model.cfg.test_pipeline[1]['scale'] = (2048, 1024)
    labels = segmenter(img)
    assert len(np.unique(labels)) > 1
    np.testing.assert_array_equal(labels, expected)


@pytest.mark.parametrize('opacity', [0.5, 0.3, 0.77, 1.0])
def test_blend_labels_is_mmseg_blend(opacity):
    """blend_labels (a table of class and value) gives MMSeg visualizer's
    float64 blend, truncated, for every value and class, ids beyond the
    palette black, on views (an RGB view of a BGR image) too."""
    from sanet_mmseg.painting import blend_labels
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (300, 77, 3), np.uint8)
    labels = rng.integers(0, 30, (300, 77)).astype(np.uint8)
    palette = rng.integers(0, 256, (25, 3))
    colours = np.zeros((256, 3))
    colours[:25] = palette
    for image in (img, img[..., ::-1]):
        expected = (image * (1 - opacity) +
                    colours[labels] * opacity).astype(np.uint8)
        np.testing.assert_array_equal(
            blend_labels(image, labels, palette, opacity, rows=64), expected)

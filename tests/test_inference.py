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

"""MMSeg's inference API with SANet configs and checkpoints."""
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
from workflow_utils import CONFIGS, random_checkpoint

CONFIG = osp.join(CONFIGS, 'sanet-s_cityscapes.py')


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """A randomly initialised SANet-S in the converter's checkpoint form."""
    return random_checkpoint(
        CONFIG, str(tmp_path_factory.mktemp('ckpt') / 'sanet-s.pth'))


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


def test_inferencer(checkpoint, frame, tmp_path):
    inferencer = MMSegInferencer(
        model=CONFIG, weights=checkpoint, device='cpu')
    out = inferencer(frame, out_dir=str(tmp_path), return_datasamples=True)
    assert out.pred_sem_seg.data.shape == (1, 256, 512)
    painted = glob.glob(str(tmp_path / 'vis' / '*.png'))
    assert len(painted) == 1
    # the painted colours are the checkpoint's palette
    pred = out.pred_sem_seg.data[0].numpy()
    assert inferencer.visualizer.dataset_meta['classes'][0] == 'road'
    assert len(np.unique(pred)) >= 1


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

"""configs/sanet/sanet-s_custom-dataset.py (docs/custom_dataset.md): SANet-S
trained on a generated 3-class dataset, started from Cityscapes weights."""
import os
import re

import mmcv
import numpy as np
import torch
from mmengine.config import Config

import sanet_mmseg  # noqa: F401
from mmseg.apis import inference_model, init_model
from workflow_utils import CONFIGS, random_checkpoint, run, small_config

TEMPLATE = 'sanet-s_custom-dataset.py'


def make_three_class_dataset(root, num_train=4, num_val=2, size=(96, 64)):
    """The template's layout: img_dir/{split}/N.jpg and ann_dir/{split}/N.png
    with 0 background (grey), 1 road (purple band), 2 car (dark blue box)
    and a 255 (ignored) border."""
    rng = np.random.default_rng(0)
    colours = np.array([[128, 128, 128], [128, 64, 128], [142, 0, 0]])
    w, h = size
    for split, num in (('train', num_train), ('val', num_val)):
        os.makedirs(root / 'img_dir' / split)
        os.makedirs(root / 'ann_dir' / split)
        for i in range(num):
            label = np.zeros((h, w), np.uint8)
            label[int(h * rng.uniform(0.5, 0.7)):] = 1
            x, y = rng.integers(0, w // 2), rng.integers(h // 4, h // 2)
            label[y:y + h // 4, x:x + w // 3] = 2
            image = colours[label] + rng.normal(0, 8, (h, w, 3))
            label[:2] = 255
            mmcv.imwrite(np.clip(image, 0, 255).astype(np.uint8),
                         str(root / 'img_dir' / split / f'{i}.jpg'))
            mmcv.imwrite(label, str(root / 'ann_dir' / split / f'{i}.png'))


def test_template_trains_on_three_classes(tmp_path):
    data = tmp_path / 'data'
    make_three_class_dataset(data)
    cityscapes = random_checkpoint(f'{CONFIGS}/sanet-s_cityscapes.py',
                                   str(tmp_path / 'cityscapes.pth'))
    config = small_config(
        str(data), tmp_path / 'work', config=TEMPLATE, load_from=cityscapes)
    out = run('tools/train.py', config)
    # the Cityscapes weights load, but for the 19-class classifiers
    assert re.search(r'size mismatch for decode_head\.conv_seg\.weight', out)
    assert re.search(r'Iter\(train\) \[2/2\].*decode\.loss_sem_bd', out)
    assert re.search(r'Iter\(val\).*mIoU: [0-9.]+', out)
    for name in ('background', 'road', 'car'):
        assert re.search(rf'\|\s+{name}\s+\|', out)  # the val table

    ckpt = str(tmp_path / 'work' / 'iter_2.pth')
    model = init_model(config, ckpt, device='cpu')
    assert model.dataset_meta['classes'] == ('background', 'road', 'car')
    assert model.decode_head.conv_seg.out_channels == 3
    pred = inference_model(model, str(data / 'img_dir' / 'val' / '0.jpg'))
    assert pred.pred_sem_seg.data.shape == (1, 64, 96)
    assert set(torch.unique(pred.pred_sem_seg.data).tolist()) <= {0, 1, 2}


def test_template_settings():
    cfg = Config.fromfile(f'{CONFIGS}/{TEMPLATE}')
    head = cfg.model.decode_head
    assert head.num_classes == len(cfg.classes) == len(cfg.palette) == 3
    assert [loss.get('class_weight') for loss in head.loss_decode] == [
        None, None, None, None
    ]
    assert cfg.train_dataloader.dataset.type == 'CheckedSegDataset'
    assert any(t.type == 'GenerateEdge'
               for t in cfg.train_dataloader.dataset.pipeline)
    assert cfg.train_cfg.max_iters == cfg.iters

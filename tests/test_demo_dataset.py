"""The generated demo dataset under the demo config: only the classes it
draws, mapped from Cityscapes trainIds."""
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

import sanet_mmseg  # noqa: F401
from mmseg.registry import DATASETS
from sanet_mmseg.datasets import config_dataset_meta, make_demo_dataset
from sanet_mmseg.datasets.demo import CLASSES, DEMO_METAINFO
from workflow_utils import CONFIGS

DEMO = osp.join(CONFIGS, 'sanet-s_demo.py')


def test_config_has_the_drawn_classes():
    cfg = Config.fromfile(DEMO)
    assert config_dataset_meta(cfg, 'val') == dict(
        classes=DEMO_METAINFO['classes'],
        palette=DEMO_METAINFO['palette'])
    assert config_dataset_meta(cfg, 'train')['classes'] == \
        DEMO_METAINFO['classes']
    assert cfg.model.decode_head.num_classes == len(CLASSES) == 7
    for loss in cfg.model.decode_head.loss_decode:
        assert 'class_weight' not in loss  # Cityscapes' 19 do not fit


def test_labels_are_demo_indices(tmp_path):
    """The val split read through the config: trainIds become 0-6 in the
    order of DEMO_METAINFO, each drawn class is there."""
    root = str(tmp_path)
    make_demo_dataset(root, num_train=1, num_val=3, size=(128, 64))
    init_default_scope('mmseg')
    cfg = Config.fromfile(DEMO).val_dataloader.dataset
    cfg.data_root = root
    dataset = DATASETS.build(cfg)
    assert dataset.metainfo['classes'] == DEMO_METAINFO['classes']
    seen = set()
    for i in range(len(dataset)):
        label = dataset[i]['data_samples'].gt_sem_seg.data.numpy()
        # (the test pipeline loads the labels after resizing the image)
        train_ids = np.array(
            Image.open(dataset.get_data_info(i)['seg_map_path']))
        for index, train_id in enumerate(CLASSES):
            assert (label[0][train_ids == train_id] == index).all()
        seen |= set(np.unique(label).tolist())
    assert seen <= set(range(7))
    assert {0, 1, 4, 6} <= seen  # road, sidewalk, sky, car in every frame


def test_demo_video(tmp_path):
    """The demo dataset tool's street video: the frames asked, at the
    dataset's size, panning (no two frames alike), and nothing else left
    in the folder."""
    import cv2
    from sanet_mmseg.datasets.demo import make_demo_video
    path = str(tmp_path / 'street.mp4')
    assert make_demo_video(path, num_frames=6, size=(128, 64)) == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ['street.mp4']
    video = cv2.VideoCapture(path)
    frames = []
    ok, frame = video.read()
    while ok:
        frames.append(frame.astype(np.float32))
        ok, frame = video.read()
    assert len(frames) == 6 and frames[0].shape == (64, 128, 3)
    assert np.abs(frames[0] - frames[-1]).mean() > 10
    with pytest.raises(ValueError, match='num_frames'):
        make_demo_video(str(tmp_path / 'none.mp4'), num_frames=0)

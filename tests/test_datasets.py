"""CamVid and GTAV converters and datasets, the folder checks, and the
Cityscapes frames through our dataset type."""
import os
import os.path as osp
import sys

import mmcv
import numpy as np
import pytest
from mmengine.registry import init_default_scope
from PIL import Image

import sanet_mmseg  # noqa: F401
from mmseg.registry import DATASETS
from workflow_utils import REPO

sys.path.insert(0, osp.join(REPO, 'tools', 'dataset_converters'))
import camvid as camvid_converter  # noqa: E402
import gtav as gtav_converter  # noqa: E402

init_default_scope('mmseg')
PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]


def write_camvid(root, frames=(('train', 2), ('val', 1), ('test', 1))):
    """Colour labels: left half Road, right quarter Sky, then Car (a grouped
    colour: SUVPickupTruck), a void colour and an unknown colour."""
    label = np.zeros((8, 12, 3), np.uint8)
    label[:, :6] = (128, 64, 128)  # Road -> road
    label[:, 6:9] = (128, 128, 128)  # Sky -> sky
    label[:4, 9:] = (64, 128, 192)  # SUVPickupTruck -> car
    label[4:6, 9:] = (0, 0, 0)  # Void
    label[6:, 9:] = (1, 2, 3)  # not a CamVid colour
    for split, n in frames:
        os.makedirs(root / split)
        os.makedirs(root / f'{split}_labels')
        for i in range(n):
            mmcv.imwrite(np.full((8, 12, 3), i, np.uint8),
                         str(root / split / f'f{i}.png'))
            mmcv.imwrite(mmcv.rgb2bgr(label),
                         str(root / f'{split}_labels' / f'f{i}_L.png'))
    return label


def test_camvid_converter_and_dataset(tmp_path, capsys):
    write_camvid(tmp_path)
    counts = camvid_converter.convert_camvid(str(tmp_path))
    assert counts == dict(train=2, val=1, test=1)
    assert 'unknown colour (1, 2, 3): 24 pixels set to 255' in \
        capsys.readouterr().out
    index = np.array(Image.open(tmp_path / 'train_labels' /
                                'f0_trainIds.png'))
    classes = DATASETS.get('CamVidDataset').METAINFO['classes']
    expected = np.full((8, 12), 255)
    expected[:, :6] = classes.index('road')
    expected[:, 6:9] = classes.index('sky')
    expected[:4, 9:] = classes.index('car')
    assert np.array_equal(index, expected)

    dataset = DATASETS.build(
        dict(
            type='CamVidDataset',
            data_root=str(tmp_path),
            data_prefix=dict(img_path='train', seg_map_path='train_labels'),
            pipeline=PIPELINE))
    assert len(dataset) == 2
    sample = dataset[0]['data_samples']
    assert np.array_equal(sample.gt_sem_seg.data[0].numpy(), expected)


def test_camvid_converter_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / 'train')):
        camvid_converter.convert_camvid(str(tmp_path))
    write_camvid(tmp_path)
    os.remove(tmp_path / 'val_labels' / 'f0_L.png')
    with pytest.raises(FileNotFoundError, match='f0_L.png'):
        camvid_converter.convert_camvid(str(tmp_path))


def test_gtav_converter_and_dataset(tmp_path):
    os.makedirs(tmp_path / 'images')
    os.makedirs(tmp_path / 'labels')
    ids = np.array([[7, 8, 26, 0], [23, 24, 33, 3]], np.uint8)  # labelIds
    palette_png = Image.fromarray(ids, mode='P')
    palette_png.putpalette(list(np.random.randint(0, 255, 768)))
    for name in ('00001', '00002'):
        mmcv.imwrite(np.zeros((2, 4, 3), np.uint8),
                     str(tmp_path / 'images' / f'{name}.png'))
        palette_png.save(tmp_path / 'labels' / f'{name}.png')
    os.remove(tmp_path / 'labels' / '00002.png')
    with pytest.raises(FileNotFoundError,
                       match='1 images in .*images have no label, e.g. '
                       '.*labels/00002.png'):
        gtav_converter.find_labels(str(tmp_path))
    palette_png.save(tmp_path / 'labels' / '00002.png')
    labels = gtav_converter.find_labels(str(tmp_path))
    for path in labels:
        gtav_converter.convert_label(path)
    train_ids = np.array(
        Image.open(tmp_path / 'labels' / '00001_labelTrainIds.png'))
    assert train_ids.tolist() == [[0, 1, 13, 255], [10, 11, 18, 255]]
    # a label of another size than its image (GTAV has a few): resized to
    # the image's, nearest, and named
    mmcv.imwrite(np.zeros((4, 8, 3), np.uint8),
                 str(tmp_path / 'images' / '00002.png'))
    note = gtav_converter.convert_label(str(tmp_path / 'labels' / '00002.png'))
    assert '00002.png: 4x2 resized to its image\'s 8x4' in note
    resized = np.array(
        Image.open(tmp_path / 'labels' / '00002_labelTrainIds.png'))
    assert resized.tolist() == np.repeat(np.repeat(
        train_ids, 2, 0), 2, 1).tolist()
    mmcv.imwrite(np.zeros((2, 4, 3), np.uint8),
                 str(tmp_path / 'images' / '00002.png'))
    assert gtav_converter.convert_label(
        str(tmp_path / 'labels' / '00002.png')) is None

    dataset = DATASETS.build(
        dict(
            type='GTAVDataset',
            data_root=str(tmp_path),
            data_prefix=dict(img_path='images', seg_map_path='labels'),
            pipeline=PIPELINE))
    assert len(dataset) == 2
    assert dataset.metainfo['classes'][13] == 'car'
    assert dataset[1]['data_samples'].gt_sem_seg.data[0].tolist() == \
        train_ids.tolist()


@pytest.mark.parametrize('dataset_type', ['CheckedCityscapesDataset',
                                          'CamVidDataset', 'GTAVDataset'])
def test_missing_empty_and_unlabelled_folders(tmp_path, dataset_type):
    cfg = dict(
        type=dataset_type,
        data_root=str(tmp_path),
        data_prefix=dict(img_path='img', seg_map_path='ann'),
        pipeline=PIPELINE)
    with pytest.raises(FileNotFoundError,
                       match='image folder not found: .*img'):
        DATASETS.build(cfg)
    os.makedirs(tmp_path / 'img')
    with pytest.raises(FileNotFoundError, match='no images ending in'):
        DATASETS.build(cfg)
    suffix = DATASETS.get(dataset_type)(
        lazy_init=True, **{k: v
                           for k, v in cfg.items() if k != 'type'}).img_suffix
    mmcv.imwrite(np.zeros((2, 2, 3), np.uint8),
                 str(tmp_path / 'img' / f'a{suffix}'))
    with pytest.raises(FileNotFoundError,
                       match='1 of 1 images .* have no label file'):
        DATASETS.build(cfg)


def test_cityscapes_frames(cityscapes_mini):
    for split, n in (('train', 5), ('val', 2)):
        dataset = DATASETS.build(
            dict(
                type='CheckedCityscapesDataset',
                data_root=cityscapes_mini,
                data_prefix=dict(
                    img_path=f'leftImg8bit/{split}',
                    seg_map_path=f'gtFine/{split}'),
                pipeline=PIPELINE))
        assert len(dataset) == n


def test_camvid_config_reads_train_val_and_test(tmp_path):
    from mmengine.config import Config
    from workflow_utils import CONFIGS
    write_camvid(tmp_path)
    camvid_converter.convert_camvid(str(tmp_path))
    cfg = Config.fromfile(osp.join(CONFIGS, 'sanet-m_camvid.py'))
    assert cfg.model.decode_head.num_classes == 11
    train = cfg.train_dataloader.dataset
    for part in train.datasets:
        part.data_root = str(tmp_path)
    test = cfg.test_dataloader.dataset
    test.data_root = str(tmp_path)
    assert len(DATASETS.build(train)) == 3  # train + val
    assert len(DATASETS.build(test)) == 1


def frames_dataset(root, labels, dataset_type='CheckedSegDataset',
                   **kwargs):
    """One black image per label map (``root/img/NAME.png``,
    ``root/ann/NAME.png``), and the dataset of ``dataset_type`` on them."""
    os.makedirs(root / 'img')
    os.makedirs(root / 'ann')
    for name, label in labels.items():
        mmcv.imwrite(np.zeros((*label.shape, 3), np.uint8),
                     str(root / 'img' / f'{name}.png'))
        mmcv.imwrite(label.astype(np.uint8), str(root / 'ann' / f'{name}.png'))
    return DATASETS.build(
        dict(
            type=dataset_type,
            data_root=str(root),
            data_prefix=dict(img_path='img', seg_map_path='ann'),
            img_suffix='.png',
            seg_map_suffix='.png',
            pipeline=PIPELINE,
            **kwargs))


def test_label_values_outside_the_classes_are_named(tmp_path):
    """labelTrainIds holding 50 with 19 classes: an error naming the file
    and the values where the label is loaded, not `Target 50 is out of
    bounds` in the loss."""
    ok, bad = np.zeros((4, 6)), np.zeros((4, 6))
    ok[0, 0], bad[0, :2], bad[1, 0] = 255, (50, 19), 255
    dataset = frames_dataset(tmp_path, dict(a=ok, b=bad),
                             'CheckedCityscapesDataset')
    assert dataset[0]['data_samples'].gt_sem_seg.data.max() == 255
    with pytest.raises(
            ValueError,
            match=r'ann/b\.png holds label values \[19, 50\], but the '
            r'dataset has 19 classes \(0-18\) and ignores 255'):
        dataset[1]


@pytest.mark.parametrize('reduce_zero_label', [False, True])
def test_label_check_follows_reduce_zero_label(tmp_path, reduce_zero_label):
    """1-based labels 1..3 of 3 classes: values 1, 2 and 3 after
    reduce_zero_label (0 becomes 255); 3 is out of range without it."""
    dataset = frames_dataset(
        tmp_path,
        dict(a=np.array([[0, 1, 2, 3]] * 2)),
        metainfo=dict(classes=('a', 'b', 'c')),
        reduce_zero_label=reduce_zero_label)
    if reduce_zero_label:
        label = dataset[0]['data_samples'].gt_sem_seg.data[0]
        assert label.tolist() == [[255, 0, 1, 2]] * 2
    else:
        with pytest.raises(ValueError, match=r'values \[3\].* 3 classes'):
            dataset[0]


def test_checked_dataset_needs_classes(tmp_path):
    with pytest.raises(ValueError, match='has no classes'):
        frames_dataset(tmp_path, dict(a=np.zeros((2, 2))))


def test_config_dataset_meta_of_wrapped_and_custom_datasets():
    """The classes of a config's dataset: through ConcatDataset (train+val)
    and from the metainfo a custom-dataset config gives."""
    from mmengine.config import Config
    from mmseg.datasets import CityscapesDataset
    from sanet_mmseg.datasets import config_dataset_meta
    configs = osp.join(REPO, 'configs', 'sanet')
    trainval = Config.fromfile(
        osp.join(configs, 'sanet-s_cityscapes-trainval.py'))
    assert trainval.train_dataloader.dataset.type == 'ConcatDataset'
    assert config_dataset_meta(trainval, 'train') == dict(
        classes=CityscapesDataset.METAINFO['classes'],
        palette=CityscapesDataset.METAINFO['palette'])
    custom = Config.fromfile(osp.join(configs, 'sanet-s_custom-dataset.py'))
    assert config_dataset_meta(custom)['classes'] == (
        'background', 'road', 'car')
    del custom.test_dataloader.dataset['metainfo']
    with pytest.raises(KeyError, match='CheckedSegDataset.*names no classes'):
        config_dataset_meta(custom)

"""ImageNet pre-training with MMPretrain and ImageNet-initialised
segmentation."""
import os.path as osp
import tempfile

import mmcv
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, load_checkpoint

import sanet_mmseg  # noqa: F401
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
from sanet_mmseg.checkpoint import (MMPRETRAIN_PREFIXES,
                                    convert_authors_state_dict)
from sanet_mmseg.comparison import relative_error
from sanet_mmseg.engine import setup_runtime
from shared_data import needs_file
from test_model_converters import authors_imagenet, sanet2mmseg
from test_models import build_segmentor, official_keys
from workflow_utils import CONFIGS

needs_official_keys = needs_file(official_keys('s'))
# the segmentor's layers that the MMPretrain classifier holds
SHARED = tuple(MMPRETRAIN_PREFIXES)


@pytest.fixture(scope='module')
def authors_imagenet_s(tmp_path_factory):
    """The authors' SANet-S ImageNet weights in their real form (see
    :func:`test_model_converters.authors_imagenet`), saved bare."""
    state = authors_imagenet('s')
    path = str(tmp_path_factory.mktemp('imagenet') / 'sanet_s_imagenet.pth')
    torch.save(state, path)
    return path, state


@needs_official_keys
def test_classifier_reproduces_authors_logits(authors_imagenet_s):
    path, authors = authors_imagenet_s
    ckpt, report = sanet2mmseg.convert(path, mmpretrain=True)
    assert 'MMPretrain classifier' in report
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(osp.join(CONFIGS, 'sanet-s_in1k.py'))
    classifier = MMPRETRAIN_MODELS.build(cfg.model)
    classifier.load_state_dict(ckpt['state_dict'], strict=True)
    classifier.eval()

    # the authors' classifier with plain torch ops, on the decoder output of
    # the (parity-tested) segmentor built from their tensors
    seg = build_segmentor('s', num_classes=1000).eval()
    _, unexpected = seg.load_state_dict(
        convert_authors_state_dict(authors), strict=False)
    assert not unexpected
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        feat = seg.decode_head.fusion(seg.extract_feat(x)).mean((2, 3))
        h = F.linear(feat, authors['classifier.0.weight'])
        h = F.batch_norm(h, authors['classifier.1.running_mean'],
                         authors['classifier.1.running_var'],
                         authors['classifier.1.weight'],
                         authors['classifier.1.bias'])
        expected = F.linear(F.relu(h), authors['classifier.4.weight'],
                            authors['classifier.4.bias'])
        got = classifier(x, mode='tensor')
    assert relative_error(got, expected) < 1e-4


@needs_official_keys
def test_segmentation_init_from_authors_imagenet(authors_imagenet_s):
    """As ``load_from`` loads it: the layers shared with the ImageNet
    classifier and the main seg unit's BNs and 3x3 conv, which the authors'
    ImageNet model also holds."""
    path, authors = authors_imagenet_s
    ckpt, report = sanet2mmseg.convert(path)
    assert 'segmentation initialisation: 314 of 342 tensors' in report
    expected = convert_authors_state_dict(authors)
    check_layers_loaded(ckpt, expected,
                        SHARED + ('decode_head.seg_head.', ))


def check_layers_loaded(ckpt, expected, prefixes):
    """Load ``ckpt`` as ``load_from`` does: it must hold exactly the
    segmentor's tensors under ``prefixes``, equal to ``expected``."""
    model = build_segmentor('s')
    path = osp.join(tempfile.mkdtemp(), 'init.pth')
    torch.save(ckpt, path)
    load_checkpoint(model, path, map_location='cpu')
    state = model.state_dict()
    assert set(ckpt['state_dict']) == {
        k for k in state if k.startswith(prefixes)}
    for key in ckpt['state_dict']:
        assert torch.equal(state[key], expected[key]), key


def write_image_folder(root, classes=4, per_class=2):
    rng = np.random.default_rng(0)
    for c in range(classes):
        for i in range(per_class):
            img = np.full((48, 64, 3), 60 * c, np.uint8)
            img += rng.integers(0, 30, img.shape, dtype=np.uint8)
            mmcv.imwrite(img, str(root / f'class{c}' / f'{i}.png'))


def test_in1k_config_trains_and_initialises_segmentation(tmp_path):
    write_image_folder(tmp_path / 'train')
    cfg = Config.fromfile(osp.join(CONFIGS, 'sanet-s_in1k.py'))
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='RandomResizedCrop', scale=64),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='PackInputs'),
    ]
    cfg.merge_from_dict(
        dict(
            work_dir=str(tmp_path / 'work'),
            model=dict(head=dict(num_classes=4)),
            data_preprocessor=dict(num_classes=4),
            train_dataloader=dict(
                batch_size=4,
                num_workers=0,
                dataset=dict(
                    _delete_=True,
                    type='CustomDataset',
                    data_root=str(tmp_path / 'train'),
                    pipeline=pipeline)),
            train_cfg=dict(by_epoch=True, max_epochs=1),
            default_hooks=dict(logger=dict(interval=1))))
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    setup_runtime(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert np.isfinite(loss)

    trained = str(tmp_path / 'work' / 'epoch_1.pth')
    ckpt, report = sanet2mmseg.convert(trained)
    assert 'segmentation initialisation: 303 of 342' in report
    classifier = runner.model.state_dict()
    expected = {}
    for key, value in classifier.items():
        for prefix, seg in (('backbone.backbone.', 'backbone.'),
                            ('backbone.neck.', 'neck.'),
                            ('backbone.fusion.', 'decode_head.fusion.')):
            if key.startswith(prefix):
                expected[seg + key[len(prefix):]] = value
    check_layers_loaded(ckpt, expected, SHARED)

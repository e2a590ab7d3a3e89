"""ImageNet pre-training with MMPretrain and ImageNet-initialised
segmentation."""
import os.path as osp

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
from sanet_mmseg.checkpoint import (SHARED_WITH_IMAGENET,
                                    convert_authors_checkpoint,
                                    convert_authors_state_dict,
                                    save_checkpoint)
from sanet_mmseg.engine import setup_runtime
from test_models import FIXTURE, build_segmentor
from workflow_utils import CONFIGS

needs_reference = pytest.mark.skipif(
    not osp.isfile(FIXTURE), reason=f'no parity fixture at {FIXTURE}')


@pytest.fixture(scope='module')
def authors_imagenet(tmp_path_factory):
    """The authors' SANet-S in the form of their ImageNet weights (no
    prefix, with the classifier), random weights and BN statistics."""
    fixture = torch.load(FIXTURE, weights_only=True)
    state = {k[len('model.'):]: v for k, v in fixture['state_dict'].items()}
    torch.manual_seed(0)
    for key in ('classifier.0.weight', 'classifier.4.weight',
                'classifier.4.bias', 'classifier.1.weight',
                'classifier.1.bias'):
        state[key] = torch.randn_like(state[key]) * 0.1
    state['classifier.1.running_mean'] = torch.randn(128) * 0.1
    state['classifier.1.running_var'] = torch.rand(128) + 0.5
    path = str(tmp_path_factory.mktemp('imagenet') / 'sanet_s_imagenet.pth')
    torch.save(state, path)
    return path, state


@needs_reference
def test_classifier_reproduces_authors_logits(authors_imagenet, tmp_path):
    path, authors = authors_imagenet
    ckpt, report = convert_authors_checkpoint(
        path, config_dir=CONFIGS, mmpretrain=True)
    assert 'MMPretrain classifier' in report
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(osp.join(CONFIGS, 'sanet-s_in1k.py'))
    classifier = MMPRETRAIN_MODELS.build(cfg.model)
    classifier.load_state_dict(ckpt['state_dict'], strict=True)
    classifier.eval()

    # the authors' classifier with plain torch ops, on the decoder output of
    # the (parity-tested) segmentor built from their tensors
    seg = build_segmentor('s').eval()
    seg.load_state_dict(convert_authors_state_dict(authors))
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
    assert ((got - expected).abs().max() / expected.abs().max()) < 1e-4


@needs_reference
def test_segmentation_init_from_authors_imagenet(authors_imagenet):
    path, authors = authors_imagenet
    ckpt, report = convert_authors_checkpoint(path, config_dir=CONFIGS)
    assert 'segmentation initialisation: 303 of 342 tensors' in report
    expected = convert_authors_state_dict(authors)
    check_shared_layers_loaded(ckpt, expected)


def check_shared_layers_loaded(ckpt, expected, tmp_dir=None):
    """Load ``ckpt`` as ``load_from`` does and compare every shared tensor
    with ``expected`` (segmentor names)."""
    model = build_segmentor('s')
    load_checkpoint(model, _saved(ckpt), map_location='cpu')
    state = model.state_dict()
    shared = [k for k in state if k.startswith(SHARED_WITH_IMAGENET)]
    assert len(shared) == 303
    for key in shared:
        assert torch.equal(state[key], expected[key]), key


def _saved(ckpt):
    import tempfile
    path = osp.join(tempfile.mkdtemp(), 'init.pth')
    save_checkpoint(ckpt, path)
    return path


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
    ckpt, report = convert_authors_checkpoint(trained, config_dir=CONFIGS)
    assert 'segmentation initialisation: 303 of 342' in report
    classifier = runner.model.state_dict()
    expected = {}
    for key, value in classifier.items():
        for prefix, seg in (('backbone.backbone.', 'backbone.'),
                            ('backbone.neck.', 'neck.'),
                            ('backbone.fusion.', 'decode_head.fusion.')):
            if key.startswith(prefix):
                expected[seg + key[len(prefix):]] = value
    check_shared_layers_loaded(ckpt, expected)

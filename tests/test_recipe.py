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
import warnings
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


TRAINING = osp.join(REFERENCE, 'sanet-s_official_training.pth')


def train_five_steps(fixture, start):
    """The config's model, optimizer wrapper and scheduler (BN for SyncBN
    on a machine without CUDA) on the fixture's batches, on two threads as
    the fixture was made; returns the LR and the total loss of each step,
    the trained state dict and the optimizer."""
    import torch
    from mmengine.optim import build_optim_wrapper

    from mmseg.registry import MODELS, PARAM_SCHEDULERS
    from sanet_mmseg.checkpoint import convert_authors_state_dict
    from sanet_mmseg.engine.runtime import setup_runtime
    from test_models import data_samples

    init_default_scope('mmseg')
    cfg = setup_runtime(
        Config.fromfile(osp.join(CONFIGS, 'sanet-s_cityscapes.py')))
    model = MODELS.build(cfg.model)
    model.load_state_dict(convert_authors_state_dict(start), strict=True)
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    # MMEngine's Runner ends a scheduler without `end` at max_iters
    schedulers = [
        PARAM_SCHEDULERS.build(
            dict(s, end=cfg.train_cfg.max_iters),
            default_args=dict(optimizer=optim_wrapper))
        for s in cfg.param_scheduler
    ]
    lrs, losses = [], []
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for step in range(len(fixture['losses'])):
            batch = fixture['batches'][step % len(fixture['batches'])]
            lrs.append(optim_wrapper.get_lr()['lr'][0])
            loss, _ = model.parse_losses(
                model.loss(batch['inputs'],
                           data_samples(batch['labels'], batch['boundary'])))
            optim_wrapper.update_params(loss)
            for scheduler in schedulers:
                scheduler.step()
            losses.append(loss.item())
    finally:
        torch.set_num_threads(threads)
    return lrs, losses, model.state_dict(), optim_wrapper.optimizer


def without_prefix(state_dict):
    return {k[len('model.'):]: v for k, v in state_dict.items()}


# where the backward reduces in another order than the fixture's (an AVX2
# CPU; 1, 3 or 4 backward threads on the fixture's AVX-512 one), steps 3-5
# measured at most 1.5e-3, 5.3e-2 and 0.124 off: bounds with a margin
STEP3_SPREAD, LATER_SPREAD = 5e-3, 0.25


@needs_file(TRAINING)
def test_five_training_steps_match_authors():
    """The LR of every step (PolyLR), the loss of the first step (model and
    losses) and of the second (the first SGD update: momentum, Nesterov,
    LR), weight decay on every parameter, and the trained tensors' names.

    Training from random weights at LR 0.01 is chaotic: the last bits of
    the first gradients, which depend on the machine's order of reductions
    (one thread against two moves the fifth loss by 5%), decide the later
    steps. The authors' own code, run on an AVX2 EPYC, ends bit-identical
    to this run and as far from the fixture (docs/implementation.md). So
    the later losses and the trained weights are asserted only where the
    second loss shows this machine's backward reproduces the fixture's;
    elsewhere steps 3-5 are bounded by the spread other orders of reduction
    give (step 3 stays within 1.5e-3: a wrong update 2 shows there), with
    a warning that says so.
    The forward runs on two threads, as the fixture's first loss shows it
    was made: other thread counts are 8e-5 off already (OHEM's selection).
    """
    import torch

    from sanet_mmseg.checkpoint import convert_authors_state_dict
    from shared_data import FIXTURE

    fixture = torch.load(TRAINING, weights_only=True)
    start = without_prefix(
        torch.load(FIXTURE, weights_only=True)['state_dict'])
    lrs, losses, state, optimizer = train_five_steps(fixture, start)
    for ours, theirs in zip(lrs, fixture['lr']):
        assert abs(ours - theirs) / theirs < 1e-9
    errors = [abs(a - b) / b for a, b in zip(losses, fixture['losses'])]
    assert errors[0] < 1e-6 and errors[1] < 1e-5, errors
    trained = convert_authors_state_dict(without_prefix(fixture['state_dict']))
    assert set(trained) == set(state)
    if errors[1] < 2e-7:  # the fixture's arithmetic: all steps must match
        print('five steps: this machine reproduces the fixture\'s '
              'arithmetic; every loss and trained tensor asserted')
        assert max(errors) < 1e-5, errors
        far = [
            k for k, v in trained.items() if v.is_floating_point() and
            (state[k] - v).abs().max() > 1e-4 * v.abs().max() + 1e-6
        ]
        assert not far, far
    else:  # another order of reductions: within the spread it gives
        warnings.warn(f'five steps: second loss {errors[1]:.2g} off, so this '
                      'machine reduces in another order than the fixture\'s: '
                      'steps 3-5 bounded by the measured spread, not matched')
        assert errors[2] < STEP3_SPREAD and max(errors[3:]) < LATER_SPREAD, \
            errors
    params = [p for g in optimizer.param_groups for p in g['params']]
    assert len(params) == len(trained) - sum('running' in k or 'num_batches'
                                             in k for k in trained)
    assert all(g['weight_decay'] == 5e-4 and g['nesterov']
               for g in optimizer.param_groups)


def test_config_recipe_values():
    """What no fixture covers: the batch (6 per GPU, 2 GPUs: the authors'
    12), the run length (120k iterations, their 484 epochs of 2975 frames)
    and BN momentum 0.1 (as theirs)."""
    import torch

    from mmseg.registry import MODELS
    from sanet_mmseg.engine.runtime import setup_runtime
    init_default_scope('mmseg')
    cfg = setup_runtime(
        Config.fromfile(osp.join(CONFIGS, 'sanet-s_cityscapes.py')))
    assert cfg.train_dataloader.batch_size == 6
    assert cfg.train_cfg.max_iters == 120000
    model = MODELS.build(cfg.model)
    norms = [m for m in model.modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and all(m.momentum == 0.1 and m.eps == 1e-5 for m in norms)


def test_train_step_with_authors_samples(generated_cityscapes_mini):
    """Two samples of the Cityscapes train pipeline (crop cut to 256 for the
    CPU) reach SADHead's losses through the data preprocessor and one SGD
    step: the boundary map as gt_edge_map (0/1, padded with 0)."""
    import torch
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import build_optim_wrapper

    from mmseg.registry import MODELS
    from sanet_mmseg.engine.runtime import setup_runtime
    init_default_scope('mmseg')
    cfg = setup_runtime(
        Config.fromfile(osp.join(CONFIGS, 'sanet-s_cityscapes.py')))
    pipeline = cfg.train_dataloader.dataset.pipeline
    for t in pipeline:
        if t['type'] == 'RandomCrop':
            t['crop_size'] = (256, 256)
        if t['type'] == 'PadSegFields':
            t['size'] = (256, 256)
    cfg.model.data_preprocessor.size = (256, 256)
    dataset = DATASETS.build(
        dict(cfg.train_dataloader.dataset,
             data_root=generated_cityscapes_mini))
    samples = [dataset[0], dataset[1]]
    for s in samples:
        edge = s['data_samples'].gt_edge_map.data
        assert edge.shape == (1, 256, 256) and set(edge.unique().tolist()) \
            <= {0, 1}
    model = MODELS.build(cfg.model)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    before = model.backbone.stem[0].conv.weight.detach().clone()
    log = model.train_step(pseudo_collate(samples), optim_wrapper)
    assert {'decode.loss_aux', 'decode.loss_sem', 'decode.loss_bd',
            'decode.loss_sem_bd'} <= set(log)
    assert all(torch.isfinite(v) for v in log.values())
    assert not torch.equal(before, model.backbone.stem[0].conv.weight)

"""SANet backbone, APPPM neck, SAD head and losses against the authors' model.

The parity fixture (the authors' outputs and losses for SANet-S) and their
parameter tables live in ``../shared/reference`` (``SANET_REFERENCE_DIR``).
"""
import copy
import importlib.util
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from mmengine.structures import PixelData

import sanet_mmseg  # noqa: F401
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from sanet_mmseg.checkpoint import convert_authors_state_dict, infer_arch
from sanet_mmseg.comparison import relative_error as rel_err
from shared_data import FIXTURE, REFERENCE, REPO, needs_file, needs_reference

CONFIGS = osp.join(REPO, 'configs', 'sanet')


def build_segmentor(arch='s', num_classes=19):
    init_default_scope('mmseg')
    cfg = Config.fromfile(osp.join(CONFIGS, f'sanet-{arch}_cityscapes.py'))
    if num_classes != 19:  # Cityscapes' class weights do not fit
        cfg.model.decode_head.num_classes = num_classes
        for loss in cfg.model.decode_head.loss_decode:
            loss.pop('class_weight', None)
    return MODELS.build(cfg.model)


def data_samples(labels, edges=None):
    samples = []
    for i, label in enumerate(labels):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=label[None].long())
        if edges is not None:
            s.gt_edge_map = PixelData(data=edges[i][None])
        samples.append(s)
    return samples


@pytest.fixture(scope='module')
def fixture():
    return torch.load(FIXTURE, weights_only=True)


@pytest.fixture(scope='module')
def reference_model(fixture):
    model = build_segmentor('s')
    state = convert_authors_state_dict(
        {k[len('model.'):]: v
         for k, v in fixture['state_dict'].items()})
    model.load_state_dict(state, strict=True)
    return model


@needs_reference
def test_eval_outputs_match_reference(fixture, reference_model):
    model = reference_model.eval()
    with torch.no_grad():
        feats = model.extract_feat(fixture['eval']['input'])
        aux, main, boundary = model.decode_head.forward_all(feats)
    ref = fixture['eval']['outputs']
    assert rel_err(aux, ref['aux']) < 1e-4
    assert rel_err(main, ref['main']) < 1e-4
    assert rel_err(boundary, ref['boundary']) < 1e-4


@needs_reference
def test_training_losses_match_reference(fixture, reference_model):
    model = reference_model.train()
    train = fixture['train']
    losses = model.loss(train['inputs'],
                        data_samples(train['labels'], train['boundary']))
    ref = train['losses']
    semantic = losses['decode.loss_aux'] + losses['decode.loss_sem']
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert abs(total.item() - ref['total']) / ref['total'] < 1e-4
    for ours, key in ((semantic, 'semantic(0.4*aux_ce+main_ohem)'),
                      (losses['decode.loss_bd'], 'boundary(20*weighted_bce)'),
                      (losses['decode.loss_sem_bd'], 'boundary_guided_ohem')):
        assert abs(ours.item() - ref[key]) / ref[key] < 1e-4, key
    total.backward()
    assert model.backbone.stem[0].conv.weight.grad is not None


def reference_of(arch):
    """The parity fixture of SANet-``arch`` (M and L: outputs only, the
    weights rebuilt by ``random_state.py`` from its seed)."""
    return osp.join(REFERENCE, f'sanet-{arch}_reference.pth')


def random_state(arch, seed):
    """The authors'-form random weights of the M/L fixtures."""
    spec = importlib.util.spec_from_file_location(
        'random_state', osp.join(REFERENCE, 'random_state.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.random_state(arch, seed)


@pytest.mark.parametrize(
    'arch', [pytest.param(a, marks=needs_file(reference_of(a)))
             for a in ('m', 'l')])
def test_eval_outputs_match_reference_m_l(arch):
    """SANet-M and L, whose stage depths and spatial-path dilations only
    their outputs prove (L's dilations give the same shapes in any order):
    the three heads of the authors' model with seeded random weights."""
    fixture = torch.load(reference_of(arch), weights_only=True)
    state = random_state(arch, fixture['seed'])
    model = build_segmentor(arch).eval()
    model.load_state_dict(convert_authors_state_dict(
        {k[len('model.'):]: v for k, v in state.items()}), strict=True)
    with torch.no_grad():
        feats = model.extract_feat(fixture['eval']['input'])
        outputs = model.decode_head.forward_all(feats)
    for name, ours in zip(('aux', 'main', 'boundary'), outputs):
        theirs = fixture['eval']['outputs'][name]
        assert rel_err(ours, theirs) < 1e-4, name


def test_eval_forward_runs_main_head_only():
    model = build_segmentor('s').eval()
    called = []
    for name in ('aux_head', 'boundary_head', 'seg_head'):
        getattr(model.decode_head, name).register_forward_hook(
            lambda *a, name=name: called.append(name))
    with torch.no_grad():
        out = model._forward(torch.randn(1, 3, 128, 256))
    assert isinstance(out, torch.Tensor)
    assert out.shape == (1, 19, 16, 32)
    assert called == ['seg_head']


@pytest.mark.parametrize('size', [(250, 509), (97, 131), (64, 64)])
def test_any_input_size(size):
    model = build_segmentor('s').eval()
    with torch.no_grad():
        logits = model._forward(torch.randn(1, 3, *size))
        seg = model.predict(torch.randn(1, 3, *size))
    assert logits.shape[2:] == tuple((s + 7) // 8 for s in size)
    assert seg[0].pred_sem_seg.data.shape == (1, *size)


def test_training_any_input_size():
    model = build_segmentor('s').train()
    labels = torch.randint(0, 19, (2, 100, 150))
    losses = model.loss(
        torch.randn(2, 3, 100, 150),
        data_samples(labels, torch.randint(0, 2, (2, 100, 150))))
    assert all(torch.isfinite(v) for v in losses.values())


def test_training_with_one_image():
    """Batch size 1 trains: the APPPM units whose BN sees one value per
    channel (global pooling; at 256x256 also the vertical half of the
    17-wide branch) normalise with their running statistics."""
    model = build_segmentor('s').train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    pooled, vertical = model.neck.scales[4][1], model.neck.scales[3][3]
    stats = pooled.norm.running_mean.clone(), vertical.norm.running_var.clone()
    labels = torch.randint(0, 19, (1, 256, 256))
    edges = torch.randint(0, 2, (1, 256, 256))
    losses = model.loss(torch.randn(1, 3, 256, 256),
                        data_samples(labels, edges))
    total = sum(v for k, v in losses.items() if 'loss' in k)
    optimizer.zero_grad()
    total.backward()
    weight = pooled.conv.weight.clone()
    optimizer.step()
    assert torch.isfinite(total)
    assert pooled.norm.weight.grad.abs().sum() > 0
    assert not torch.equal(pooled.conv.weight, weight)
    assert torch.equal(pooled.norm.running_mean, stats[0])
    assert torch.equal(vertical.norm.running_var, stats[1])
    assert pooled.norm.training and vertical.norm.training
    assert model.neck.scales[0].norm.num_batches_tracked.item() == 1


@pytest.mark.parametrize('norm', ['BN', 'SyncBN'])
def test_apppm_unit_normalises_one_value_as_in_eval(norm):
    init_default_scope('mmseg')
    neck = MODELS.build(dict(type='APPPM', norm_cfg=dict(type=norm)))
    unit = neck.scales[4][1].train()
    unit.norm.running_mean.normal_()
    unit.norm.running_var.uniform_(0.5, 2)
    one = torch.randn(1, 512, 1, 1)
    out = unit(one)
    assert torch.equal(out, unit.eval()(one))
    # two values per channel: batch statistics, as the reference
    two = torch.randn(2, 512, 1, 1)
    unit.train()
    mean = unit.norm.running_mean.clone()
    expected = unit.conv(unit.activate(torch.nn.functional.batch_norm(
        two, None, None, unit.norm.weight, unit.norm.bias, training=True)))
    assert torch.allclose(unit(two), expected, atol=1e-6)
    assert not torch.equal(unit.norm.running_mean, mean)


def test_aux_loss_averages_over_all_pixels():
    """The reference's auxiliary CE: class-weighted, ignored pixels count as
    zero, divided by the number of all pixels (not the sum of weights)."""
    model = build_segmentor('s')
    head = model.decode_head
    cfg = Config.fromfile(osp.join(CONFIGS, 'sanet-s_cityscapes.py'))
    weight = torch.tensor(cfg.class_weight)
    labels = torch.randint(0, 19, (2, 64, 64))
    labels[:, :20] = 255
    logits = (torch.randn(2, 19, 4, 4), torch.randn(2, 19, 8, 8),
              torch.randn(2, 1, 8, 8))
    edges = torch.zeros(2, 64, 64, dtype=torch.uint8)
    losses = head.loss_by_feat(logits, data_samples(labels, edges))
    aux = torch.nn.functional.interpolate(
        logits[0], size=(64, 64), mode='bilinear', align_corners=True)
    expected = 0.4 * torch.nn.functional.cross_entropy(
        aux, labels, weight=weight, ignore_index=255, reduction='none').mean()
    assert torch.allclose(losses['loss_aux'], expected, rtol=1e-5)


def test_boundary_guided_loss_is_zero_without_confident_pixels():
    model = build_segmentor('s')
    labels = torch.randint(0, 19, (1, 64, 64))
    main = torch.randn(1, 19, 8, 8, requires_grad=True)
    logits = (torch.randn(1, 19, 4, 4), main, torch.full((1, 1, 8, 8), -5.))
    losses = model.decode_head.loss_by_feat(
        logits, data_samples(labels, torch.randint(0, 2, (1, 64, 64))))
    assert losses['loss_sem_bd'].item() == 0
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert main.grad is not None


def test_missing_edge_map_names_generate_edge():
    model = build_segmentor('s').train()
    with pytest.raises(KeyError, match='GenerateEdge'):
        model.loss(
            torch.randn(2, 3, 64, 64),
            data_samples(torch.randint(0, 19, (2, 64, 64))))


def test_head_needs_four_losses():
    init_default_scope('mmseg')
    with pytest.raises(ValueError, match='4 losses'):
        MODELS.build(
            dict(
                type='SADHead',
                num_classes=19,
                loss_decode=dict(type='CrossEntropyLoss')))


def test_class_weights_must_fit_the_classes():
    """A 19-class weight list left in a 3-class config: an error naming
    the loss and both counts, not PyTorch's "weight tensor should be
    defined either for all or no classes" in the first iteration."""
    init_default_scope('mmseg')
    cfg = Config.fromfile(osp.join(CONFIGS, 'sanet-s_cityscapes.py'))
    head = copy.deepcopy(cfg.model.decode_head)
    head.num_classes = 3
    with pytest.raises(ValueError,
                       match='loss_aux: class_weight has 19 entries, but '
                       'the head has 3 classes'):
        MODELS.build(head)
    for loss in head.loss_decode:
        loss.pop('class_weight', None)
    assert MODELS.build(head).num_classes == 3


def test_unknown_arch():
    with pytest.raises(ValueError, match="one of \\['l', 'm', 's'\\]"):
        MODELS.build(dict(type='SANet', arch='xl'))


def official_keys(arch):
    """The authors' table of SANet-``arch``'s tensors (19 classes)."""
    return osp.join(REFERENCE, f'sanet-{arch}_official_keys.tsv')


def with_official_keys(*archs):
    """``archs`` as parameters, each needing its table."""
    return [pytest.param(a, marks=needs_file(official_keys(a))) for a in archs]


def read_tsv(arch):
    """The authors' SANet-``arch`` state dict with their names, shapes and
    dtypes (19 classes, with the auxiliary heads), and random values
    (weights scaled by their fan-in, positive variances)."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    with open(official_keys(arch)) as f:
        next(f)
        for line in f:
            key, shape, dtype = line.rstrip('\n').split('\t')
            dims = [int(d) for d in re.findall(r'\d+', shape)]
            if dtype == 'int64':
                state[key] = torch.randint(1, 1000, dims, generator=gen)
            elif key.endswith('running_var'):
                state[key] = torch.rand(dims, generator=gen) + 0.5
            else:
                fan_in = max(1, torch.Size(dims)[1:].numel())
                state[key] = torch.randn(dims, generator=gen) / fan_in**0.5
    return state


@pytest.mark.parametrize('arch', with_official_keys('s', 'm', 'l'))
def test_parameter_shapes_match_authors(arch):
    state = convert_authors_state_dict(read_tsv(arch))
    assert infer_arch(state) == (arch, 19)
    build_segmentor(arch).load_state_dict(state, strict=True)


def test_wrong_variant_checkpoint_is_refused(tmp_path):
    path = str(tmp_path / 'm.pth')
    torch.save({'state_dict': build_segmentor('m').state_dict()}, path)
    with pytest.raises(ValueError, match='use the config of its variant'):
        load_checkpoint(build_segmentor('s'), path)

"""tools/model_converters/sanet2mmseg.py on the authors' checkpoint forms
and on wrong input."""
import importlib.util
import os.path as osp
import re

import pytest
import torch
from mmseg.apis import init_model

from sanet_mmseg.checkpoint import AUTHORS_UNUSED, convert_authors_state_dict
from shared_data import FIXTURE, REPO, needs_file, needs_reference
from test_models import (CONFIGS, build_segmentor, official_keys, read_tsv,
                         rel_err, with_official_keys)
from tool_runner import run_script

TOOL = osp.join(REPO, 'tools', 'model_converters', 'sanet2mmseg.py')
_spec = importlib.util.spec_from_file_location('sanet2mmseg', TOOL)
sanet2mmseg = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sanet2mmseg)
convert = sanet2mmseg.convert


def authors_imagenet(arch):
    """The authors' ImageNet weights of SANet-``arch`` in their real form.

    Their ``get_imagenet_model()`` (``models/sanet_{S,M,L}.py``) is
    ``DualResNet(..., num_classes=1000, augment=False)``: ``final_layer``
    classifies 1000 classes, the auxiliary and boundary heads
    (``seghead_extra``, ``seghead_d``, ``seghead_d2``) do not exist; ``fc``
    (SANet-S only) and ``classifier`` (64 -> 128 -> 1000) are as in their
    segmentation model. Built from the 19-class table, random values.
    """
    state = {
        k: v
        for k, v in read_tsv(arch).items() if not k.startswith('seghead_')
    }
    gen = torch.Generator().manual_seed(1)
    state['final_layer.conv2.weight'] = torch.randn(
        1000, 64, 1, 1, generator=gen) / 8
    state['final_layer.conv2.bias'] = torch.randn(1000, generator=gen)
    return state


def authors_loader_keeps(imagenet, arch):
    """What the authors' ``DualResNet_imagenet(pretrained=True)`` keeps of
    ImageNet weights: every tensor whose name and shape fit their
    segmentation model."""
    seg = read_tsv(arch)
    return {
        k
        for k, v in imagenet.items() if k in seg and v.shape == seg[k].shape
    }


@pytest.fixture(scope='module')
def authors():
    """The fixture's SANet-S weights without the 'model.' prefix."""
    fixture = torch.load(FIXTURE, weights_only=True)
    return {k[len('model.'):]: v for k, v in fixture['state_dict'].items()}


@needs_reference
@pytest.mark.parametrize('form', ['released', 'training'])
def test_segmentation_forms(tmp_path, authors, form):
    src = tmp_path / 'src.pt'
    if form == 'released':
        torch.save({'model.' + k: v for k, v in authors.items()}, src)
    else:
        torch.save(dict(epoch=10, best_mIoU=0.5, state_dict=authors), src)
    ckpt, report = convert(str(src))
    assert f'({form} checkpoint): all 342 tensors converted' in report
    assert 'dropped unused spp.process* (24 tensors)' in report
    dst = str(tmp_path / 'mmseg.pth')
    torch.save(ckpt, dst)

    model = init_model(
        osp.join(CONFIGS, 'sanet-s_cityscapes.py'), dst, device='cpu')
    assert model.dataset_meta['classes'][0] == 'road'
    assert len(model.dataset_meta['palette']) == 19
    fixture = torch.load(FIXTURE, weights_only=True)
    with torch.no_grad():
        main = model._forward(fixture['eval']['input'])
    assert rel_err(main, fixture['eval']['outputs']['main']) < 1e-4


@pytest.mark.parametrize(
    'arch, wrapped',
    [pytest.param(*p, marks=needs_file(official_keys(p[0]))) for p in
     [('s', False), ('s', True), ('m', True), ('l', True)]])
def test_authors_imagenet_weights_initialise_segmentor(
        tmp_path, capsys, arch, wrapped):
    """The command of issue #13 on the authors' real ImageNet form (bare or
    under ``state_dict``; their SANet-M/L loaders read ``state_dict``): the
    default config is the variant's Cityscapes one, and the initialisation
    holds what their own loader keeps, less what the segmentor does not
    have (``fc``, ``classifier``, ``spp.process*``)."""
    imagenet = authors_imagenet(arch)
    src, dst = tmp_path / 'imagenet.pth', tmp_path / 'init.pth'
    torch.save(dict(state_dict=imagenet) if wrapped else imagenet, src)
    sanet2mmseg.main([str(src), str(dst)])
    report = capsys.readouterr().out
    left = sorted(f'decode_head.{m}' for m in (
        'conv_seg', 'aux_cls_seg', 'boundary_cls_seg', 'aux_head.norm',
        'aux_head.conv.bn', 'aux_head.conv.conv', 'boundary_head.norm',
        'boundary_head.conv.bn', 'boundary_head.conv.conv'))
    assert ('left to their initialisation: ' + ', '.join(left) +
            '; does not fit: decode_head.conv_seg.weight (1000, 64, 1, 1) '
            '(config (19, 64, 1, 1))') in report

    kept = authors_loader_keeps(imagenet, arch)
    assert 'final_layer.conv1.weight' in kept
    assert 'final_layer.conv2.weight' not in kept
    expected = convert_authors_state_dict({
        k: imagenet[k]
        for k in kept
        if not any(re.fullmatch(p, k) for p in AUTHORS_UNUSED.values())
    })
    state = torch.load(dst, weights_only=True)['state_dict']
    assert state.keys() == expected.keys()
    assert all(torch.equal(state[k], v) for k, v in expected.items())
    assert (f'SANet-{arch.upper()} ImageNet weights -> segmentation '
            f'initialisation: {len(state)} of') in report


@pytest.mark.parametrize('arch', with_official_keys('s', 'm', 'l'))
def test_authors_imagenet_weights_for_mmpretrain(tmp_path, arch):
    imagenet = authors_imagenet(arch)
    torch.save(imagenet, tmp_path / 'imagenet.pth')
    ckpt, report = convert(str(tmp_path / 'imagenet.pth'), mmpretrain=True)
    assert f'SANet-{arch.upper()} ImageNet weights -> MMPretrain' in report
    assert 'decode_head.conv_seg' in report
    state = ckpt['state_dict']
    assert torch.equal(state['head.layers.1.fc.weight'],
                       imagenet['classifier.4.weight'])
    assert torch.equal(state['backbone.neck.attention.weight'],
                       imagenet['spp.atten.conv3.weight'])


@needs_reference
def test_command_line(tmp_path, authors):
    src, dst = tmp_path / 'src.pt', tmp_path / 'out' / 'dst.pth'
    torch.save({'model.' + k: v for k, v in authors.items()}, src)
    out = run_script(TOOL, str(src), str(dst), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert 'SANet-S, 19 classes' in out.stdout
    assert set(torch.load(dst, weights_only=True)) == {'meta', 'state_dict'}


@needs_reference
def test_unknown_and_missing_keys_are_named(tmp_path, authors):
    bad = dict(authors, **{'layer9.0.conv1.weight': torch.zeros(1)})
    torch.save(bad, tmp_path / 'unknown.pth')
    with pytest.raises(KeyError, match='layer9.0.conv1.weight'):
        convert(str(tmp_path / 'unknown.pth'), form='training')

    partial = {k: v for k, v in authors.items() if not k.startswith('down4.')}
    torch.save({'model.' + k: v for k, v in partial.items()},
               tmp_path / 'missing.pt')
    with pytest.raises(RuntimeError, match='Missing key.*backbone.down4.conv'):
        convert(str(tmp_path / 'missing.pt'))

    shape = dict(authors, **{'down4.0.weight': torch.zeros(1, 1, 3, 3)})
    torch.save({'model.' + k: v for k, v in shape.items()},
               tmp_path / 'shape.pt')
    with pytest.raises(RuntimeError, match='size mismatch for backbone.down4'):
        convert(str(tmp_path / 'shape.pt'))


@needs_reference
def test_wrong_variant_for_config(tmp_path, authors):
    src = tmp_path / 's.pt'
    torch.save({'model.' + k: v for k, v in authors.items()}, src)
    with pytest.raises(ValueError, match=r'stage depths \(2, 2, 2, 2\).*'
                       'use the config of its variant'):
        convert(str(src), osp.join(CONFIGS, 'sanet-m_cityscapes.py'))
    with pytest.raises(ValueError, match='the weights classify 19 classes, '
                       'the config 11: use a config of 19 classes'):
        convert(str(src), osp.join(CONFIGS, 'sanet-s_camvid.py'))


@needs_reference
def test_convert_with_train_val_config(tmp_path, authors):
    """A config whose train set is a ConcatDataset names the classes too."""
    src = tmp_path / 's.pt'
    torch.save({'model.' + k: v for k, v in authors.items()}, src)
    ckpt, _ = convert(
        str(src), osp.join(CONFIGS, 'sanet-s_cityscapes-trainval.py'))
    assert ckpt['meta']['dataset_meta']['classes'][:2] == ('road',
                                                           'sidewalk')


def test_no_default_config_for_other_class_counts():
    with pytest.raises(ValueError, match='SANet-S with 21 classes: name one'):
        sanet2mmseg.default_config('s', 21, 'released')
    assert sanet2mmseg.default_config('m', 1000, 'imagenet').endswith(
        'sanet-m_cityscapes.py')
    assert sanet2mmseg.default_config('l', 11, 'training').endswith(
        'sanet-l_camvid.py')


class Payload:

    def __reduce__(self):
        return (print, ('payload ran', ))


def test_pickle_payload_is_refused(tmp_path, capsys):
    torch.save({'model.stom.0.weight': Payload()}, tmp_path / 'evil.pt')
    with pytest.raises(ValueError, match='weights_only=True'):
        convert(str(tmp_path / 'evil.pt'))
    assert 'payload ran' not in capsys.readouterr().out


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothing.pt'):
        convert(str(tmp_path / 'nothing.pt'))
    torch.save({'state_dict': build_segmentor('s').state_dict()},
               tmp_path / 'mmseg.pth')
    with pytest.raises(ValueError, match='already an MMSeg checkpoint'):
        convert(str(tmp_path / 'mmseg.pth'))
    torch.save([1, 2, 3], tmp_path / 'list.pth')
    with pytest.raises(ValueError, match='no state dict of tensors'):
        convert(str(tmp_path / 'list.pth'))

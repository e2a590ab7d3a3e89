"""tools/model_converters/sanet2mmseg.py on the authors' three checkpoint
forms and on wrong input."""
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmseg.apis import init_model

from sanet_mmseg.checkpoint import convert_authors_checkpoint, save_checkpoint
from test_models import CONFIGS, FIXTURE, REPO, build_segmentor, rel_err

pytestmark = pytest.mark.skipif(
    not osp.isfile(FIXTURE), reason=f'no parity fixture at {FIXTURE}')


@pytest.fixture(scope='module')
def authors():
    """The fixture's SANet-S weights without the 'model.' prefix."""
    fixture = torch.load(FIXTURE, weights_only=True)
    return {k[len('model.'):]: v for k, v in fixture['state_dict'].items()}


def convert(path, **kwargs):
    return convert_authors_checkpoint(str(path), config_dir=CONFIGS, **kwargs)


@pytest.mark.parametrize('form', ['released', 'training'])
def test_segmentation_forms(tmp_path, authors, form):
    src = tmp_path / 'src.pt'
    if form == 'released':
        torch.save({'model.' + k: v for k, v in authors.items()}, src)
    else:
        torch.save(dict(epoch=10, best_mIoU=0.5, state_dict=authors), src)
    ckpt, report = convert(src)
    assert f'({form} checkpoint): all 342 tensors converted' in report
    assert 'dropped unused spp.process* (24 tensors)' in report
    dst = str(tmp_path / 'mmseg.pth')
    save_checkpoint(ckpt, dst)

    model = init_model(
        osp.join(CONFIGS, 'sanet-s_cityscapes.py'), dst, device='cpu')
    assert model.dataset_meta['classes'][0] == 'road'
    assert len(model.dataset_meta['palette']) == 19
    fixture = torch.load(FIXTURE, weights_only=True)
    with torch.no_grad():
        main = model._forward(fixture['eval']['input'])
    assert rel_err(main, fixture['eval']['outputs']['main']) < 1e-4


def test_imagenet_form_initialises_shared_layers(tmp_path, authors):
    src = tmp_path / 'imagenet.pth'
    torch.save(authors, src)
    ckpt, report = convert(src)
    state = ckpt['state_dict']
    assert 'ImageNet weights -> segmentation initialisation' in report
    assert 'decode_head.seg_head.conv.conv' in report
    assert all(
        k.startswith(('backbone.', 'neck.', 'decode_head.fusion.'))
        for k in state)
    assert 'decode_head.conv_seg.weight' not in state
    model = build_segmentor('s')
    missing = set(model.state_dict()) - set(state)
    model.load_state_dict(state, strict=False)
    assert all(k.startswith('decode_head.') for k in missing)
    assert torch.equal(model.state_dict()['neck.attention.weight'],
                       authors['spp.atten.conv3.weight'])


def test_command_line(tmp_path, authors):
    src, dst = tmp_path / 'src.pt', tmp_path / 'out' / 'dst.pth'
    torch.save({'model.' + k: v for k, v in authors.items()}, src)
    out = subprocess.run(
        [
            sys.executable,
            osp.join(REPO, 'tools', 'model_converters', 'sanet2mmseg.py'),
            str(src),
            str(dst)
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert 'SANet-S, 19 classes' in out.stdout
    assert set(torch.load(dst, weights_only=True)) == {'meta', 'state_dict'}


def test_unknown_and_missing_keys_are_named(tmp_path, authors):
    bad = dict(authors, **{'layer9.0.conv1.weight': torch.zeros(1)})
    torch.save(bad, tmp_path / 'unknown.pth')
    with pytest.raises(KeyError, match='layer9.0.conv1.weight'):
        convert(tmp_path / 'unknown.pth', form='training')

    partial = {k: v for k, v in authors.items() if not k.startswith('down4.')}
    torch.save({'model.' + k: v for k, v in partial.items()},
               tmp_path / 'missing.pt')
    with pytest.raises(KeyError, match='missing keys: backbone.down4.conv'):
        convert(tmp_path / 'missing.pt')


def test_wrong_variant_for_config(tmp_path, authors):
    torch.save({'model.' + k: v for k, v in authors.items()}, tmp_path / 's.pt')
    with pytest.raises(KeyError, match='missing keys: backbone.layer1.2'):
        convert(
            tmp_path / 's.pt',
            config=osp.join(CONFIGS, 'sanet-m_cityscapes.py'))


class Payload:

    def __reduce__(self):
        return (print, ('payload ran',))


def test_pickle_payload_is_refused(tmp_path, capsys):
    torch.save({'model.stom.0.weight': Payload()}, tmp_path / 'evil.pt')
    with pytest.raises(ValueError, match='weights_only=True'):
        convert(tmp_path / 'evil.pt')
    assert 'payload ran' not in capsys.readouterr().out


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothing.pt'):
        convert(tmp_path / 'nothing.pt')
    torch.save({'state_dict': build_segmentor('s').state_dict()},
               tmp_path / 'mmseg.pth')
    with pytest.raises(ValueError, match='already an MMSeg checkpoint'):
        convert(tmp_path / 'mmseg.pth')
    torch.save([1, 2, 3], tmp_path / 'list.pth')
    with pytest.raises(ValueError, match='no state dict of tensors'):
        convert(tmp_path / 'list.pth')

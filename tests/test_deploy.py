"""prepare_for_inference, SADHead.switch_to_deploy, the ONNX export and
pytorch2onnx: correctness only (the speed itself is measured by
tools/analysis_tools/benchmark.py)."""
import copy
import importlib.util
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.model import revert_sync_batchnorm

import sanet_mmseg  # noqa: F401
from sanet_mmseg.deploy import (export_onnx, onnx_session,
                                prepare_for_inference)
from sanet_mmseg.models.decode_heads.sad_head import SADHead
from sanet_mmseg.models.segmentor_output import SegmentorOutput
from test_models import build_segmentor, rel_err
from workflow_utils import CONFIGS, REPO, randomize_bn

CONFIG = osp.join(CONFIGS, 'sanet-s_cityscapes.py')


def load_tool(path):
    """A tool script as a module, to call its functions directly."""
    spec = importlib.util.spec_from_file_location(
        osp.splitext(osp.basename(path))[0], osp.join(REPO, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def random_segmentor(arch='s'):
    """A segmentor with random weights and BN statistics, in eval mode."""
    torch.manual_seed(0)
    return randomize_bn(build_segmentor(arch)).eval()


@pytest.fixture(scope='module')
def plain():
    return random_segmentor('s')


@pytest.fixture(scope='module')
def prepared(plain):
    return prepare_for_inference(copy.deepcopy(plain))


@pytest.mark.parametrize('size', [(128, 256), (97, 203)])
def test_prepared_equals_plain(plain, prepared, size):
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        expected = plain._forward(x)
        got = prepared._forward(x)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert rel_err(got, expected) < 1e-4
    seg = prepared.predict(x)[0].pred_sem_seg.data
    assert seg.shape == (1, *size)


def test_prepared_nchw_equals_plain(plain):
    x = torch.randn(1, 3, 64, 128)
    model = prepare_for_inference(copy.deepcopy(plain), channels_last=False)
    assert model.backbone.stem[0].conv.weight.is_contiguous()
    with torch.no_grad():
        assert rel_err(model._forward(x), plain._forward(x)) < 1e-4


def test_prepared_structure(prepared):
    head = prepared.decode_head
    assert not prepared.training
    assert not any(hasattr(head, n) for n in SADHead.TRAINING_ONLY)
    assert set(SADHead.TRAINING_ONLY) == {
        'aux_head', 'aux_cls_seg', 'boundary_head', 'boundary_cls_seg'
    }
    bns = [
        n for n, m in prepared.named_modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    ]
    # only APPPM's pre-activation BNs (after a ReLU or a padded AvgPool)
    # remain; the seg unit's BN-ReLU-conv BN went into the fusion conv
    assert bns and all(n.startswith('neck.') for n in bns), bns
    assert head.fusion.conv_out.bias is not None
    assert prepared.backbone.stem[0].conv.weight.is_contiguous(
        memory_format=torch.channels_last)
    with pytest.raises(RuntimeError, match='prepared already'):
        prepare_for_inference(prepared)


def test_head_switch_to_deploy(plain):
    model = revert_sync_batchnorm(copy.deepcopy(plain))
    head = model.decode_head
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(1, 3, 64, 96))
        expected = head(feats)
        head.switch_to_deploy()
        got = head(feats)
        assert rel_err(got, expected) < 1e-5
        head.switch_to_deploy()  # a second call changes nothing
        assert torch.equal(head(feats), got)
    assert head.deploy and not any(
        hasattr(head, n) for n in SADHead.TRAINING_ONLY)
    seg = head.seg_head
    assert isinstance(seg.norm, torch.nn.Identity)
    assert isinstance(seg.conv.norm, torch.nn.Identity)
    assert seg.conv.conv.bias is not None
    train_mode = revert_sync_batchnorm(copy.deepcopy(plain.decode_head))
    train_mode.train()
    with pytest.raises(RuntimeError, match='eval mode'):
        train_mode.switch_to_deploy()
    sync_bn = build_segmentor('s').decode_head.eval()  # the config's SyncBN
    with pytest.raises(TypeError, match='SyncBN'):
        sync_bn.switch_to_deploy()


def test_compiled_equals_plain(plain):
    model = prepare_for_inference(copy.deepcopy(plain), compile=True)
    x = torch.randn(1, 3, 97, 203)
    with torch.no_grad():
        assert rel_err(model._forward(x), plain._forward(x)) < 1e-4
    # compiled in place: the modules and their keys stay as they are
    assert not any('_orig_mod' in k for k in model.state_dict())
    assert isinstance(model.decode_head, SADHead)


def test_sync_bn_is_reverted():
    model = build_segmentor('s')  # the config's SyncBN
    assert any(
        isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    model = prepare_for_inference(model)
    assert not any(
        isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    with torch.no_grad():
        assert model._forward(torch.randn(1, 3, 64, 64)).shape == (1, 19, 8,
                                                                   8)


def test_prepared_m_equals_plain():
    plain = random_segmentor('m')
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        expected = plain._forward(x)
        got = prepare_for_inference(plain)._forward(x)
    assert rel_err(got, expected) < 1e-4


def test_bfloat16(plain):
    x = torch.randn(1, 3, 128, 256)
    low = prepare_for_inference(copy.deepcopy(plain), dtype=torch.bfloat16)
    assert next(low.parameters()).dtype == torch.bfloat16
    with torch.no_grad():
        expected = plain._forward(x)
        got = low._forward(x)
    assert got.dtype == torch.float32
    assert rel_err(got, expected) < 0.1
    # random weights make near-ties: only a loose check of the labels
    assert (got.argmax(1) == expected.argmax(1)).float().mean() > 0.8
    with pytest.raises(ValueError, match='float32 model'):
        export_onnx(low, 'unused.onnx', shape=(64, 64))


def test_onnx_equals_pytorch(plain, prepared, tmp_path):
    path = str(tmp_path / 'dynamic.onnx')
    export_onnx(prepared, path, shape=(128, 256), dynamic=True)
    session = onnx_session(path)
    for batch, size in ((1, (128, 256)), (2, (97, 203))):
        x = torch.randn(batch, 3, *size)
        got = session.run(None, {'input': x.numpy()})[0]
        with torch.no_grad():
            expected = plain._forward(x).numpy()
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() / np.abs(expected).max() < 1e-3


def test_onnx_labels(plain, prepared, tmp_path):
    path = str(tmp_path / 'labels.onnx')
    export_onnx(prepared, path, shape=(64, 128), labels=True)
    x = torch.randn(1, 3, 64, 128)
    got = onnx_session(path).run(None, {'input': x.numpy()})[0]
    with torch.no_grad():
        expected = SegmentorOutput(plain, 'labels')(x).numpy()
    assert got.shape == (1, 64, 128)
    assert (got == expected).mean() > 0.999


def test_pytorch2onnx_tool(tmp_path, capsys):
    tool = load_tool('tools/deployment/pytorch2onnx.py')
    out = str(tmp_path / 's.onnx')
    tool.main([CONFIG, 'none', '--output-file', out, '--shape', '64', '96',
               '--dynamic', '--verify'])
    printed = capsys.readouterr().out
    assert 'RANDOM weights' in printed
    assert printed.count('max relative error') == 2 and 'FAILED' not in \
        printed, printed
    assert osp.isfile(out)
    model = build_segmentor('s').eval()
    # a missing file and a corrupt file fail the verification
    with pytest.raises(RuntimeError, match='cannot load'):
        tool.verify(model, str(tmp_path / 'missing.onnx'), (64, 96))
    corrupt = tmp_path / 'corrupt.onnx'
    corrupt.write_bytes(b'not an onnx graph')
    with pytest.raises(RuntimeError, match='cannot load'):
        tool.verify(model, str(corrupt), (64, 96))
    with pytest.raises(SystemExit):  # at the argument, by its name
        tool.main([CONFIG, str(tmp_path / 'missing.pth'), '--output-file',
                   out])
    assert 'checkpoint not found' in capsys.readouterr().err


def test_pytorch2onnx_simplify_labels(tmp_path, capsys):
    tool = load_tool('tools/deployment/pytorch2onnx.py')
    out = str(tmp_path / 'labels.onnx')
    tool.main([CONFIG, 'none', '--output-file', out, '--shape', '64', '64',
               '--labels', '--simplify', '--verify'])
    printed = capsys.readouterr().out
    assert 'simplified' in printed and 'share of differing labels' in \
        printed and 'FAILED' not in printed, printed


def test_verify_detects_mismatch(plain, tmp_path):
    tool = load_tool('tools/deployment/pytorch2onnx.py')
    other = random_segmentor('s')
    with torch.no_grad():
        other.decode_head.conv_seg.bias.add_(1)
    path = str(tmp_path / 'other.onnx')
    export_onnx(prepare_for_inference(other), path, shape=(64, 64))
    value, ok = tool.verify(plain, path, (64, 64))
    assert not ok and value > 1e-3

"""prepare_for_inference, ONNX export and the speed tools: correctness
only (the speed itself is measured by tools/analysis_tools/benchmark.py)."""
import copy
import os.path as osp

import numpy as np
import pytest
import torch

import sanet_mmseg  # noqa: F401
from sanet_mmseg.deploy import (SegmentorExport, export_onnx, onnx_session,
                                prepare_for_inference)
from test_models import build_segmentor
from workflow_utils import CONFIGS, run


def random_segmentor(arch='s'):
    """A segmentor with random weights and BN statistics, in eval mode."""
    torch.manual_seed(0)
    model = build_segmentor(arch)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.fixture(scope='module')
def plain():
    return random_segmentor('s')


@pytest.mark.parametrize('size', [(128, 256), (97, 203)])
def test_prepared_equals_plain(plain, size):
    x = torch.randn(1, 3, *size)
    prepared = prepare_for_inference(copy.deepcopy(plain))
    with torch.no_grad():
        expected = plain._forward(x)
        got = prepared._forward(x)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert rel_err(got, expected) < 1e-4
    seg = prepared.predict(x)[0].pred_sem_seg.data
    assert seg.shape == (1, *size)


def test_prepared_model_has_no_training_heads_or_bn(plain):
    prepared = prepare_for_inference(copy.deepcopy(plain))
    head = prepared.decode_head
    assert not any(
        hasattr(head, n) for n in ('aux_head', 'aux_cls_seg',
                                   'boundary_head', 'boundary_cls_seg'))
    bns = [
        n for n, m in prepared.named_modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    ]
    # only the BNs of pre-activation units (BN-ReLU-conv) remain: APPPM's
    # and the first BN of the main seg unit
    assert bns and all(
        n.startswith('neck.') or n == 'decode_head.seg_head.conv.bn'
        for n in bns), bns
    assert prepared.backbone.stem[0].conv.weight.is_contiguous(
        memory_format=torch.channels_last)


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


@pytest.mark.parametrize('labels', [False, True])
def test_onnx_equals_pytorch(plain, tmp_path, labels):
    prepared = prepare_for_inference(copy.deepcopy(plain))
    path = str(tmp_path / 'sanet.onnx')
    export_onnx(prepared, path, shape=(128, 256), labels=labels)
    x = torch.randn(1, 3, 128, 256)
    with torch.no_grad():
        expected = SegmentorExport(plain, labels)(x).numpy()
    got = onnx_session(path).run(None, {'input': x.numpy()})[0]
    if labels:
        assert got.shape == (1, 128, 256)
        assert (got == expected).mean() > 0.999
    else:
        assert np.abs(got - expected).max() / np.abs(expected).max() < 1e-3


def test_onnx_dynamic_shapes(plain, tmp_path):
    path = str(tmp_path / 'dynamic.onnx')
    export_onnx(prepare_for_inference(copy.deepcopy(plain)), path,
                shape=(64, 128), dynamic=True)
    session = onnx_session(path)
    x = torch.randn(2, 3, 96, 160)
    got = session.run(None, {'input': x.numpy()})[0]
    with torch.no_grad():
        expected = plain._forward(x).numpy()
    assert got.shape == expected.shape == (2, 19, 12, 20)
    assert np.abs(got - expected).max() / np.abs(expected).max() < 1e-3


def test_pytorch2onnx_tool(tmp_path):
    out = run('tools/deployment/pytorch2onnx.py',
              osp.join(CONFIGS, 'sanet-s_cityscapes.py'), 'none',
              '--output-file', str(tmp_path / 's.onnx'), '--shape', '64',
              '128', '--verify')
    assert 'ONNX Runtime vs PyTorch: max relative error' in out
    assert osp.isfile(tmp_path / 's.onnx')


def test_benchmark_tool():
    out = run('tools/analysis_tools/benchmark.py',
              osp.join(CONFIGS, 'sanet-s_cityscapes.py'), '--shape', '64',
              '128', '--compare', '--onnx', '--repeat', '1', '--seconds',
              '0.2')
    assert 'GFLOPs' in out
    for name in ('plain', 'prepared', 'prepared bfloat16', 'onnxruntime'):
        assert f'\n{name} ' in out, out

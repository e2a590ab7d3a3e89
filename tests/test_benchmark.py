"""The benchmark (tools/analysis_tools/benchmark.py, sanet_mmseg.benchmark)
and the one comparison of logits (sanet_mmseg.comparison)."""
import os.path as osp
import re

import numpy as np
import pytest
import torch
from mmengine.config import Config

from sanet_mmseg.benchmark import (cpu_description, format_times,
                                   label_agreement, parse_runners,
                                   precision_notes, time_variants)
from sanet_mmseg.comparison import compare_logits, relative_error
from sanet_mmseg.deploy import export_artefact, load_segmentor
from test_deploy import CONFIG, load_tool
from test_deploy_tools import META
from workflow_utils import random_checkpoint


def test_relative_error_and_labels():
    expected = torch.zeros(1, 3, 2, 2)
    expected[:, 0] = 4.
    got = expected.clone()
    got[0, 1, 0, 0] = 5.  # one position changes its label
    assert relative_error(expected, expected) == 0
    assert relative_error(got, expected) == pytest.approx(5 / 4)
    assert relative_error(got.numpy(), expected) == pytest.approx(5 / 4)
    result = compare_logits(got, expected)
    assert result.rel_err == pytest.approx(1.25)
    assert result.labels_equal == pytest.approx(3 / 4)
    assert relative_error(torch.ones(2), torch.zeros(2)) == float('inf')
    with pytest.raises(ValueError, match=r'shape \(1, 3, 2, 2\) with '
                       r'\(1, 3, 2, 3\)'):
        relative_error(got, torch.zeros(1, 3, 2, 3))


def test_label_agreement():
    x = torch.zeros(1, 3, 16, 16)
    base = torch.zeros(1, 2, 2, 2)
    base[:, 0] = 1
    flipped = base.flip(1)
    shares = label_agreement(
        dict(a=lambda x: base, same=lambda x: base, other=lambda x: flipped),
        [x, x], align_corners=False)
    assert shares == dict(same=1.0, other=0.0)


def test_cpu_description(tmp_path):
    info = tmp_path / 'cpuinfo'
    info.write_text('model name\t: Some CPU\nflags\t\t: fpu avx2 amx_tile '
                    'avx512_bf16\n')
    assert cpu_description(str(info)) == 'Some CPU; amx_tile avx512_bf16 avx2'
    info.write_text('model name\t: Old CPU\nflags\t\t: fpu sse2\n')
    assert cpu_description(str(info)).startswith('Old CPU; none of amx_tile')


def test_precision_notes():
    """An OpenVINO bf16 runner compiled as f32 (a CPU without bf16) is
    named; one that runs bf16, and other runners, are not."""

    class Hint:
        def __init__(self, name):
            self.name = name

        def get_type_name(self):
            return self.name

    class Runner:
        def __init__(self, precision, hint=None):
            self.precision = precision
            if hint:
                self.compiled = type('Compiled', (), dict(
                    get_property=lambda self, key: Hint(hint)))()

    notes = precision_notes({
        'ov bf16 here': Runner('bf16', 'f32'), 'ov bf16 amx':
        Runner('bf16', 'bf16'), 'ov int8': Runner('int8', 'f32'),
        'torch:bf16': Runner('bf16')})
    assert notes == ['ov bf16 here runs in f32: OpenVINO has no bf16 on '
                     'this CPU']


def test_time_variants_interleaves():
    calls = []
    variants = {n: (lambda x, n=n: calls.append(n)) for n in 'abc'}
    times = time_variants(variants, None, seconds=1e-9, repeat=3)
    assert all(len(t) == 3 for t in times.values())
    # warm-up (3 calls each), then rounds in rotated order
    assert ''.join(calls[9:]) == 'abc' + 'bca' + 'cab'
    table = format_times({'a': [1., 1.], 'b': [0.5, 0.7]})
    assert '0.600 (0.500-0.700)' in table


def test_parse_runners():
    assert parse_runners('openvino,torch:bf16') == [('openvino', 'fp32'),
                                                    ('torch', 'bf16')]
    assert parse_runners('') == []

    def refuse(backend, precision):
        raise ValueError(f'no {backend}')

    with pytest.raises(ValueError, match='no x'):
        parse_runners('x:fp32', refuse)


def test_benchmark_tool(capsys, cityscapes_mini):
    tool = load_tool('tools/analysis_tools/benchmark.py')
    tool.main([CONFIG, '--shape', '64', '128', '--backends',
               'torch:bf16,onnxruntime:fp32,openvino:int8',
               '--repeat', '2', '--seconds', '0.05', '--images',
               osp.join(cityscapes_mini, 'leftImg8bit', 'val')])
    out = capsys.readouterr().out
    assert 'GFLOPs' in out and 'random weights' in out
    assert 'int8 calibrated on 3 random inputs' in out
    assert cpu_description() in out
    for name in ('plain', 'torch:bf16', 'onnxruntime:fp32', 'openvino:int8'):
        assert f'\n{name} ' in out, out
    assert 'ratio to plain' in out
    assert 'near-ties' in out and out.count('% of pixels') == 3


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return random_checkpoint(
        CONFIG, str(tmp_path_factory.mktemp('ckpt') / 'random.pth'))


@pytest.fixture(scope='module')
def artefacts(checkpoint, tmp_path_factory):
    """The checkpoint as an ONNX Runtime and an OpenVINO fp32 artefact for
    64x128 inputs."""
    model = load_segmentor(CONFIG, checkpoint)
    root = tmp_path_factory.mktemp('artefacts')
    return [
        export_artefact(model, str(root / backend), backend, 'fp32',
                        (64, 128), META,
                        source=dict(config=CONFIG, checkpoint=checkpoint))
        for backend in ('onnxruntime', 'openvino')
    ]


def test_benchmark_times_artefacts(artefacts, checkpoint, cityscapes_mini,
                                   capsys):
    """--artefact times the shipped files beside plain, at their size;
    fp32 artefacts of the checkpoint label as plain does."""
    tool = load_tool('tools/analysis_tools/benchmark.py')
    tool.main([CONFIG, '--checkpoint', checkpoint, '--artefact', *artefacts,
               '--repeat', '1', '--seconds', '0.05', '--images',
               osp.join(cityscapes_mini, 'leftImg8bit', 'val')])
    out = capsys.readouterr().out
    assert 'sanet-s_cityscapes.py at 64x128' in out
    for name in ('onnxruntime (onnxruntime:fp32)', 'openvino (openvino:fp32)'):
        assert f'\n{name} ' in out, out
        assert re.search(rf'\n  {re.escape(name)} +100.000% of pixels', out)
    assert (f'artefact openvino (openvino:fp32): {artefacts[1]}, from '
            f'{checkpoint}') in out
    assert '\ntorch:' not in out  # no in-process runner unless asked
    # with in-process runners, side by side
    tool.main([CONFIG, '--artefact', artefacts[0], '--backends',
               'onnxruntime:fp32', '--repeat', '1', '--seconds', '0.05'])
    out = capsys.readouterr().out
    assert '\nonnxruntime:fp32 ' in out and '\nonnxruntime (' in out


def test_benchmark_refuses_artefacts_that_do_not_fit(artefacts, tmp_path,
                                                     capsys):
    tool = load_tool('tools/analysis_tools/benchmark.py')
    with pytest.raises(SystemExit, match='different input sizes '
                       r'\(128x256, 64x128\)'):
        tool.main([CONFIG, '--artefact', artefacts[0], '--shape', '128',
                   '256'])
    cfg = Config.fromfile(CONFIG)
    cfg.model.data_preprocessor.update(mean=[0., 0., 0.], std=[1., 1., 1.])
    other = str(tmp_path / 'other.py')
    cfg.dump(other)
    with pytest.raises(SystemExit, match='normalises as'):
        tool.main([other, '--artefact', artefacts[0]])
    with pytest.raises(FileNotFoundError, match='no deploy.json'):
        tool.main([CONFIG, '--artefact', str(tmp_path)])


def test_benchmark_arguments(capsys):
    tool = load_tool('tools/analysis_tools/benchmark.py')
    for argv, message in (
        (['--backends', 'tensorrt:fp32'], 'unknown backend'),
        (['--backends', 'onnxruntime:bf16'], 'runs fp32, int8'),
        (['--shape', '0', '8'], 'must be positive'),
        (['--device', 'cuda', '--backends', 'openvino:fp32'], 'on the CPU'),
        (['--device', 'cuda', '--artefact', 'a'], 'on the CPU'),
        (['--device', 'tpu'], 'cpu or cuda'),
        (['--checkpoint', CONFIG], 'not a checkpoint'),
    ):
        with pytest.raises(SystemExit):
            tool.parse_args([CONFIG, *argv])
        assert message in capsys.readouterr().err
    args = tool.parse_args([CONFIG])
    assert ('openvino', 'int8') in args.backends and len(args.backends) == 7
    args = tool.parse_args([CONFIG, '--backends', 'openvino,torch:bf16'])
    assert args.backends == [('openvino', 'fp32'), ('torch', 'bf16')]
    assert tool.parse_args([CONFIG, '--artefact', 'a', 'b']).backends == []
    np.testing.assert_equal(
        tool.parse_args([CONFIG, '--artefact', 'a']).artefact, ['a'])

"""The deployment layer: calibration inputs through the config's pipeline,
ONNX Runtime and OpenVINO predictors in fp32/bf16/int8, artefacts and their
meta file, and DeployedSegmentor in place of a config's model."""
import copy
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope

from mmseg.apis.utils import _preprare_data
from mmseg.datasets import CityscapesDataset
from sanet_mmseg.comparison import compare_logits
from sanet_mmseg.deploy import (ArtefactError, DeployedSegmentor,
                                ImagePipeline, PipelineInputs,
                                build_predictor, deploy_pipeline,
                                export_artefact, load_predictor, read_meta)
from test_deploy import CONFIG, random_segmentor
from test_models import rel_err

SHAPE = (64, 128)
META = dict(
    classes=CityscapesDataset.METAINFO['classes'],
    palette=CityscapesDataset.METAINFO['palette'])


@pytest.fixture(scope='module')
def cfg(cityscapes_mini):
    cfg = Config.fromfile(CONFIG)
    cfg.train_dataloader.dataset.data_root = cityscapes_mini
    return cfg


@pytest.fixture(scope='module')
def plain():
    return revert_sync_batchnorm(random_segmentor('s'))


@pytest.fixture(scope='module')
def calib(cfg):
    return PipelineInputs(cfg, 'config', num=2, shape=SHAPE)


@pytest.fixture(scope='module')
def image(cfg, cityscapes_mini):
    folder = osp.join(cityscapes_mini, 'leftImg8bit', 'val')
    return PipelineInputs(cfg, folder, num=1, shape=SHAPE)[0]


def compare(predictor, plain, x):
    """(relative error of the logits, share of equal labels at 1/8)."""
    with torch.no_grad():
        expected = plain._forward(x)
    got = predictor(x)
    assert got.shape == expected.shape and got.dtype == torch.float32
    return compare_logits(got, expected)


def test_inputs_equal_the_test_pipeline(cfg, cityscapes_mini):
    """What calibration sees is what tools/test.py and inference_model
    feed the model: the config's test pipeline and data preprocessor."""
    model = random_segmentor('s')
    model.cfg = copy.deepcopy(cfg)
    folder = osp.join(cityscapes_mini, 'leftImg8bit', 'train')
    inputs = PipelineInputs(cfg, folder)
    assert len(inputs) == 5 and inputs.paths[0].startswith(folder)
    data, _ = _preprare_data(inputs.paths[0], model)
    expected = model.data_preprocessor(data, False)['inputs']
    assert expected.shape[2:] == (1024, 2048)  # the config's Resize
    assert torch.equal(inputs[0], expected)
    # from the config's dataset: the same images, evenly spaced
    two = PipelineInputs(cfg, 'config', num=2)
    assert two.indices == [0, 4] and len(two) == 2
    assert torch.equal(two[0], expected)
    assert 'train split' in two.source
    # a fixed input size: the pipeline's Resize goes to exactly that size
    small = PipelineInputs(cfg, folder, num=1, shape=SHAPE)[0]
    assert small.shape == (1, 3, *SHAPE)
    frame = cv2.imread(inputs.paths[0])
    pipeline = ImagePipeline(cfg, SHAPE, from_array=True)
    assert pipeline._plain  # the NumPy normalisation ...
    array = pipeline(frame)
    assert torch.equal(array, small)
    # ... equals MMSeg's preprocessor, which runs itself where it pads
    padding = copy.deepcopy(cfg)
    padding.model.data_preprocessor.test_cfg = dict(size_divisor=96)
    pipeline = ImagePipeline(padding, SHAPE, from_array=True)
    assert not pipeline._plain
    padded = pipeline(frame)
    assert padded.shape == (1, 3, 96, 192)
    assert torch.equal(padded[..., :SHAPE[0], :SHAPE[1]], array)


def test_inputs_errors(cfg, tmp_path):
    with pytest.raises(FileNotFoundError, match='no file or folder'):
        PipelineInputs(cfg, str(tmp_path / 'missing'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='no files'):
        PipelineInputs(cfg, str(tmp_path / 'empty'))
    (tmp_path / 'corrupt.png').write_bytes(b'not a png')
    inputs = PipelineInputs(cfg, str(tmp_path / 'corrupt.png'))
    with pytest.raises(Exception, match='corrupt.png'):
        inputs[0]
    with pytest.raises(ValueError, match='num'):
        PipelineInputs(cfg, str(tmp_path / 'corrupt.png'), num=0)
    with pytest.raises(KeyError, match='no foo_dataloader'):
        PipelineInputs(cfg, 'config', split='foo')


@pytest.mark.parametrize('backend', ['onnxruntime', 'openvino'])
def test_fp32_equals_plain(plain, image, backend):
    predictor = build_predictor(plain, backend, 'fp32', SHAPE)
    assert predictor.name == f'{backend}:fp32'
    assert predictor.shape == SHAPE and predictor.batch == 1
    err, same = compare(predictor, plain, image)
    assert err < 1e-4 and same == 1.0, (err, same)
    # a batch runs image by image on the batch-1 model
    x = torch.cat([image, torch.randn(1, 3, *SHAPE)])
    assert torch.equal(predictor(x)[:1], predictor(image))
    with pytest.raises(ValueError, match='exported for 64x128'):
        predictor(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r'\(N, 3, H, W\)'):
        predictor(torch.randn(3, *SHAPE))


def test_dynamic_shapes(plain):
    predictor = build_predictor(plain, 'openvino', 'fp32')
    assert predictor.shape is None and predictor.batch is None
    x = torch.randn(2, 3, 97, 203)
    err, same = compare(predictor, plain, x)
    assert err < 1e-4


def test_bf16(plain, image):
    import openvino as ov
    fp32 = build_predictor(plain, 'openvino', 'fp32', SHAPE)
    hint = fp32.compiled.get_property('INFERENCE_PRECISION_HINT')
    assert hint == ov.Type.f32  # not OpenVINO's bf16 default on AMX CPUs
    if 'BF16' not in ov.Core().get_property('CPU',
                                            'OPTIMIZATION_CAPABILITIES'):
        pytest.skip('this CPU has no bf16 support (OpenVINO runs f32)')
    predictor = build_predictor(plain, 'openvino', 'bf16', SHAPE)
    hint = predictor.compiled.get_property('INFERENCE_PRECISION_HINT')
    assert hint == ov.Type.bf16
    err, same = compare(predictor, plain, image)
    # random weights make near-ties: only a loose check of the labels
    assert 0 < err < 0.1 and same > 0.8, (err, same)


SIGNAL_AFTER_CORES = """
import signal, sys, threading
import numpy as np
import openvino as ov
from openvino import opset13 as ops
from sanet_mmseg.deploy.backends.openvino import (OpenVINOPredictor,
                                                  signal_stack_kept)
def model():
    x = ops.parameter([1, 3, 16, 16], np.float32)
    w = ops.constant(np.ones((2, 3, 3, 3), np.float32))
    return ov.Model([ops.convolution(x, w, [1, 1], [1, 1], [1, 1], [1, 1])],
                    [x])
if sys.argv[1] == 'predictors':
    first, second = (OpenVINOPredictor(model(), 'fp32') for _ in range(2))
    del first
    del second
else:  # what NNCF does: a core per compiled model
    with signal_stack_kept():
        first, second = (ov.compile_model(model(), 'CPU') for _ in range(2))
        del first
        del second
got = []
signal.signal(signal.SIGUSR1, lambda *a: got.append(a[0]))
signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)
print('handled', got)
"""


@pytest.mark.parametrize('cores', ['predictors', 'nncf'])
def test_signal_after_cores_deleted_out_of_order(cores):
    """OpenVINO cores deleted in the order they were made (two predictors;
    two compiled models, as NNCF makes them, inside
    ``signal_stack_kept``), then a signal with a Python handler (Ctrl+C,
    Slurm's SIGUSR1): handled. (Otherwise the CPU plugin leaves the thread
    on an unmapped alternate signal stack and the signal ends the process
    with SIGSEGV.)"""
    out = subprocess.run([sys.executable, '-c', SIGNAL_AFTER_CORES, cores],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    assert out.stdout.strip() == 'handled [10]'


@pytest.mark.parametrize('backend', ['onnxruntime', 'openvino'])
def test_int8(plain, calib, image, backend, tmp_path):
    predictor = build_predictor(plain, backend, 'int8', SHAPE, calib)
    model_file = predictor.meta['paths'][0]
    if backend == 'openvino':
        import openvino as ov
        ops = ov.Core().read_model(model_file).get_ops()
        quantized = sum(op.get_type_name() == 'FakeQuantize' for op in ops)
    else:
        import onnx
        graph = onnx.load(model_file).graph
        quantized = sum(n.op_type == 'QuantizeLinear' for n in graph.node)
    assert quantized > 50  # every convolution's input
    meta = predictor.meta
    assert meta['calibration']['images'] == 2
    with torch.no_grad():
        expected = plain._forward(image)
    got = predictor(image)
    # random weights make near-ties, so their labels say little (trained
    # weights: docs/deployment.md); the logits must stay close
    cosine = torch.cosine_similarity(got.flatten(), expected.flatten(), 0)
    assert 0 < rel_err(got, expected) < 0.25 and cosine > 0.99, cosine
    with pytest.raises(ValueError, match='calibration'):
        build_predictor(plain, backend, 'int8', SHAPE)


def test_unknown_backend_and_precision(plain):
    with pytest.raises(ValueError, match='unknown backend'):
        build_predictor(plain, 'tensorrt', 'fp32')
    with pytest.raises(ValueError, match='onnxruntime runs fp32, int8'):
        build_predictor(plain, 'onnxruntime', 'bf16')


def listing(folder):
    """The files under ``folder``, relative to it, sorted."""
    return sorted(
        osp.relpath(osp.join(root, f), folder)
        for root, _, files in os.walk(folder) for f in files)


def artefact_files(folder):
    """What an artefact folder must hold: deploy.json and the model files
    in the version folder it names."""
    meta = read_meta(folder)
    return sorted(['deploy.json'] + [
        osp.join(meta['model_dir'], f) for f in meta['files']])


def test_artefact(plain, calib, tmp_path):
    out = str(tmp_path / 'artefact')
    source = dict(config=CONFIG, checkpoint=None)
    export_artefact(plain, out, 'openvino', 'fp32', SHAPE, META,
                    source=source)
    first = artefact_files(out)
    assert listing(out) == first and len(first) == 3
    meta = read_meta(out)
    assert meta['backend'] == 'openvino' and meta['precision'] == 'fp32'
    assert meta['input']['shape'] == [1, 3, *SHAPE]
    assert meta['classes'] == list(META['classes'])
    assert meta['palette'][0] == list(META['palette'][0])
    assert meta['preprocess'] == dict(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True)
    assert meta['align_corners'] is plain.decode_head.align_corners
    assert meta['source'] == source and meta['calibration'] is None
    assert meta['versions']['openvino'] and meta['versions']['torch']
    predictor = load_predictor(osp.join(out, 'deploy.json'))
    assert predictor.name == 'openvino:fp32'
    with torch.no_grad():
        x = calib[0]
        assert rel_err(predictor(x), plain._forward(x)) < 1e-4

    # a failing export leaves the artefact as it was, and no temp files
    with pytest.raises(Exception):
        export_artefact(plain, out, 'openvino', 'int8', (32, 32), META,
                        calib)  # calibration images of another size
    assert listing(out) == first
    assert read_meta(out)['precision'] == 'fp32'
    # a new export replaces it
    export_artefact(plain, out, 'openvino', 'int8', SHAPE, META, calib)
    meta = read_meta(out)
    assert meta['precision'] == 'int8' and meta['versions']['nncf']
    assert meta['calibration']['source'] == calib.source
    assert listing(out) == artefact_files(out) != first


def test_artefact_errors(plain, tmp_path):
    out = tmp_path / 'artefact'
    with pytest.raises(ValueError, match='no artefact'):
        export_artefact(plain, str(out), 'torch', 'fp32', SHAPE, META)
    with pytest.raises(KeyError, match='palette'):
        export_artefact(plain, str(out), 'openvino', 'fp32', SHAPE,
                        dict(classes=META['classes']))
    with pytest.raises(ValueError, match='openvino int8 only'):
        export_artefact(plain, str(out), 'openvino', 'fp32', SHAPE, META,
                        preset='mixed')
    with pytest.raises(FileNotFoundError, match='not an artefact'):
        load_predictor(str(tmp_path))
    export_artefact(plain, str(out), 'onnxruntime', 'fp32', SHAPE, META)
    valid = json.loads((out / 'deploy.json').read_text())
    (out / 'deploy.json').write_text(json.dumps(
        {k: v for k, v in valid.items() if k != 'align_corners'}))
    with pytest.raises(ArtefactError, match="'align_corners' is a required"):
        read_meta(str(out))
    (out / 'deploy.json').write_text(json.dumps(valid))
    os.remove(read_meta(str(out))['paths'][0])
    with pytest.raises(ArtefactError, match='model.onnx is missing'):
        load_predictor(str(out))
    (out / 'deploy.json').write_text(json.dumps(dict(backend='onnxruntime',
                                                     precision='bf16')))
    with pytest.raises(ArtefactError, match='deploy.json: key'):
        read_meta(str(out))
    (out / 'deploy.json').write_text('{')
    with pytest.raises(ArtefactError, match='not JSON'):
        read_meta(str(out))
    (out / 'deploy.json').write_text(json.dumps(dict(
        valid, backend='openvino', precision='fp32',
        files=['model.bin', 'model.xml'])))
    model_dir = out / valid.get('model_dir', '')
    (model_dir / 'model.xml').write_text('<not IR')
    (model_dir / 'model.bin').write_bytes(b'')
    with pytest.raises(RuntimeError, match='OpenVINO cannot read'):
        load_predictor(str(out))


def test_deployed_segmentor_equals_segmentor(plain, cfg, cityscapes_mini):
    """DeployedSegmentor.predict gives what EncoderDecoder.predict gives:
    the logits resized to the input, then to the original image."""
    predictor = build_predictor(plain, 'openvino', 'fp32', SHAPE)
    predictor.meta = dict(
        align_corners=plain.decode_head.align_corners,
        preprocess=dict(
            mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True))
    init_default_scope('mmseg')
    deployed = DeployedSegmentor(
        predictor, data_preprocessor=cfg.model.data_preprocessor)
    model = copy.deepcopy(plain)
    model.cfg = copy.deepcopy(cfg)
    model.cfg.test_pipeline = deploy_pipeline(cfg, SHAPE)
    path = PipelineInputs(
        cfg, osp.join(cityscapes_mini, 'leftImg8bit', 'val')).paths[0]
    data, _ = _preprare_data(path, model)
    with torch.no_grad():
        expected = model.test_step(data)[0]
        got = deployed.test_step(data)[0]
    assert got.pred_sem_seg.shape == expected.pred_sem_seg.shape == \
        cv2.imread(path).shape[:2]
    same = (got.pred_sem_seg.data == expected.pred_sem_seg.data).float()
    assert same.mean() > 0.9999
    assert rel_err(got.seg_logits.data, expected.seg_logits.data) < 1e-4
    with pytest.raises(NotImplementedError, match='cannot be trained'):
        deployed.loss(None, None)
    other = copy.deepcopy(cfg.model.data_preprocessor)
    other.mean = [0, 0, 0]
    with pytest.raises(ValueError, match='exported for'):
        DeployedSegmentor(predictor, data_preprocessor=other)


def test_int8_saturates(tmp_path):
    """7-bit weights (reduce_range, NNCF's overflow fix) only where the CPU
    has no VNNI/AMX int8 dot product."""
    from sanet_mmseg.cpu import int8_saturates
    info = tmp_path / 'cpuinfo'
    info.write_text('model name\t: X\nflags\t\t: fpu avx2 avx512f\n')
    assert int8_saturates(str(info))
    for flag in ('avx512_vnni', 'avx_vnni', 'amx_int8'):
        info.write_text(f'model name\t: X\nflags\t\t: avx2 {flag}\n')
        assert not int8_saturates(str(info))

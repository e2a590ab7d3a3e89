"""The CUDA paths: AMP fp16 training, SyncBN under NCCL, evaluation logits,
the prepared fp16 channels-last model, the inference API and
tools/test.py on a CUDA device.

Each check is one function run on a device: the ``cuda`` cases (marked
``cuda``, skipped without a CUDA device, a failure instead under
``SANET_REQUIRE_CUDA=1``, which ``tools/run_cuda_checks.sh`` sets) and the
same code on the CPU (bfloat16 where CUDA uses float16, gloo for NCCL), so
that the code of the CUDA cases runs in every test run. With
``SANET_CUDA_REPORT=FILE`` the measured figures are appended to FILE (one
JSON object a line) for the script's summary.
"""
import contextlib
import copy
import glob
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import mmcv
import numpy as np
import pytest
import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import init_default_scope

import sanet_mmseg  # noqa: F401
from mmseg.apis import inference_model, init_model
from mmseg.registry import DATASETS, MODELS
from sanet_mmseg.datasets.demo import DEMO_METAINFO
from sanet_mmseg.deploy import prepare_for_inference
from sanet_mmseg.engine import CPUAmpOptimWrapper
from test_deploy import random_segmentor
from test_models import rel_err
from workflow_utils import CONFIGS, REPO

DEMO = osp.join(CONFIGS, 'sanet-s_demo.py')
CITYSCAPES = osp.join(CONFIGS, 'sanet-s_cityscapes.py')
REQUIRE_CUDA = os.environ.get('SANET_REQUIRE_CUDA', '0') == '1'
HAS_CUDA = torch.cuda.is_available()
CUDA = pytest.param(
    'cuda',
    marks=[
        pytest.mark.cuda,
        pytest.mark.skipif(
            not HAS_CUDA and not REQUIRE_CUDA,
            reason='no CUDA device (torch.cuda.is_available() is False)')
    ])
DEVICES = ['cpu', CUDA]
# the reduced precision of each device: AMP and the prepared model
LOW = {'cpu': torch.bfloat16, 'cuda': torch.float16}
# bounds on the share of labels equal to float32's (random weights make
# near-ties: bf16 on the CPU measured 0.992; fp16 keeps 3 more mantissa
# bits than bf16)
AGREEMENT = {'cpu': 0.95, 'cuda': 0.99}
# losses of one AMP step against float32's, relative
LOSS_TOL = {'cpu': 0.05, 'cuda': 0.01}
# training crops (small: a bf16 step takes ~20 s on 2 CPU cores)
CROP = (128, 128)


def check_device(device):
    if device == 'cuda' and not HAS_CUDA:
        pytest.fail('SANET_REQUIRE_CUDA=1 but torch.cuda.is_available() is '
                    f'False (torch {torch.__version__}, built for CUDA '
                    f'{torch.version.cuda})')


def report(check, device, **figures):
    """Append the figures of a check to ``SANET_CUDA_REPORT``, if set."""
    path = os.environ.get('SANET_CUDA_REPORT')
    if path:
        with open(path, 'a') as f:
            f.write(json.dumps(dict(check=check, device=device, **figures)) +
                    '\n')


@contextlib.contextmanager
def exact_fp32():
    """No TF32 in CUDA convolutions and matmuls (the default lets cuDNN
    use it, ~1e-3 relative)."""
    saved = (torch.backends.cudnn.allow_tf32,
             torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        (torch.backends.cudnn.allow_tf32,
         torch.backends.cuda.matmul.allow_tf32) = saved


def compare(got, expected):
    """(relative error, share of equal labels) of logits (N, C, H, W)."""
    got, expected = got.float().cpu(), expected.float().cpu()
    same = (got.argmax(1) == expected.argmax(1)).float().mean().item()
    return rel_err(got, expected), same


def build_model(config, device, size=None):
    """The config's segmentor with seeded random weights, on ``device``;
    ``size``: the (H, W) its data preprocessor pads to."""
    init_default_scope('mmseg')
    cfg = Config.fromfile(config).model
    if size is not None:
        cfg.data_preprocessor.size = size
    torch.manual_seed(0)
    return MODELS.build(cfg).to(device)


@pytest.fixture(scope='module')
def batch(generated_cityscapes_mini):
    """Two training samples of the demo config's pipeline (CROP crops,
    labels 0-6, edge maps)."""
    init_default_scope('mmseg')
    cfg = Config.fromfile(DEMO).train_dataloader.dataset
    cfg.data_root = generated_cityscapes_mini
    for step in cfg.pipeline:
        if step.type == 'RandomCrop':
            step.crop_size = CROP
    # MMCV's random transforms draw from numpy: the same crops whatever
    # ran before
    np.random.seed(0)
    dataset = DATASETS.build(cfg)
    return pseudo_collate([dataset[0], dataset[1]])


def train_step(model, batch, wrapper_type, **kwargs):
    """One SGD step through MMEngine's ``train_step``: the losses (floats)
    and the optimizer wrapper."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    wrapper = wrapper_type(optimizer=optimizer, **kwargs)
    log_vars = model.train_step(copy.deepcopy(batch), wrapper)
    return {k: v.item() for k, v in log_vars.items()}, wrapper


#: the losses that vary smoothly with the logits. ``acc_seg`` (an argmax)
#: and ``loss_sem_bd`` (OHEM on the pixels where sigmoid(boundary) > 0.8),
#: and so the total, hang on hard thresholds: at random initialisation
#: reduced precision moves pixels across them (measured on the CPU in bf16:
#: accuracy 11.8 against 13.5, loss_sem_bd 0 against 2.97 when no pixel
#: passed 0.8 in one of the two), so they are reported, not compared.
SMOOTH_LOSSES = ('decode.loss_aux', 'decode.loss_sem', 'decode.loss_bd')


def far_losses(got, expected, tol, keys=None):
    """The losses (``keys``; default: all) whose relative difference
    exceeds ``tol``."""
    assert got.keys() == expected.keys()
    return {
        k: (got[k], expected[k])
        for k in keys or expected
        if abs(got[k] - expected[k]) > tol * max(abs(expected[k]), 1e-3)
    }


def flat(tensors):
    return torch.cat([t.detach().float().flatten().cpu() for t in tensors])


def bn_statistics(model):
    return flat(m.running_mean for m in model.modules()
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))


#: the parameters fed by smooth losses alone (loss_aux, loss_bd): the
#: auxiliary and boundary heads. Their AMP update must be float32's (CPU
#: bf16 measured 0.084 and 0.097 apart, relative); the rest, fed through
#: the deep random network and OHEM, is not at random initialisation
#: (backbone cosine 0.17 in bf16 on the CPU), so it is reported.
SMOOTH_HEADS = ('decode_head.aux_', 'decode_head.boundary_')
UPDATE_TOL = 0.2


@pytest.mark.parametrize('device', DEVICES)
def test_amp_train_step(device, batch):
    """SANet-S (demo config): one AMP step (fp16 with dynamic loss scaling
    on CUDA, bf16 autocast on the CPU) gives float32's losses, finite
    weights that moved, and float32's update of the heads fed by smooth
    losses, in direction and size. (The cosine of the whole update is
    reported: at random initialisation it is near 0 with bf16 on the
    CPU.)"""
    check_device(device)
    fp32 = build_model(DEMO, device, CROP).train()
    amp = copy.deepcopy(fp32)
    start = flat(fp32.parameters())
    with exact_fp32():
        expected, _ = train_step(fp32, batch, OptimWrapper)
    if device == 'cuda':
        # dynamic scaling from 1024 (MMEngine's default starts at 65536,
        # where a first step may overflow and be skipped)
        got, wrapper = train_step(
            amp, batch, AmpOptimWrapper, dtype=torch.float16,
            loss_scale=dict(init_scale=1024.))
        assert wrapper.loss_scaler.get_scale() == 1024., 'step skipped'
    else:
        got, _ = train_step(amp, batch, CPUAmpOptimWrapper)
    update = flat(amp.parameters()) - start
    reference = flat(fp32.parameters()) - start
    cosine = torch.nn.functional.cosine_similarity(
        update, reference, dim=0).item()
    heads = torch.cat([
        torch.full((p.numel(), ), name.startswith(SMOOTH_HEADS))
        for name, p in fp32.named_parameters()
    ])
    assert heads.sum() > 1e5
    heads_apart = ((update - reference)[heads].norm() /
                   reference[heads].norm()).item()
    report('amp_train_step', device, fp32=expected, amp=got,
           update_cosine=cosine, heads_update_apart=heads_apart)
    assert all(torch.isfinite(torch.tensor(v)) for v in got.values()), got
    assert not far_losses(got, expected, LOSS_TOL[device], SMOOTH_LOSSES)
    assert torch.isfinite(update).all() and update.abs().max() > 0
    assert heads_apart < UPDATE_TOL, heads_apart


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def one_process_group(backend):
    """A process group of one rank, as ``dist_train.sh ... 1`` makes."""
    dist.init_process_group(
        backend, init_method=f'tcp://127.0.0.1:{free_port()}', rank=0,
        world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize('device', DEVICES)
def test_sync_bn_process_group(device, batch):
    """The Cityscapes config's model, its ``norm_cfg`` as it is (SyncBN;
    on the CPU, which SyncBN does not run on, reverted to BN), in a
    one-process NCCL (CPU: gloo) group under MMEngine's DDP: the step's
    losses equal those of the same model with plain BN outside a group."""
    check_device(device)
    model = build_model(CITYSCAPES, device, CROP).train()
    synced = [
        m for m in model.modules() if isinstance(m, torch.nn.SyncBatchNorm)
    ]
    assert synced, 'the config builds no SyncBN'
    plain = revert_sync_batchnorm(copy.deepcopy(model))
    if device == 'cpu':
        model = revert_sync_batchnorm(model)
    with exact_fp32():
        expected, _ = train_step(plain, batch, OptimWrapper)
        with one_process_group('nccl' if device == 'cuda' else 'gloo'):
            ddp = MMDistributedDataParallel(
                model, device_ids=[0] if device == 'cuda' else None)
            got, _ = train_step(ddp, batch, OptimWrapper)
    report('sync_bn_one_process', device, syncbn=got, bn=expected)
    assert not far_losses(got, expected, 1e-4)
    assert rel_err(bn_statistics(model), bn_statistics(plain)) < 1e-4
    assert rel_err(flat(model.parameters()), flat(plain.parameters())) < 1e-4


@pytest.fixture(scope='module')
def frame_input(generated_cityscapes_mini):
    """A generated frame at 256x128 (bf16 runs slowly on most CPUs),
    normalised as the configs do."""
    path = sorted(
        glob.glob(
            osp.join(generated_cityscapes_mini, 'leftImg8bit', 'val', '*',
                     '*.png')))[0]
    image = mmcv.imresize(mmcv.imread(path), (256, 128))
    image = torch.from_numpy(image[..., ::-1].copy()).float()
    mean = torch.tensor([123.675, 116.28, 103.53])
    std = torch.tensor([58.395, 57.12, 57.375])
    return ((image - mean) / std).permute(2, 0, 1)[None].contiguous()


def check_fp32_and_low(check, device, expected, fp32, low):
    """float32 logits within 1e-4 relative of ``expected``; the reduced
    precision's labels equal to ``expected``'s on AGREEMENT of the pixels
    (both reported)."""
    err, _ = compare(fp32, expected)
    low_err, low_same = compare(low, expected)
    report(check, device, fp32_rel_err=err, low=str(LOW[device]),
           low_rel_err=low_err, low_label_agreement=low_same)
    assert err < 1e-4
    assert low_same > AGREEMENT[device], low_same


@pytest.mark.parametrize('device', DEVICES)
def test_eval_logits_match_cpu(device, frame_input):
    """Eval-mode logits on ``device`` against the CPU's: float32 within
    1e-4 relative; under autocast (fp16 on CUDA, bf16 on the CPU) the
    share of equal labels is reported and bounded."""
    check_device(device)
    model = random_segmentor('s')
    with torch.no_grad():
        expected = model._forward(frame_input)
        model = model.to(device)
        x = frame_input.to(device)
        with exact_fp32():
            fp32 = model._forward(x)
        with torch.autocast(device, dtype=LOW[device]):
            low = model._forward(x)
    check_fp32_and_low('eval_logits', device, expected, fp32, low)


@pytest.mark.parametrize('device', DEVICES)
def test_prepared_matches_plain(device, frame_input):
    """``prepare_for_inference`` on ``device``: float32 equals the plain
    model to 1e-4; fp16 (CPU: bf16) channels-last keeps float32 outputs and
    most labels."""
    check_device(device)
    plain = random_segmentor('s').to(device)
    x = frame_input.to(device)
    with torch.no_grad(), exact_fp32():
        expected = plain._forward(x)
        fp32 = prepare_for_inference(copy.deepcopy(plain))._forward(x)
        low_model = prepare_for_inference(
            copy.deepcopy(plain), dtype=LOW[device], channels_last=True)
        low = low_model._forward(x)
    conv = next(m for m in low_model.modules()
                if isinstance(m, torch.nn.Conv2d)).weight
    assert conv.dtype == LOW[device] and conv.device.type == device
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert low.dtype == torch.float32
    check_fp32_and_low('prepared', device, expected, fp32, low)


@pytest.fixture(scope='module')
def demo_checkpoint(tmp_path_factory):
    """The demo config's SANet-S with random weights and BN statistics, as
    an MMSeg checkpoint with the demo classes."""
    model = build_model(DEMO, 'cpu')
    torch.manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2)
    path = str(tmp_path_factory.mktemp('ckpt') / 'demo.pth')
    torch.save(
        dict(
            meta=dict(dataset_meta=DEMO_METAINFO),
            state_dict=model.state_dict()), path)
    return path


@pytest.mark.parametrize('device', DEVICES)
def test_inference_api(device, demo_checkpoint, generated_cityscapes_mini):
    """``init_model``/``inference_model`` on ``device``: the labels of
    the CPU's."""
    check_device(device)
    frame = sorted(
        glob.glob(
            osp.join(generated_cityscapes_mini, 'leftImg8bit', 'val', '*',
                     '*.png')))[0]
    expected = inference_model(
        init_model(DEMO, demo_checkpoint, device='cpu'), frame)
    model = init_model(DEMO, demo_checkpoint, device=device)
    with exact_fp32():
        result = inference_model(model, frame)
    assert result.seg_logits.data.device.type == device
    assert model.dataset_meta['classes'] == DEMO_METAINFO['classes']
    err, same = compare(result.seg_logits.data[None],
                        expected.seg_logits.data[None])
    report('inference_api', device, rel_err=err, label_agreement=same)
    assert err < 1e-4 and same > 0.999


def run_test_tool(config, checkpoint, data_root, work_dir, cuda):
    """tools/test.py in a subprocess, on CUDA or with CUDA hidden: the
    metrics it writes (work_dir/TIMESTAMP/TIMESTAMP.json) and its log."""
    env = dict(os.environ)
    if not cuda:
        env['CUDA_VISIBLE_DEVICES'] = ''
    out = subprocess.run(
        [sys.executable, 'tools/test.py', config, checkpoint, '--work-dir',
         work_dir, '--cfg-options',
         f'test_dataloader.dataset.data_root={data_root}'],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-5000:]
    found = sorted(glob.glob(osp.join(work_dir, '*', '*.json')))
    assert found, f'tools/test.py wrote no metrics under {work_dir}'
    with open(found[-1]) as f:
        return json.load(f), log


@pytest.mark.parametrize('device', DEVICES)
def test_test_tool(device, demo_checkpoint, generated_cityscapes_mini,
                   tmp_path):
    """tools/test.py on ``device`` (CUDA: the Runner's default where CUDA
    is there): it reports the device in its environment log and gives the
    CPU's mIoU."""
    check_device(device)
    metrics, log = run_test_tool(DEMO, demo_checkpoint,
                                 generated_cityscapes_mini,
                                 str(tmp_path / device), device == 'cuda')
    assert f'CUDA available: {device == "cuda"}' in log
    report('test_tool', device, mIoU=metrics['mIoU'])
    assert 0 <= metrics['mIoU'] <= 100
    if device == 'cuda':
        cpu_metrics, _ = run_test_tool(DEMO, demo_checkpoint,
                                       generated_cityscapes_mini,
                                       str(tmp_path / 'cpu'), False)
        report('test_tool', 'cpu', mIoU=cpu_metrics['mIoU'])
        assert abs(metrics['mIoU'] - cpu_metrics['mIoU']) < 1.0

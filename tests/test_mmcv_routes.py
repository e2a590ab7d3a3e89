"""Both mmcv routes: mmcv-lite with ``sanet_mmseg.mmcv_ext``'s stand-in for
the compiled ops (the default set-up), and a full mmcv, whose ops are used.

The suite runs on whichever is installed; ``.ci/run`` runs it on mmcv-lite
and this file (with a training step, ``mim test`` and the inference API) in
a second environment with the full mmcv wheel of ``../shared/wheels``.
``SANET_EXPECT_MMCV=lite|full`` makes a route other than the one expected a
failure."""
import importlib.util
import multiprocessing
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision

from sanet_mmseg import mmcv_ext
from workflow_utils import CONFIGS, REPO


def installed_route():
    """'full' where mmcv's compiled ops are installed, else 'lite'."""
    import mmcv._ext
    return 'lite' if mmcv_ext.is_stand_in(mmcv._ext) else 'full'


def test_expected_route():
    route = installed_route()
    expected = os.environ.get('SANET_EXPECT_MMCV')
    if expected:
        assert route == expected
    # MMEngine's check, which its optimizer constructor and SyncBN
    # conversion ask, needs a spec either way
    from mmengine.utils.dl_utils import mmcv_full_available
    assert mmcv_full_available()


def test_package_requires_no_mmcv():
    """``pip install -e .`` beside mmcv-lite must not build mmcv: the
    package requires neither build, except through its extras."""
    from importlib.metadata import distribution
    from packaging.requirements import Requirement
    requires = [Requirement(r) for r in distribution('sanet-mmseg').requires]
    mmcv = {str(r.marker): r.name for r in requires
            if r.name in ('mmcv', 'mmcv-lite')}
    assert mmcv == {'extra == "lite"': 'mmcv-lite', 'extra == "full"': 'mmcv'}


def test_stand_in_op_names_itself():
    spec = importlib.util.spec_from_loader('mmcv._ext',
                                           mmcv_ext.StandInLoader())
    module = importlib.util.module_from_spec(spec)
    assert mmcv_ext.is_stand_in(module)
    with pytest.raises(mmcv_ext.MissingMmcvOpError) as error:
        module.roi_align_forward(torch.zeros(1))
    message = str(error.value)
    assert "mmcv op 'roi_align_forward'" in message
    assert 'mmcv-lite' in message and 'SANET_MMCV=full' in message
    assert module.get_compiler_version().startswith('n/a')
    finder = mmcv_ext.StandInFinder()
    assert finder.find_spec('mmcv.ops') is None
    assert finder.find_spec('mmcv._ext').loader.stand_in


def test_compiled_op(tmp_path):
    """mmcv's NMS: under the stand-in a clear error naming it; with full
    mmcv its compiled op, which keeps what torchvision's NMS keeps."""
    from mmcv.ops import nms
    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(64, 2, generator=generator) * 50
    boxes = torch.cat([corners, corners + 5 + 20 * torch.rand(
        64, 2, generator=generator)], 1)
    scores = torch.rand(64, generator=generator)
    if installed_route() == 'lite':
        with pytest.raises(mmcv_ext.MissingMmcvOpError, match="'nms'"):
            nms(boxes, scores, 0.5)
    else:
        _, keep = nms(boxes, scores, 0.5)
        expected = torchvision.ops.nms(boxes, scores, 0.5)
        assert 0 < len(keep) < 64
        assert keep.tolist() == expected.tolist()


def python(code, cwd='/'):
    """Runs ``code`` in a new interpreter (out of the repository, so that
    only what is installed is found); returns its output."""
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, cwd=cwd, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_mmseg_apis_as_first_import():
    """The README's inference example starts with MMSeg, not sanet_mmseg:
    the .pth file has installed the stand-in before. MMCV's and MMSeg's
    environment reports, which ask mmcv's build information, answer."""
    out = python('from mmseg.apis import init_model, MMSegInferencer; '
                 'import sys, mmcv._ext; '
                 'print("sanet_mmseg" in sys.modules, '
                 'getattr(mmcv._ext, "is_stand_in", False)); '
                 'from mmcv.utils import collect_env; '
                 'from mmseg.utils import collect_env as mmseg_env; '
                 'print(collect_env()["MMCV Compiler"]); '
                 'print(mmseg_env()["MMSegmentation"])').splitlines()
    assert out[0].split() == ['False', str(installed_route() == 'lite')]
    assert out[1].startswith('n/a') == (installed_route() == 'lite')
    assert out[2].startswith('1.2.2')


def test_spawned_worker_imports_mmcv_ops():
    """A data-loader worker started with 'spawn' is a new interpreter that
    may import mmcv.ops (through MMSeg's models) before sanet_mmseg."""
    with multiprocessing.get_context('spawn').Pool(1) as pool:
        assert pool.apply(exec, ('import mmcv.ops', )) is None


def test_build_train_step_and_inference(tmp_path):
    """The model of the demo config: built, one training step that changes
    the weights, and the inference API on an image file."""
    from mmengine.optim import build_optim_wrapper
    from mmseg.apis import inference_model, init_model
    from mmseg.structures import SegDataSample
    from mmengine.structures import PixelData
    model = init_model(osp.join(CONFIGS, 'sanet-s_demo.py'), device='cpu')
    model.train()
    generator = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(2):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, 7, (1, 64, 64), generator=generator))
        sample.gt_edge_map = PixelData(
            data=torch.randint(0, 2, (1, 64, 64), generator=generator))
        sample.set_metainfo(dict(img_shape=(64, 64), ori_shape=(64, 64),
                                 pad_shape=(64, 64)))
        samples.append(sample)
    data = dict(inputs=[torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8,
                                      generator=generator) for _ in range(2)],
                data_samples=samples)
    wrapper = build_optim_wrapper(model, dict(
        type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01)))
    before = model.decode_head.conv_seg.weight.detach().clone()
    losses = model.train_step(data, wrapper)
    assert all(torch.isfinite(v).all() for v in losses.values())
    assert not torch.equal(before, model.decode_head.conv_seg.weight)
    import cv2
    image = str(tmp_path / 'frame.png')
    cv2.imwrite(image, np.random.default_rng(0).integers(
        0, 256, (96, 128, 3), dtype=np.uint8))
    model.eval()
    result = inference_model(model, image)
    assert result.pred_sem_seg.data.shape == (1, 96, 128)


def test_mim_test_runs(tmp_path):
    """``mim test mmseg`` with a demo-config checkpoint of random weights
    on two generated frames: the configs' custom_imports load the plugin."""
    from mmengine.config import Config
    from mmseg.apis import init_model
    from sanet_mmseg.datasets import make_demo_dataset
    data = str(tmp_path / 'data')
    make_demo_dataset(data, num_train=1, num_val=2, size=(128, 64))
    model = init_model(osp.join(CONFIGS, 'sanet-s_demo.py'), device='cpu')
    ckpt = str(tmp_path / 'random.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), ckpt)
    cfg = Config.fromfile(osp.join(CONFIGS, 'sanet-s_demo.py'))
    cfg.test_dataloader.dataset.data_root = data
    cfg.test_dataloader.num_workers = 0
    cfg.test_dataloader.persistent_workers = False
    config = str(tmp_path / 'config.py')
    cfg.dump(config)
    out = subprocess.run(
        [sys.executable, '-m', 'mim', 'test', 'mmseg', config,
         '--checkpoint', ckpt, '--work-dir', str(tmp_path / 'work')],
        capture_output=True, text=True, cwd=REPO, timeout=600)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert re.search(r'Iter\(test\).*mIoU: [0-9.]+', out.stdout + out.stderr)

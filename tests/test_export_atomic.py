"""Exporting into a folder that holds an artefact: killed (SIGKILL) at any
point the folder holds the complete old or the complete new artefact,
leftovers are removed by the next export, another backend's files go
(issue #21, case 5); an undecodable calibration image is named (case 6)."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config

from mmseg.datasets import CityscapesDataset
from sanet_mmseg.deploy import (PipelineInputs, export_artefact,
                                load_predictor, read_meta)
from sanet_mmseg.deploy.replace import (CRASH_ENV, CRASH_POINTS, META_TEMP,
                                        TEMP_PREFIX, VERSION)
from test_deploy import CONFIG, random_segmentor
from tool_runner import run_script
from workflow_utils import REPO

SHAPE = (32, 64)
META = dict(
    classes=CityscapesDataset.METAINFO['classes'],
    palette=CityscapesDataset.METAINFO['palette'])
EXPORT = """
import sys
sys.path.insert(0, {tests!r})
from test_deploy import random_segmentor
from test_export_atomic import META, SHAPE
from sanet_mmseg.deploy import export_artefact
export_artefact(random_segmentor('s'), {out!r}, {backend!r}, 'fp32', SHAPE,
                META)
"""


def listing(folder):
    """The files under ``folder``, relative to it, sorted."""
    return sorted(
        osp.relpath(osp.join(root, f), folder)
        for root, _, files in os.walk(folder) for f in files)


def artefact_files(folder):
    """deploy.json and the model files of the version it names."""
    meta = read_meta(folder)
    return sorted(['deploy.json'] +
                  [osp.join(meta['model_dir'], f) for f in meta['files']])


def export_killed_at(out, backend, point):
    """Export in a new process that SIGKILLs itself at ``point``."""
    script = osp.join(osp.dirname(out), f'export_{point}.py')
    with open(script, 'w') as f:
        f.write(EXPORT.format(tests=osp.dirname(__file__), out=out,
                              backend=backend))
    env = dict(os.environ, **{CRASH_ENV: point})
    result = run_script(script, cwd=REPO, env=env, timeout=300)
    assert result.returncode == -9, result.stderr[-2000:]


def test_killed_exports_leave_a_complete_artefact(tmp_path):
    out = str(tmp_path / 'artefact')
    export_artefact(random_segmentor('s'), out, 'openvino', 'fp32', SHAPE,
                    META)
    other = {'openvino': 'onnxruntime', 'onnxruntime': 'openvino'}
    before_swap = CRASH_POINTS[:CRASH_POINTS.index('swapped')]
    for point in CRASH_POINTS:
        old = read_meta(out)
        export_killed_at(out, other[old['backend']], point)
        meta = read_meta(out)  # checked: complete, inside the folder
        expected = old['backend'] if point in before_swap else \
            other[old['backend']]
        assert meta['backend'] == expected, point
        if point in before_swap:
            assert meta['created'] == old['created'], point
        predictor = load_predictor(out)
        assert predictor.backend == expected
        # beside the artefact only the killed export's leftovers, which
        # nothing reads: its temporary folder, its version (or the old one)
        # not named by deploy.json, its temporary deploy.json; no model
        # file of either at the top
        extra = sorted(set(os.listdir(out)) -
                       {'deploy.json', meta['model_dir']})
        assert len(extra) <= 2, (point, extra)
        assert all(
            f.startswith(TEMP_PREFIX) or VERSION.match(f)
            or META_TEMP.match(f) for f in extra), (point, extra)
    # the next export removes the leftovers and the other backend's files
    export_artefact(random_segmentor('s'), out, 'onnxruntime', 'fp32',
                    SHAPE, META)
    assert listing(out) == artefact_files(out)
    assert read_meta(out)['files'] == ['model.onnx']


def test_old_layout_is_replaced(tmp_path):
    """An artefact of the old layout (model files beside deploy.json, no
    model_dir) opens, and an export replaces it completely."""
    out = str(tmp_path / 'artefact')
    export_artefact(random_segmentor('s'), out, 'onnxruntime', 'fp32',
                    SHAPE, META)
    meta = read_meta(out)
    os.replace(meta['paths'][0], osp.join(out, 'model.onnx'))
    os.rmdir(osp.join(out, meta['model_dir']))
    import json
    with open(osp.join(out, 'deploy.json')) as f:
        raw = json.load(f)
    del raw['model_dir']
    with open(osp.join(out, 'deploy.json'), 'w') as f:
        json.dump(raw, f)
    assert load_predictor(out).backend == 'onnxruntime'
    export_artefact(random_segmentor('s'), out, 'openvino', 'fp32', SHAPE,
                    META)
    assert listing(out) == artefact_files(out)
    assert 'model.onnx' not in os.listdir(out)


def test_refuses_a_folder_of_other_files(tmp_path):
    (tmp_path / 'notes.txt').write_text('mine')
    with pytest.raises(FileExistsError, match=r"\['notes.txt'\].*not part"):
        export_artefact(random_segmentor('s'), str(tmp_path), 'onnxruntime',
                        'fp32', SHAPE, META)
    assert os.listdir(tmp_path) == ['notes.txt']


@pytest.mark.parametrize('content', [b'', b'\x89PNG\r\n\x1a\n truncated'])
def test_undecodable_calibration_image_is_named(tmp_path, content):
    folder = tmp_path / 'calib'
    folder.mkdir()
    cv2.imwrite(str(folder / 'a.png'),
                np.random.randint(0, 255, (64, 128, 3), np.uint8))
    (folder / 'b.png').write_bytes(content)
    calib = PipelineInputs(Config.fromfile(CONFIG), str(folder),
                           shape=SHAPE)
    assert calib[0].shape == (1, 3, *SHAPE)
    with pytest.raises(ValueError, match=r'cannot read image .*b\.png'):
        export_artefact(random_segmentor('s'), str(tmp_path / 'out'),
                        'onnxruntime', 'int8', SHAPE, META, calib)
    assert not osp.exists(tmp_path / 'out' / 'deploy.json')
    assert os.listdir(tmp_path / 'out') == []

"""tools/analysis_tools/check_dataset.py and tools/train.py --check-data on
a copy of the generated frames with one problem of each kind: all are
reported at once, with the files, and the exit status is 1."""
import os.path as osp
import shutil

import mmcv
import numpy as np
import pytest

from workflow_utils import REPO, small_config
from tool_runner import run_script

TRAIN = 'gtFine/train/demotown/demotown_{:06d}_000019_gtFine_labelTrainIds.png'
IMAGE = 'leftImg8bit/train/demotown/demotown_{:06d}_000019_leftImg8bit.png'


def config(data_root, work_dir):
    return small_config(data_root, work_dir, config='sanet-s_demo.py')


@pytest.fixture
def broken(generated_cityscapes_mini, tmp_path):
    """A copy of the generated frames (5 train, 2 val) with: an image that
    is no image, an image without label, a label that is no image, a label
    of another size, label values outside the 7 classes and 255, a label
    without image. Returns the root and the expected (kind, file) lines."""
    root = str(tmp_path / 'data')
    shutil.copytree(generated_cityscapes_mini, root)
    path = lambda pattern, i: osp.join(root, pattern.format(i))  # noqa
    with open(path(IMAGE, 0), 'wb') as f:
        f.write(b'not a png')
    shutil.os.remove(path(TRAIN, 1))
    with open(path(TRAIN, 2), 'wb') as f:
        f.write(b'\x89PNG truncated')
    mmcv.imwrite(np.zeros((16, 32), np.uint8), path(TRAIN, 3))
    label = mmcv.imread(path(TRAIN, 4), 'unchanged')
    label[0, :3] = [50, 7, 254]  # 7 (traffic sign) is mapped to 255
    mmcv.imwrite(label, path(TRAIN, 4))
    mmcv.imwrite(label, path(TRAIN, 9))
    expected = [
        ('unreadable image', path(IMAGE, 0)),
        ('missing label', path(TRAIN, 1)),
        ('unreadable label', path(TRAIN, 2)),
        ('label without image', path(TRAIN, 9)),
        ('size mismatch', path(TRAIN, 3)),
        ('label values', path(TRAIN, 4)),
    ]
    return root, expected


def run(*args):
    return run_script(*args, cwd=REPO, timeout=300)


def test_check_dataset_reports_all_problems(broken, tmp_path):
    root, expected = broken
    out = run('tools/analysis_tools/check_dataset.py',
              config(root, tmp_path / 'work'), '--nproc', '2')
    assert out.returncode == 1, out.stdout + out.stderr
    for kind, path in expected:
        assert f'{kind}: {path}: ' in out.stdout, (kind, out.stdout)
    assert 'values [50, 254]: 7 classes (0-6), ignore index 255' in \
        out.stdout
    assert 'label 32x16 (WxH)' in out.stdout
    # 7 images, 6 labels (one missing) of train and val
    assert ('13 files read in' in out.stdout
            and '6 problems (1 unreadable image, 1 missing label, 1 '
            'unreadable label, 1 label without image, 1 size mismatch, 1 '
            'label values)' in out.stdout), out.stdout
    assert 'task/s' in out.stdout  # MMEngine's progress bar


def test_check_dataset_clean_and_splits(generated_cityscapes_mini,
                                        tmp_path):
    cfg = config(generated_cityscapes_mini, tmp_path)
    out = run('tools/analysis_tools/check_dataset.py', cfg)
    assert out.returncode == 0, out.stdout + out.stderr
    assert '14 files read in' in out.stdout and 'no problems' in out.stdout
    out = run('tools/analysis_tools/check_dataset.py', cfg, '--splits',
              'val')
    assert '4 files read in' in out.stdout, out.stdout


def test_train_check_data_stops_before_training(broken, tmp_path):
    root, expected = broken
    work_dir = tmp_path / 'work'
    out = run('tools/train.py', config(root, work_dir), '--check-data')
    assert out.returncode == 1, out.stdout + out.stderr
    for kind, path in expected:
        assert f'{kind}: {path}: ' in out.stdout, (kind, out.stdout)
    assert 'Iter(train)' not in out.stdout + out.stderr
    assert not list(work_dir.glob('*.pth'))

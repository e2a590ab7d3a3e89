"""tools/analysis_tools/cityscapes_eval.py: Cityscapes' official evaluator
on a submission folder, against MMSeg's IoUMetric on the same predictions,
on the real frames and on the generated ones."""
import glob
import os
import os.path as osp
import re
import shutil
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from mmseg.datasets import CityscapesDataset
from mmseg.evaluation import CityscapesMetric, IoUMetric
from workflow_utils import REPO, random_checkpoint, run, small_config

sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))
import cityscapes_eval  # noqa: E402

CLASSES = CityscapesDataset.METAINFO['classes']


def val_labels(root):
    """The val frames' labelTrainIds paths and their frame names."""
    paths = sorted(
        glob.glob(osp.join(root, 'gtFine', 'val', '*',
                           '*_gtFine_labelTrainIds.png')))
    assert paths
    return paths, [
        osp.basename(p).replace('_gtFine_labelTrainIds.png', '')
        for p in paths
    ]


def has_instances(root):
    return bool(glob.glob(osp.join(root, 'gtFine', 'val', '*',
                                   '*_instanceIds.png')))


def test_numpy_in1d_shim():
    had = hasattr(np, 'in1d')
    a, b = np.array([[1, 5], [7, 2]]), [2, 7]
    with cityscapes_eval.numpy_in1d():
        np.testing.assert_array_equal(
            np.in1d(a, b), [False, False, True, True])
        np.testing.assert_array_equal(
            np.in1d(a, b, invert=True), [True, True, False, False])
    assert hasattr(np, 'in1d') == had  # NumPy is left as it was


def test_official_evaluator_equals_iou_metric(any_cityscapes_mini,
                                              tmp_path):
    """Predictions made from the labels (a band of each frame set to one
    class, another to a class not in the frame) scored by both."""
    paths, names = val_labels(any_cityscapes_mini)
    pred_dir = tmp_path / 'labelIds'
    pred_dir.mkdir()
    results = []
    for path, name in zip(paths, names):
        label = np.array(Image.open(path))
        pred = np.where(label == 255, 0, label).astype(np.int64)
        h, w = pred.shape
        pred[:h // 4] = 10  # sky
        pred[:, :w // 5] = 16  # train
        pred[h // 2:h // 2 + 20] = 0  # road
        Image.fromarray(
            CityscapesMetric._convert_to_label_id(pred).astype(
                np.uint8)).save(pred_dir / f'{name}_leftImg8bit.png')
        results.append(
            IoUMetric.intersect_and_union(
                torch.from_numpy(pred), torch.from_numpy(label.astype(
                    np.int64)), len(CLASSES), 255))
    totals = [sum(r[i] for r in results) for i in range(4)]
    iou = IoUMetric.total_area_to_metrics(*totals, ['mIoU'])['IoU']

    instances = has_instances(any_cityscapes_mini)
    out = tmp_path / 'result.json'
    official = cityscapes_eval.evaluate(
        str(pred_dir),
        osp.join(any_cityscapes_mini, 'gtFine', 'val'),
        instances=instances,
        out=str(out))
    assert out.is_file()
    scores = np.array([official['classScores'][c] for c in CLASSES])
    # IoUMetric counts in float32
    np.testing.assert_allclose(scores, iou, rtol=1e-6, equal_nan=True)
    assert official['averageScoreClasses'] == pytest.approx(
        np.nanmean(iou), rel=1e-6)
    assert 0 < np.nanmean(iou) < 1
    if instances:  # generated frames: nIoU of cars and people, via np.in1d
        assert 0 < official['classInstScores']['car'] <= 1


def test_submission_folder_scores_as_iou_metric(any_cityscapes_mini,
                                                tmp_path):
    """tools/test.py with the val-submission config writes the labelIds
    folder and prints IoUMetric's mIoU; the tool scores the folder the
    same."""
    config = small_config(
        any_cityscapes_mini,
        tmp_path,
        config='sanet-s_cityscapes-val-submission.py',
        **{'test_evaluator.1.output_dir': str(tmp_path / 'labelIds')})
    ckpt = random_checkpoint(config, str(tmp_path / 'random.pth'))
    out = run('tools/test.py', config, ckpt, '--work-dir', str(tmp_path))
    miou = float(re.search(r'Iter\(test\).*mIoU: ([0-9.]+)', out).group(1))
    args = [
        'tools/analysis_tools/cityscapes_eval.py',
        str(tmp_path / 'labelIds'),
        osp.join(any_cityscapes_mini, 'gtFine', 'val')
    ]
    if not has_instances(any_cityscapes_mini):
        args.append('--no-instances')
    out = run(*args)
    assert 'classes          IoU      nIoU' in out  # the official table
    official = float(re.search(r'class mIoU: ([0-9.]+)', out).group(1))
    print(f"mIoU: IoUMetric {miou}, official {official}")
    assert miou > 0 and official == miou


def test_missing_files_are_named(generated_cityscapes_mini, tmp_path):
    gt_dir = osp.join(generated_cityscapes_mini, 'gtFine', 'val')
    pred_dir = tmp_path / 'pred'
    with pytest.raises(FileNotFoundError, match='prediction folder not'):
        cityscapes_eval.evaluate(str(pred_dir), gt_dir)
    pred_dir.mkdir()
    paths, names = val_labels(generated_cityscapes_mini)
    shutil.copy(paths[0].replace('labelTrainIds', 'labelIds'),
                pred_dir / f'{names[0]}_leftImg8bit.png')
    with pytest.raises(FileNotFoundError,
                       match=f'Found no prediction for ground truth .*'
                       f'{names[1]}'):
        cityscapes_eval.evaluate(str(pred_dir), gt_dir)

    gt_copy = tmp_path / 'gt'
    shutil.copytree(gt_dir, gt_copy)
    os.remove(sorted(glob.glob(str(gt_copy / '*' / '*_instanceIds.png')))[0])
    with pytest.raises(FileNotFoundError,
                       match='1 of 2 .* no _gtFine_instanceIds.png'):
        cityscapes_eval.evaluate(str(pred_dir), str(gt_copy))

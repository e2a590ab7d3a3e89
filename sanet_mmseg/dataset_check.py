# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Read every image and label of a config's datasets before a long run and
report all their problems at once (tools/analysis_tools/check_dataset.py,
``tools/train.py --check-data``)."""
import os
import os.path as osp
import time
from collections import Counter
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from mmengine import fileio
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.utils import track_parallel_progress

from mmseg.registry import DATASETS, TRANSFORMS

# The kinds of problems, in the order the summary lists them
KINDS = ('dataset', 'unreadable image', 'missing label', 'unreadable label',
         'label without image', 'size mismatch', 'label values')


class Problem(NamedTuple):
    """One problem: its kind (one of :data:`KINDS`), the file, what is
    wrong."""
    kind: str
    path: str
    message: str


class Report(NamedTuple):
    """What :func:`check_datasets` found: ``files`` images and labels read
    in ``seconds``, and the problems."""
    files: int
    seconds: float
    problems: List[Problem]

    def summary(self) -> str:
        """One line: files, speed, problems by kind."""
        counts = Counter(p.kind for p in self.problems)
        rate = self.files / self.seconds if self.seconds > 0 else 0
        found = ', '.join(f'{counts[k]} {k}' for k in KINDS if counts[k])
        return (f'{self.files} files read in {self.seconds:.1f} s '
                f'({rate:.0f} files/s): ' +
                (f'{len(self.problems)} problems ({found})'
                 if self.problems else 'no problems'))


def split_datasets(cfg: Config, split: str) -> List[dict]:
    """The dataset configs of ``SPLIT_dataloader`` (the parts of a
    ``ConcatDataset``, the dataset of a ``RepeatDataset``), or []."""
    loader = cfg.get(f'{split}_dataloader')
    if not loader:
        return []
    todo, found = [loader['dataset']], []
    while todo:
        dataset = todo.pop(0)
        if 'datasets' in dataset:
            todo.extend(dataset['datasets'])
        elif 'dataset' in dataset:
            todo.append(dataset['dataset'])
        else:
            found.append(dataset)
    return found


def _load_step(pipeline: Sequence, names: Tuple[str, ...],
               default: dict) -> dict:
    """The config of the first pipeline step whose type is in ``names``."""
    for step in pipeline or []:
        if isinstance(step, dict) and step.get('type') in names:
            return dict(step)
    return default


def _pairs(dataset_cfg: dict) -> Tuple[List[dict], List[Problem]]:
    """The samples of one dataset config (image, label, how to load them)
    and the problems of its listing: a missing folder, labels without an
    image. The Checked datasets' listing stops at the first problem, so the
    listing of the dataset class they extend is used."""
    from sanet_mmseg.datasets import CheckedDatasetMixin
    dataset_cfg = dict(dataset_cfg, lazy_init=True)
    pipeline = dataset_cfg.get('pipeline', [])
    try:
        dataset = DATASETS.build(dataset_cfg)
        if isinstance(dataset, CheckedDatasetMixin):
            data_list = super(CheckedDatasetMixin, dataset).load_data_list()
        else:
            data_list = dataset.load_data_list()
    except Exception as e:
        where = dataset_cfg.get('data_root', '') or str(
            dataset_cfg.get('data_prefix', ''))
        return [], [Problem('dataset', where, f'{type(e).__name__}: {e}')]
    problems = []
    if not data_list:
        problems.append(
            Problem('dataset', dataset.data_prefix.get('img_path', ''),
                    f'no images ending in "{dataset.img_suffix}"'))
    image = _load_step(pipeline,
                       ('LoadImageFromFile', 'CheckedLoadImageFromFile'),
                       dict(type='LoadImageFromFile'))
    image['type'] = 'LoadImageFromFile'
    label = _load_step(pipeline, ('LoadAnnotations', ),
                       dict(type='LoadAnnotations'))
    checks = dict(
        image=image,
        label=label,
        num_classes=len(dataset.metainfo['classes']),
        ignore_index=dataset.ignore_index)
    samples = [dict(info, **checks) for info in data_list]
    ann_dir = dataset.data_prefix.get('seg_map_path')
    if (ann_dir and not dataset.ann_file and osp.isdir(ann_dir)):
        expected = {d['seg_map_path'] for d in data_list}
        for name in fileio.list_dir_or_file(
                ann_dir, list_dir=False, suffix=dataset.seg_map_suffix,
                recursive=True):
            path = osp.join(ann_dir, name)
            if path not in expected:
                problems.append(
                    Problem('label without image', path,
                            'no image ending in '
                            f'"{dataset.img_suffix}" for this label'))
    return samples, problems


_STEPS: Dict[str, object] = {}


def _step(cfg: dict):
    """A loading transform, built once per worker process."""
    key = repr(sorted(cfg.items()))
    if key not in _STEPS:
        _STEPS[key] = TRANSFORMS.build(cfg)
    return _STEPS[key]


def check_sample(sample: dict) -> List[Problem]:
    """Read one image and its label as the dataset's pipeline loads them
    (``LoadImageFromFile``, ``LoadAnnotations`` with the dataset's
    ``label_map`` and ``reduce_zero_label``); return their problems."""
    problems = []
    img_path, seg_path = sample['img_path'], sample.get('seg_map_path')
    shape = None
    try:
        loaded = _step(sample['image'])(dict(img_path=img_path))
        if loaded is None:
            raise ValueError('empty image')
        shape = loaded['img'].shape[:2]
    except Exception as e:
        problems.append(Problem('unreadable image', img_path, str(e)))
    if seg_path is None:
        return problems
    if not fileio.exists(seg_path):
        return problems + [
            Problem('missing label', seg_path, f'no label for {img_path}')
        ]
    try:
        seg = _step(sample['label'])(dict(
            seg_map_path=seg_path,
            label_map=sample.get('label_map'),
            reduce_zero_label=sample.get('reduce_zero_label', False),
            seg_fields=[]))['gt_seg_map']
    except Exception as e:
        return problems + [Problem('unreadable label', seg_path, str(e))]
    if shape is not None and seg.shape[:2] != shape:
        problems.append(
            Problem(
                'size mismatch', seg_path,
                f'label {seg.shape[1]}x{seg.shape[0]} (WxH), image '
                f'{img_path} {shape[1]}x{shape[0]}'))
    if seg.dtype == np.uint8:  # 3x faster than np.unique
        values = np.flatnonzero(np.bincount(seg.ravel(), minlength=256))
    else:
        values = np.unique(seg)
    num_classes, ignore = sample['num_classes'], sample['ignore_index']
    bad = values[((values >= num_classes) & (values != ignore))
                 | (values < 0)]
    if bad.size:
        problems.append(
            Problem(
                'label values', seg_path,
                f'values {bad.tolist()}: {num_classes} classes '
                f'(0-{num_classes - 1}), ignore index {ignore}'))
    return problems


def check_datasets(cfg: Config,
                   splits: Sequence[str] = ('train', 'val'),
                   nproc: Optional[int] = None) -> Report:
    """Read every image and label of the config's ``splits`` (``train``,
    ``val``, ``test``) in ``nproc`` processes (default: the CPUs this
    process may use), with MMEngine's progress bar.

    Returns:
        Report: the number of files read, the time, and all problems.
    """
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    if cfg.get('custom_imports'):
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**cfg.custom_imports)
    nproc = nproc or len(os.sched_getaffinity(0))
    samples, problems, seen = [], [], set()
    for split in splits:
        for dataset_cfg in split_datasets(cfg, split):
            key = repr(dataset_cfg)
            if key in seen:  # e.g. test_dataloader = val_dataloader
                continue
            seen.add(key)
            found, listing = _pairs(dataset_cfg)
            samples += found
            problems += listing
    start = time.time()
    if samples:
        results = track_parallel_progress(
            check_sample, samples, nproc,
            chunksize=max(1, min(16, len(samples) // (4 * nproc))))
        for found in results:
            problems += found
    missing = sum(p.kind == 'missing label' for p in problems)
    files = len(samples) + sum('seg_map_path' in s
                               for s in samples) - missing
    return Report(files, time.time() - start, problems)


def format_problems(problems: Sequence[Problem]) -> str:
    """The problems, one a line, grouped by kind."""
    order = {k: i for i, k in enumerate(KINDS)}
    return '\n'.join(
        f'{p.kind}: {p.path}: {p.message}'
        for p in sorted(problems, key=lambda p: (order[p.kind], p.path)))


__all__ = [
    'KINDS', 'Problem', 'Report', 'check_datasets', 'check_sample',
    'format_problems', 'split_datasets'
]

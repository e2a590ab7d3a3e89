# Copyright (c) sanet-mmseg contributors. All rights reserved.
from mmengine.config import Config

from mmseg.registry import DATASETS


def config_dataset_meta(cfg: Config, split: str = 'test') -> dict:
    """The ``classes`` and ``palette`` of a config's dataset.

    Args:
        cfg (Config): A segmentor config.
        split (str): Whose ``{split}_dataloader`` dataset: 'train', 'val'
            or 'test'. Default: 'test'.

    Returns:
        dict: ``classes`` and, where known, ``palette``: the ``metainfo``
        the config gives the dataset where it does, else its class's
        ``METAINFO``. A wrapper (``ConcatDataset``, ``RepeatDataset``)
        answers for its first part.
    """
    key = f'{split}_dataloader'
    if not cfg.get(key):
        raise KeyError(f'the config has no {key} to take the classes from')
    dataset = cfg[key].dataset
    while 'dataset' in dataset or 'datasets' in dataset:
        dataset = dataset.get('dataset') or dataset['datasets'][0]
    meta = dict(DATASETS.get(dataset.type).METAINFO)
    meta.update(dataset.get('metainfo') or {})
    if not meta.get('classes'):
        raise KeyError(f'the {split} dataset of the config ({dataset.type}) '
                       'names no classes: give them in its metainfo')
    return {k: meta[k] for k in ('classes', 'palette') if meta.get(k)}

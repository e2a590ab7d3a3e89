# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Where a config meets an artefact: the checks that they agree
(normalisation, classes, input size), made the same way by every tool."""
from typing import Optional, Sequence, Tuple

import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmseg.registry import MODELS
from ..datasets import config_dataset_meta
from .calibration import pipeline_shape
from .meta import META_FILE


class MismatchError(ValueError):
    """A config and an artefact that do not go together."""


def normalisation(mean: Sequence[float], std: Sequence[float],
                  bgr_to_rgb: bool) -> dict:
    """The ``preprocess`` entry of ``deploy.json``, rounded so that two
    of them compare equal when they normalise alike."""
    return dict(
        mean=[round(float(v), 4) for v in mean],
        std=[round(float(v), 4) for v in std],
        bgr_to_rgb=bool(bgr_to_rgb))


def preprocessor_normalisation(pre: nn.Module) -> dict:
    """:func:`normalisation` of a segmentor's data preprocessor."""
    if not all(getattr(pre, k, None) is not None for k in ('mean', 'std')):
        raise MismatchError('the data_preprocessor does not normalise (no '
                            'mean/std): a deployed model needs them')
    return normalisation(pre.mean.flatten().tolist(),
                         pre.std.flatten().tolist(), pre.channel_conversion)


def check_normalisation(pre: nn.Module, meta: dict) -> None:
    """Raise :class:`MismatchError` unless the data preprocessor ``pre``
    normalises as the artefact (``meta``) was exported for."""
    ours = preprocessor_normalisation(pre)
    theirs = normalisation(**meta['preprocess'])
    if ours != theirs:
        raise MismatchError(
            f'the config\'s data_preprocessor normalises as {ours}, the '
            f'artefact was exported for {theirs} ({META_FILE} key '
            '\'preprocess\'): give the config it was exported with')


def _aspect(shape: Sequence[int]) -> float:
    return shape[1] / shape[0]


def check_config(cfg: Config,
                 meta: dict,
                 split: str = 'test') -> Optional[Tuple[int, int]]:
    """Check that a config and an artefact go together, as every tool that
    takes both must before it runs anything.

    - Normalisation: the config's ``model.data_preprocessor`` (mean, std,
      BGR->RGB) is the artefact's.
    - Classes: the config's ``{split}_dataloader`` dataset names the
      artefact's classes, in its order (where the config has one).
    - Input size: an artefact of a fixed size has the aspect ratio of the
      config's test ``Resize`` (within 2%), so that resizing the images to
      it does not stretch them.

    Args:
        cfg (Config): The config.
        meta (dict): The artefact's checked meta data
            (:func:`sanet_mmseg.deploy.read_meta`).
        split (str): The dataloader whose classes are compared.
            Default: 'test'.

    Returns:
        tuple[int, int] | None: The (H, W) the images must be resized to
        (None: any size).

    Raises:
        MismatchError: naming what differs.
    """
    init_default_scope('mmseg')
    check_normalisation(MODELS.build(cfg.model.data_preprocessor), meta)
    if cfg.get(f'{split}_dataloader'):
        classes = list(config_dataset_meta(cfg, split)['classes'])
        if classes != list(meta['classes']):
            raise MismatchError(
                f'the artefact predicts {len(meta["classes"])} classes '
                f'({", ".join(meta["classes"][:4])}, ...; {META_FILE} key '
                f'\'classes\'), the config\'s {split} dataset has '
                f'{len(classes)} ({", ".join(classes[:4])}, ...)')
    shape = meta['input']['shape']
    if shape is None:
        return None
    shape = tuple(shape[2:])
    try:
        expected = pipeline_shape(cfg)
    except ValueError:  # no Resize to a scale: any aspect ratio
        return shape
    if abs(_aspect(shape) / _aspect(expected) - 1) > 0.02:
        raise MismatchError(
            f'the artefact takes {shape[0]}x{shape[1]} inputs ({META_FILE} '
            f'key \'input.shape\'), the config\'s test pipeline resizes to '
            f'{expected[0]}x{expected[1]}: another aspect ratio would '
            'stretch the images; export for the config\'s aspect ratio')
    return shape

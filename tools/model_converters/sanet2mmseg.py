# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Convert the SANet authors' checkpoints to MMSegmentation checkpoints.

Takes their released Cityscapes/CamVid ``.pt`` files, their training
``checkpoint*.pth.tar`` files and their ImageNet weights (or an ImageNet
checkpoint of configs/sanet/sanet-*_in1k.py). The variant and the class
count come from the tensors' shapes.
"""
import argparse
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Optional, Tuple

import torch

from sanet_mmseg.checkpoint import (AUTHORS_FORMS, IMAGENET_FORMS,
                                    convert_authors_checkpoint,
                                    convert_authors_state_dict,
                                    convert_to_mmpretrain, infer_arch)
from sanet_mmseg.fileio import atomic_path

CONFIG_DIR = osp.join(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))), 'configs', 'sanet')


def read_checkpoint(path: str) -> Tuple['OrderedDict[str, torch.Tensor]',
                                        str]:
    """Read one of the authors' checkpoint files as a flat state dict.

    Their released ``.pt`` files hold the tensors with the prefix
    ``model.``; their training ``checkpoint*.pth.tar`` files under
    ``state_dict`` beside the epoch and optimizer state; their ImageNet
    weights without prefix, possibly under ``state_dict`` alone. Read with
    ``weights_only=True``: a file that needs more is refused.

    Returns:
        tuple: the state dict without prefix, and the file's form, one of
        ``AUTHORS_FORMS`` ('mmpretrain': this project's classifier).
    """
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f'checkpoint not found: {path}') from None
    except Exception as e:  # torch raises UnpicklingError and others
        raise ValueError(
            f'{path} is not a plain tensor checkpoint (it cannot be read '
            f'with weights_only=True, so it is refused): {e}') from None
    form = 'imagenet'
    if isinstance(ckpt, dict) and 'state_dict' in ckpt:
        form = 'training' if len(ckpt) > 1 else form
        ckpt = ckpt['state_dict']
    if not isinstance(ckpt, dict) or not ckpt or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor)
            for k, v in ckpt.items()):
        raise ValueError(f'{path} holds no state dict of tensors')
    if any(k.startswith('backbone.backbone.') for k in ckpt):
        return OrderedDict(ckpt), 'mmpretrain'
    if any(k.startswith(('backbone.', 'model.backbone.')) for k in ckpt):
        raise ValueError(f'{path} is already an MMSeg checkpoint '
                         '(its keys start with "backbone.")')
    if any(k.startswith('model.') for k in ckpt):
        form = 'released'
    return OrderedDict((re.sub(r'^(model|module)\.', '', k), v)
                       for k, v in ckpt.items()), form


def default_config(arch: str, num_classes: int, form: str) -> str:
    """The config of the variant for the weights: Cityscapes for ImageNet
    weights (any class count) and for 19 classes, CamVid for 11."""
    dataset = 'cityscapes' if form in IMAGENET_FORMS else {
        19: 'cityscapes',
        11: 'camvid'
    }.get(num_classes)
    if dataset is None:
        raise ValueError(
            f'no default config for SANet-{arch.upper()} with {num_classes} '
            'classes: name one with --config')
    return osp.join(CONFIG_DIR, f'sanet-{arch}_{dataset}.py')


def convert(src: str,
            config: Optional[str] = None,
            form: Optional[str] = None,
            mmpretrain: bool = False) -> Tuple[dict, str]:
    """Convert the file ``src``.

    Args:
        src (str): The authors' file.
        config (str, optional): Config of the target model. Default: None
            (see :func:`default_config`; with ``mmpretrain`` the variant's
            ``sanet-*_in1k.py``).
        form (str, optional): One of ``AUTHORS_FORMS``. Default: None (told
            from the file's layout).
        mmpretrain (bool): Convert ImageNet weights for the MMPretrain
            classifier instead. Default: False.

    Returns:
        tuple(dict, str): The checkpoint and a report.
    """
    authors, detected = read_checkpoint(src)
    form = form or detected
    arch, num_classes = infer_arch(convert_authors_state_dict(authors, form))
    if mmpretrain:
        config = config or osp.join(CONFIG_DIR, f'sanet-{arch}_in1k.py')
        return convert_to_mmpretrain(authors, config, src)
    config = config or default_config(arch, num_classes, form)
    return convert_authors_checkpoint(authors, form, config, src)


def parse_args(args=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('src', help="the authors' checkpoint")
    parser.add_argument('dst', help='where to write the MMSeg checkpoint')
    parser.add_argument(
        '--config',
        help="config of the target model (default: the detected variant's "
        'Cityscapes config for ImageNet weights and 19 classes, its CamVid '
        'config for 11, its sanet-*_in1k.py with --mmpretrain)')
    parser.add_argument(
        '--form',
        choices=AUTHORS_FORMS,
        help="the file's form: released .pt (keys prefixed 'model.'), "
        'training checkpoint (state_dict + epoch/optimizer), ImageNet '
        'weights (bare state dict) or an MMPretrain classifier; told from '
        "the file's layout by default")
    parser.add_argument(
        '--mmpretrain',
        action='store_true',
        help='write the ImageNet weights for the MMPretrain classifier '
        '(configs/sanet/sanet-*_in1k.py) instead')
    return parser.parse_args(args)


def main(args=None):
    args = parse_args(args)
    ckpt, report = convert(args.src, args.config, args.form, args.mmpretrain)
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    with atomic_path(args.dst) as tmp:  # no truncated file on a failure
        torch.save(ckpt, tmp)
    print(report)
    print(f'saved {args.dst}')


if __name__ == '__main__':
    main()

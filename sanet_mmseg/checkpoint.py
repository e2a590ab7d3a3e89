# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""The authors' parameter names, and converting their checkpoints.

This is the only module that knows the reference implementation's key
names. :data:`AUTHORS_KEY_MAP` maps each of them (a regular expression) to
this project's name in an MMSeg ``EncoderDecoder``. Reading the files
and choosing a default config are left to
``tools/model_converters/sanet2mmseg.py``.
"""
import importlib
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, Iterable, List, Tuple

import torch

from .datasets import config_dataset_meta
from .fileio import atomic_path
from .models.backbones.sanet import SANet, sanet_structure

# (authors' key pattern, our key); patterns must match the whole key.
AUTHORS_KEY_MAP: List[Tuple[str, str]] = [
    # backbone
    (r'stom\.0\.(.+)', r'backbone.stem.0.conv.\1'),
    (r'stom\.1\.(.+)', r'backbone.stem.0.bn.\1'),
    (r'stom\.3\.(.+)', r'backbone.stem.1.conv.\1'),
    (r'stom\.4\.(.+)', r'backbone.stem.1.bn.\1'),
    (r'layer([1-6])\.(\d+)\.(conv|bn)(\d)\.(.+)',
     r'backbone.layer\1.\2.conv\4.\3.\5'),
    (r'layer([1-6])\.(\d+)\.downsample\.0\.(.+)',
     r'backbone.layer\1.\2.downsample.conv.\3'),
    (r'layer([1-6])\.(\d+)\.downsample\.1\.(.+)',
     r'backbone.layer\1.\2.downsample.bn.\3'),
    (r'dp([12])\.hconv\.(.+)', r'backbone.spatial_path\1.proj.conv.\2'),
    (r'dp([12])\.conv\.(\d+)\.0\.(.+)',
     r'backbone.spatial_path\1.convs.\2.conv.\3'),
    (r'dp([12])\.conv\.(\d+)\.1\.(.+)',
     r'backbone.spatial_path\1.convs.\2.bn.\3'),
    (r'down4\.0\.(.+)', r'backbone.down4.conv.\1'),
    (r'down4\.1\.(.+)', r'backbone.down4.bn.\1'),
    (r'down5\.0\.(.+)', r'backbone.down5.0.conv.\1'),
    (r'down5\.1\.(.+)', r'backbone.down5.0.bn.\1'),
    (r'down5\.3\.(.+)', r'backbone.down5.1.conv.\1'),
    (r'down5\.4\.(.+)', r'backbone.down5.1.bn.\1'),
    (r'compression\.0\.(.+)', r'backbone.compression.conv.\1'),
    (r'compression\.1\.(.+)', r'backbone.compression.bn.\1'),
    # APPPM neck: scaleN is the horizontal half of branch N, scaleNN the
    # vertical half; index 0 of each Sequential is the pooling
    (r'spp\.scale0\.0\.(.+)', r'neck.scales.0.bn.\1'),
    (r'spp\.scale0\.2\.(.+)', r'neck.scales.0.conv.\1'),
    (r'spp\.scale([1-4])\.1\.(.+)', r'neck.scales.\1.1.bn.\2'),
    (r'spp\.scale([1-4])\.3\.(.+)', r'neck.scales.\1.1.conv.\2'),
    (r'spp\.scale([1-3])\1\.1\.(.+)', r'neck.scales.\1.3.bn.\2'),
    (r'spp\.scale([1-3])\1\.3\.(.+)', r'neck.scales.\1.3.conv.\2'),
    (r'spp\.(compression|shortcut)\.0\.(.+)', r'neck.\1.bn.\2'),
    (r'spp\.(compression|shortcut)\.2\.(.+)', r'neck.\1.conv.\2'),
    (r'spp\.atten\.conv3\.(.+)', r'neck.attention.\1'),
    # SAD head
    (r'decoder\.conv_H\.(.+)', r'decode_head.fusion.conv_h.\1'),
    (r'decoder\.conv_W\.(.+)', r'decode_head.fusion.conv_w.\1'),
    (r'decoder\.conv_out\.(.+)', r'decode_head.fusion.conv_out.\1'),
    (r'final_layer\.bn1\.(.+)', r'decode_head.seg_head.conv.bn.\1'),
    (r'final_layer\.conv1\.(.+)', r'decode_head.seg_head.conv.conv.\1'),
    (r'final_layer\.bn2\.(.+)', r'decode_head.seg_head.norm.\1'),
    (r'final_layer\.conv2\.(.+)', r'decode_head.conv_seg.\1'),
    (r'seghead_extra\.bn1\.(.+)', r'decode_head.aux_head.conv.bn.\1'),
    (r'seghead_extra\.conv1\.(.+)', r'decode_head.aux_head.conv.conv.\1'),
    (r'seghead_extra\.bn2\.(.+)', r'decode_head.aux_head.norm.\1'),
    (r'seghead_extra\.conv2\.(.+)', r'decode_head.aux_cls_seg.\1'),
    (r'seghead_d\.bn1\.(.+)', r'decode_head.boundary_head.conv.bn.\1'),
    (r'seghead_d\.conv1\.(.+)', r'decode_head.boundary_head.conv.conv.\1'),
    (r'seghead_d\.bn2\.(.+)', r'decode_head.boundary_head.norm.\1'),
    (r'seghead_d\.conv2\.(.+)', r'decode_head.boundary_cls_seg.\1'),
]

# Tensors of the reference that the segmentor does not have: APPPM
# "process" units and a second boundary head that its forward never uses,
# and the ImageNet classifier (``classifier``; ``fc`` is not used either).
AUTHORS_UNUSED = {
    'spp.process*': r'spp\.process\d\..+',
    'seghead_d2.*': r'seghead_d2\..+',
    'fc.*': r'fc\..+',
    'classifier.*': r'classifier\..+',
}
# The authors' classifier Linear-BN1d-ReLU-Dropout-Linear in MMPretrain's
# StackedLinearClsHead
AUTHORS_CLASSIFIER_MAP = [
    (r'classifier\.0\.(.+)', r'head.layers.0.fc.\1'),
    (r'classifier\.1\.(.+)', r'head.layers.0.norm.\1'),
    (r'classifier\.4\.(.+)', r'head.layers.1.fc.\1'),
]
# The MMPretrain classifier (configs/sanet/sanet-*_in1k.py) holds the layers
# it shares with the segmentor under SANetClsBackbone: segmentor prefix ->
# classifier prefix, read both ways.
MMPRETRAIN_PREFIXES = {
    'backbone.': 'backbone.backbone.',
    'neck.': 'backbone.neck.',
    'decode_head.fusion.': 'backbone.fusion.',
}
# Layers whose shape follows the class count
CLASS_LAYERS = ('decode_head.conv_seg.', 'decode_head.aux_cls_seg.')
AUTHORS_FORMS = ('released', 'training', 'imagenet', 'mmpretrain')
IMAGENET_FORMS = ('imagenet', 'mmpretrain')


def rename(state_dict: Dict[str, torch.Tensor],
           mapping: Iterable[Tuple[str, str]]) -> Tuple[OrderedDict, list]:
    """Rename each key by the first (pattern, replacement) whose pattern
    matches it whole; return the renamed tensors and the unmatched keys."""
    out, rest = OrderedDict(), []
    for key, value in state_dict.items():
        for pattern, repl in mapping:
            if re.fullmatch(pattern, key):
                out[re.sub(pattern, repl, key)] = value
                break
        else:
            rest.append(key)
    return out, rest


def _prefix_map(reverse: bool = False) -> List[Tuple[str, str]]:
    """:data:`MMPRETRAIN_PREFIXES` as :func:`rename`'s mapping."""
    return [(re.escape(b if reverse else a) + '(.+)',
             (a if reverse else b) + r'\1')
            for a, b in MMPRETRAIN_PREFIXES.items()]


def convert_authors_state_dict(state_dict: Dict[str, torch.Tensor],
                               form: str = 'released') -> OrderedDict:
    """The authors' (or, for ``form='mmpretrain'``, the MMPretrain
    classifier's) tensors in the segmentor's names.

    Tensors the segmentor does not have (:data:`AUTHORS_UNUSED`, the
    MMPretrain head) are dropped by name; any other unmapped key is a
    KeyError naming it.
    """
    if form not in AUTHORS_FORMS:
        raise ValueError(f'form must be one of {AUTHORS_FORMS}, got {form}')
    if form == 'mmpretrain':
        state, rest = rename(state_dict, _prefix_map(reverse=True))
        unused = [r'head\..+']
    else:
        state, rest = rename(state_dict, AUTHORS_KEY_MAP)
        unused = AUTHORS_UNUSED.values()
    unknown = [k for k in rest if not any(re.fullmatch(p, k) for p in unused)]
    if unknown:
        raise KeyError('keys that are not part of an SANet checkpoint: ' +
                       ', '.join(unknown))
    return state


def infer_arch(state_dict: Dict[str, torch.Tensor]) -> Tuple[str, int]:
    """The SANet variant ('s', 'm' or 'l') and class count of a state dict
    in the segmentor's names (class count 0 without a main classifier)."""
    structure = sanet_structure(state_dict, 'backbone.')
    for arch, s in SANet.arch_settings.items():
        if structure == (s['depths'], tuple(map(len, s['dilations']))):
            cls = state_dict.get('decode_head.conv_seg.weight')
            return arch, 0 if cls is None else cls.shape[0]
    raise ValueError(
        f'not an SANet-S/M/L state dict: stage depths {structure[0]}, '
        f'spatial path lengths {structure[1]}')


def _build(config, scope: str) -> tuple:
    """The model of ``config`` (path or Config) from ``scope``'s registry,
    and the config."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    init_default_scope(scope)
    registry = importlib.import_module(f'{scope}.registry')
    return registry.MODELS.build(cfg.model), cfg


def convert_authors_checkpoint(authors: Dict[str, torch.Tensor], form: str,
                               config, source: str) -> Tuple[dict, str]:
    """Convert the tensors of an authors' checkpoint for a segmentor.

    Segmentation weights must fill the segmentor exactly, with their class
    count. ImageNet weights (form 'imagenet' or 'mmpretrain') initialise
    what fits by name and shape, as the authors' loader does; a classifier
    of another class count does not fit. Missing or unexpected keys and
    shape mismatches are errors (``load_state_dict``'s) naming them; the
    weights of another SANet variant are a ValueError.

    Args:
        authors (dict): The file's tensors, keys without prefix.
        form (str): One of :data:`AUTHORS_FORMS`.
        config (str | Config): Config of the target segmentor.
        source (str): The file, named in the checkpoint's meta.

    Returns:
        tuple(dict, str): The checkpoint ``{'meta', 'state_dict'}`` and a
        report of what was converted and what was left out.
    """
    state = convert_authors_state_dict(authors, form)
    arch, num_classes = infer_arch(state)
    imagenet = form in IMAGENET_FORMS
    model, cfg = _build(config, 'mmseg')
    if not imagenet and num_classes != model.decode_head.num_classes:
        raise ValueError(
            f'the weights classify {num_classes} classes, the config '
            f'{model.decode_head.num_classes}: use a config of '
            f'{num_classes} classes (its dataset names them)')
    ours = model.state_dict()
    unfit = [
        k for k, v in state.items() if imagenet and k.startswith(CLASS_LAYERS)
        and k in ours and v.shape != ours[k].shape
    ]
    report = ''.join(f'; does not fit: {k} {tuple(state.pop(k).shape)} '
                     f'(config {tuple(ours[k].shape)})' for k in unfit)
    missing, unexpected = model.load_state_dict(state, strict=not imagenet)
    if unexpected:
        raise KeyError('unexpected keys: ' + ', '.join(unexpected))

    meta = dict(sanet=dict(arch=arch, source=osp.basename(source), form=form))
    if imagenet:
        report = (f'SANet-{arch.upper()} ImageNet weights -> segmentation '
                  f'initialisation: {len(state)} of {len(ours)} tensors; '
                  'left to their initialisation: ' + (', '.join(
                      sorted({k.rsplit('.', 1)[0]
                              for k in missing})) or 'none') + report)
    else:
        meta['dataset_meta'] = config_dataset_meta(cfg, 'train')
        report = (f'SANet-{arch.upper()}, {num_classes} classes ({form} '
                  f'checkpoint): all {len(state)} tensors converted')
    for name, pattern in AUTHORS_UNUSED.items():
        n = sum(bool(re.fullmatch(pattern, k)) for k in authors)
        if n and form != 'mmpretrain':
            report += f'; dropped unused {name} ({n} tensors)'
    return dict(meta=meta, state_dict=state), report


def convert_to_mmpretrain(authors: Dict[str, torch.Tensor], config,
                          source: str) -> Tuple[dict, str]:
    """The authors' ImageNet weights -> the MMPretrain classifier of
    ``configs/sanet/sanet-*_in1k.py``: backbone, APPPM, SAD fusion and
    their ``classifier``. MMPretrain's hidden Linear has a bias where theirs
    has none: it is set to zero (BatchNorm follows it). Arguments and
    result as :func:`convert_authors_checkpoint`'s.
    """
    state, _ = rename(authors, AUTHORS_CLASSIFIER_MAP)
    if not state:
        raise KeyError(f'{source} has no ImageNet classifier (classifier.*)')
    seg = convert_authors_state_dict(authors)
    arch = infer_arch(seg)[0]
    shared, left = rename(seg, _prefix_map())
    state.update(shared)
    weight = state['head.layers.0.fc.weight']
    state['head.layers.0.fc.bias'] = weight.new_zeros(weight.shape[0])
    _build(config, 'mmpretrain')[0].load_state_dict(state, strict=True)
    report = (f'SANet-{arch.upper()} ImageNet weights -> MMPretrain '
              f'classifier: {len(state)} tensors; the seg units of the '
              'reference are not part of it: ' +
              ', '.join(sorted({k.rsplit('.', 1)[0] for k in left})))
    meta = dict(sanet=dict(arch=arch, source=osp.basename(source),
                           form='mmpretrain'))
    return dict(meta=meta, state_dict=state), report


def save_checkpoint(checkpoint: dict, path: str) -> None:
    """Write ``checkpoint`` to ``path`` atomically (a temporary file in the
    same folder, then a rename), so that no truncated file is left."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)

# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""The authors' parameter names, and converting their checkpoints.

This is the only module that knows the reference implementation's names.
Reading their files and choosing a default config are left to
``tools/model_converters/sanet2mmseg.py``.
"""
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, Iterable, Tuple

import torch

from .datasets import config_dataset_meta
from .models.backbones.sanet import SANet, sanet_structure


def conv_module(theirs: str, ours: str, conv: int = 0, bn: int = 1) -> list:
    """Their ``nn.Sequential`` module ``theirs`` holding a conv at index
    ``conv`` and its BN at ``bn`` -> our ConvModule ``ours``, as
    :data:`AUTHORS_KEY_MAP` rows."""
    return [(rf'{theirs}\.{conv}', f'{ours}.conv'),
            (rf'{theirs}\.{bn}', f'{ours}.bn')]


def seg_unit(theirs: str, ours: str, cls: str) -> list:
    """Their segmentation head ``theirs`` (bn1-relu-conv1-bn2-relu-conv2) ->
    our pre-activation unit ``decode_head.ours`` and classifier
    ``decode_head.cls``, as :data:`AUTHORS_KEY_MAP` rows."""
    return [(rf'{theirs}\.bn1', f'decode_head.{ours}.conv.bn'),
            (rf'{theirs}\.conv1', f'decode_head.{ours}.conv.conv'),
            (rf'{theirs}\.bn2', f'decode_head.{ours}.norm'),
            (rf'{theirs}\.conv2', f'decode_head.{cls}')]


# The authors' modules (patterns matching a module's whole name) -> ours in
# an MMSeg EncoderDecoder; tensors keep their names within the module.
AUTHORS_KEY_MAP = [
    # backbone
    *conv_module('stom', 'backbone.stem.0'),
    *conv_module('stom', 'backbone.stem.1', conv=3, bn=4),
    (r'layer([1-6])\.(\d+)\.(conv|bn)(\d)',
     r'backbone.layer\1.\2.conv\4.\3'),
    *conv_module(r'layer([1-6])\.(\d+)\.downsample',
                 r'backbone.layer\1.\2.downsample'),
    (r'dp([12])\.hconv', r'backbone.spatial_path\1.proj.conv'),
    *conv_module(r'dp([12])\.conv\.(\d+)',
                 r'backbone.spatial_path\1.convs.\2'),
    *conv_module('down4', 'backbone.down4'),
    *conv_module('down5', 'backbone.down5.0'),
    *conv_module('down5', 'backbone.down5.1', conv=3, bn=4),
    *conv_module('compression', 'backbone.compression'),
    # APPPM, pre-activation (BN first): scaleN is the horizontal half of
    # branch N, scaleNN the vertical half; index 0 of each is the pooling
    *conv_module(r'spp\.scale0', 'neck.scales.0', conv=2, bn=0),
    *conv_module(r'spp\.scale([1-4])', r'neck.scales.\1.1', conv=3, bn=1),
    *conv_module(r'spp\.scale([1-3])\1', r'neck.scales.\1.3', conv=3, bn=1),
    *conv_module(r'spp\.(compression|shortcut)', r'neck.\1', conv=2, bn=0),
    (r'spp\.atten\.conv3', 'neck.attention'),
    # SAD head
    (r'decoder\.conv_H', 'decode_head.fusion.conv_h'),
    (r'decoder\.conv_W', 'decode_head.fusion.conv_w'),
    (r'decoder\.conv_out', 'decode_head.fusion.conv_out'),
    *seg_unit('final_layer', 'seg_head', 'conv_seg'),
    *seg_unit('seghead_extra', 'aux_head', 'aux_cls_seg'),
    *seg_unit('seghead_d', 'boundary_head', 'boundary_cls_seg'),
]
# Their tensors that the segmentor does not have (patterns of whole keys):
# APPPM "process" units and a second boundary head that their forward never
# uses, and the ImageNet classifier (``classifier``; ``fc`` is unused too).
AUTHORS_UNUSED = {
    'spp.process*': r'spp\.process\d\..+',
    'seghead_d2.*': r'seghead_d2\..+',
    'fc.*': r'fc\..+',
    'classifier.*': r'classifier\..+',
}
# Their classifier Linear-BN1d-ReLU-Dropout-Linear in MMPretrain's
# StackedLinearClsHead
AUTHORS_CLASSIFIER_MAP = [(r'classifier\.0', 'head.layers.0.fc'),
                          (r'classifier\.1', 'head.layers.0.norm'),
                          (r'classifier\.4', 'head.layers.1.fc')]
# Segmentor prefix -> prefix in the MMPretrain classifier of
# configs/sanet/sanet-*_in1k.py, which holds the layers the two share.
MMPRETRAIN_PREFIXES = {
    'backbone.': 'backbone.backbone.',
    'neck.': 'backbone.neck.',
    'decode_head.fusion.': 'backbone.fusion.',
}
CLASS_LAYERS = (  # their shape follows the class count
    'decode_head.conv_seg.', 'decode_head.aux_cls_seg.')
AUTHORS_FORMS = ('released', 'training', 'imagenet', 'mmpretrain')
IMAGENET_FORMS = ('imagenet', 'mmpretrain')


def rename(state_dict: Dict[str, torch.Tensor],
           mapping: Iterable[Tuple[str, str]]) -> Tuple[OrderedDict, list]:
    """Rename each tensor's module (its key less the last name) by the first
    (pattern, replacement) whose pattern matches it whole; return the renamed
    tensors and the keys that none matches."""
    out, rest = OrderedDict(), []
    for key, value in state_dict.items():
        module, _, name = key.rpartition('.')
        for pattern, repl in mapping:
            match = re.fullmatch(pattern, module)
            if match:
                out[f'{match.expand(repl)}.{name}'] = value
                break
        else:
            rest.append(key)
    return out, rest


def mmpretrain_map(reverse: bool = False) -> list:
    """:data:`MMPRETRAIN_PREFIXES` as :func:`rename`'s mapping (reversed:
    classifier -> segmentor)."""
    pairs = MMPRETRAIN_PREFIXES.items()
    return [(re.escape(b if reverse else a) + '(.+)',
             (a if reverse else b) + r'\1') for a, b in pairs]


def convert_authors_state_dict(state_dict: Dict[str, torch.Tensor],
                               form: str = 'released') -> OrderedDict:
    """The authors' (for ``form='mmpretrain'``: the MMPretrain classifier's)
    tensors in the segmentor's names. Tensors the segmentor does not have
    (:data:`AUTHORS_UNUSED`, MMPretrain's head) are dropped; any other
    unmapped key is a KeyError naming it."""
    if form not in AUTHORS_FORMS:
        raise ValueError(f'form must be one of {AUTHORS_FORMS}, got {form}')
    mmpretrain = form == 'mmpretrain'
    state, rest = rename(
        state_dict, mmpretrain_map(True) if mmpretrain else AUTHORS_KEY_MAP)
    unused = [r'head\..+'] if mmpretrain else AUTHORS_UNUSED.values()
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


def modules(keys: Iterable[str]) -> str:
    """The modules of some tensors' keys, sorted, as text."""
    return ', '.join(sorted({k.rsplit('.', 1)[0] for k in keys})) or 'none'


def convert_authors_checkpoint(authors: Dict[str, torch.Tensor], form: str,
                               config, source: str) -> Tuple[dict, str]:
    """Convert the tensors of an authors' checkpoint for a segmentor.

    Segmentation weights must fill the segmentor exactly, with its class
    count. ImageNet weights (form 'imagenet' or 'mmpretrain') initialise
    what fits by name and shape, as the authors' loader does. Missing and
    unexpected keys and shape mismatches are ``load_state_dict``'s errors;
    the weights of another variant are the backbone's ValueError.

    Args:
        authors (dict): The file's tensors, keys without prefix.
        form (str): One of :data:`AUTHORS_FORMS`.
        config (str | Config): Config of the target segmentor.
        source (str): The file, named in the checkpoint's meta.

    Returns:
        tuple(dict, str): The checkpoint ``{'meta', 'state_dict'}`` and a
        report of what was converted and what was left out.
    """
    from mmseg.apis import init_model
    state = convert_authors_state_dict(authors, form)
    arch, num_classes = infer_arch(state)
    model = init_model(config, device='cpu')
    ours, imagenet = model.state_dict(), form in IMAGENET_FORMS
    if not imagenet and num_classes != model.decode_head.num_classes:
        raise ValueError(
            f'the weights classify {num_classes} classes, the config '
            f'{model.decode_head.num_classes}: use a config of '
            f'{num_classes} classes (its dataset names them)')
    unfit = [k for k, v in state.items() if imagenet and k in ours
             and k.startswith(CLASS_LAYERS) and v.shape != ours[k].shape]
    unfit = ''.join(f'; does not fit: {k} {tuple(state.pop(k).shape)} '
                    f'(config {tuple(ours[k].shape)})' for k in unfit)
    missing, unexpected = model.load_state_dict(state, strict=not imagenet)
    if unexpected:
        raise KeyError('unexpected keys: ' + ', '.join(unexpected))

    meta = dict(sanet=dict(arch=arch, source=osp.basename(source), form=form))
    if imagenet:
        report = (f'SANet-{arch.upper()} ImageNet weights -> segmentation '
                  f'initialisation: {len(state)} of {len(ours)} tensors; left '
                  f'to their initialisation: {modules(missing)}{unfit}')
    else:
        meta['dataset_meta'] = config_dataset_meta(model.cfg, 'train')
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
    from mmpretrain import get_model
    state, _ = rename(authors, AUTHORS_CLASSIFIER_MAP)
    if not state:
        raise KeyError(f'{source} has no ImageNet classifier (classifier.*)')
    seg = convert_authors_state_dict(authors)
    arch = infer_arch(seg)[0]
    shared, left = rename(seg, mmpretrain_map())
    state.update(shared)
    weight = state['head.layers.0.fc.weight']
    state['head.layers.0.fc.bias'] = weight.new_zeros(weight.shape[0])
    get_model(config).load_state_dict(state, strict=True)
    report = (f'SANet-{arch.upper()} ImageNet weights -> MMPretrain '
              f'classifier: {len(state)} tensors; the seg units of the '
              f'reference are not part of it: {modules(left)}')
    meta = dict(sanet=dict(arch=arch, source=osp.basename(source),
                           form='mmpretrain'))
    return dict(meta=meta, state_dict=state), report

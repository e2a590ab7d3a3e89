# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""The authors' parameter names, and reading their checkpoints.

This is the only module that knows the reference implementation's key
names. :data:`AUTHORS_KEY_MAP` maps each of them (a regular expression) to
this project's name in an MMSeg ``EncoderDecoder``.
"""
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, Iterable, List, Optional, Tuple

import torch

from .fileio import atomic_path
from .models.backbones.sanet import SANet

# (authors' key pattern, our key); patterns must match the whole key.
AUTHORS_KEY_MAP: List[Tuple[str, str]] = [
    # backbone
    (r'stom\.0\.(.+)', r'backbone.stem.0.conv.\1'),
    (r'stom\.1\.(.+)', r'backbone.stem.0.bn.\1'),
    (r'stom\.3\.(.+)', r'backbone.stem.1.conv.\1'),
    (r'stom\.4\.(.+)', r'backbone.stem.1.bn.\1'),
    (r'layer([1-6])\.(\d+)\.conv(\d)\.(.+)', r'backbone.layer\1.\2.conv\3.conv.\4'),
    (r'layer([1-6])\.(\d+)\.bn(\d)\.(.+)', r'backbone.layer\1.\2.conv\3.bn.\4'),
    (r'layer([1-6])\.(\d+)\.downsample\.0\.(.+)',
     r'backbone.layer\1.\2.downsample.conv.\3'),
    (r'layer([1-6])\.(\d+)\.downsample\.1\.(.+)',
     r'backbone.layer\1.\2.downsample.bn.\3'),
    (r'dp([12])\.hconv\.(.+)', r'backbone.spatial_path\1.proj.conv.\2'),
    (r'dp([12])\.conv\.(\d+)\.0\.(.+)', r'backbone.spatial_path\1.convs.\2.conv.\3'),
    (r'dp([12])\.conv\.(\d+)\.1\.(.+)', r'backbone.spatial_path\1.convs.\2.bn.\3'),
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

# Tensors of the reference that its segmentation forward never uses: APPPM
# "process" units, a second boundary head, and the ImageNet classifier.
AUTHORS_UNUSED = {
    'spp.process*': r'spp\.process\d\..+',
    'seghead_d2.*': r'seghead_d2\..+',
    'fc.*': r'fc\..+',
    'classifier.*': r'classifier\..+',
}
# The authors' ImageNet classifier on the pooled decoder feature.
AUTHORS_CLASSIFIER = r'classifier\..+'

# Prefixes of the parts a segmentation model shares with the ImageNet
# model (backbone, APPPM and the SAD fusion); the seg units are not shared.
SHARED_WITH_IMAGENET = ('backbone.', 'neck.', 'decode_head.fusion.')


AUTHORS_FORMS = ('released', 'training', 'imagenet', 'mmpretrain')

# The MMPretrain classifier (configs/sanet/sanet-*_in1k.py) holds the shared
# layers under SANetClsBackbone; (segmentor name, classifier name).
SEGMENTOR_TO_MMPRETRAIN = [
    (r'backbone\.(.+)', r'backbone.backbone.\1'),
    (r'neck\.(.+)', r'backbone.neck.\1'),
    (r'decode_head\.fusion\.(.+)', r'backbone.fusion.\1'),
]
MMPRETRAIN_TO_SEGMENTOR = [
    (r'backbone\.backbone\.(.+)', r'backbone.\1'),
    (r'backbone\.neck\.(.+)', r'neck.\1'),
    (r'backbone\.fusion\.(.+)', r'decode_head.fusion.\1'),
]
# The authors' classifier Linear-BN1d-ReLU-Dropout-Linear in MMPretrain's
# StackedLinearClsHead
AUTHORS_CLASSIFIER_MAP = [
    (r'classifier\.0\.(.+)', r'head.layers.0.fc.\1'),
    (r'classifier\.1\.(.+)', r'head.layers.0.norm.\1'),
    (r'classifier\.4\.(.+)', r'head.layers.1.fc.\1'),
]


def read_authors_checkpoint(
        path: str) -> Tuple['OrderedDict[str, torch.Tensor]', str]:
    """Read one of the authors' checkpoint files as a flat state dict.

    Their released ``.pt`` files hold the model's tensors with the prefix
    ``model.``; their training ``checkpoint*.pth.tar`` files hold them under
    ``state_dict`` beside the epoch and optimizer state; their ImageNet
    weights hold them without prefix, possibly under ``state_dict`` alone.
    Reads with ``weights_only=True``: a file that needs more is refused.

    Returns:
        tuple: the state dict without prefix, and the file's form, one of
        :data:`AUTHORS_FORMS`.
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
        if len(ckpt) > 1:
            form = 'training'
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
    out = OrderedDict()
    for k, v in ckpt.items():
        for prefix in ('model.', 'module.'):
            if k.startswith(prefix):
                k = k[len(prefix):]
                if prefix == 'model.':
                    form = 'released'
        out[k] = v
    return out, form


def _match_any(key: str, patterns: Iterable[str]) -> bool:
    return any(re.fullmatch(p, key) for p in patterns)


def convert_authors_state_dict(
        state_dict: Dict[str, torch.Tensor],
        keep: Iterable[str] = ()) -> 'OrderedDict[str, torch.Tensor]':
    """Rename the authors' tensors to this project's names.

    Args:
        state_dict (dict): The authors' keys without prefix.
        keep (Iterable[str]): Patterns of unused authors' tensors to keep
            under their own name (e.g. :data:`AUTHORS_CLASSIFIER`).

    Returns:
        OrderedDict: Our keys. Unused tensors are dropped by name.

    Raises:
        KeyError: naming every key that is neither mapped nor known unused.
    """
    out, unknown = OrderedDict(), []
    for key, value in state_dict.items():
        if _match_any(key, keep):
            out[key] = value
            continue
        for pattern, repl in AUTHORS_KEY_MAP:
            if re.fullmatch(pattern, key):
                out[re.sub(pattern, repl, key)] = value
                break
        else:
            if not _match_any(key, AUTHORS_UNUSED.values()):
                unknown.append(key)
    if unknown:
        raise KeyError('keys that are not part of an SANet checkpoint: ' +
                       ', '.join(unknown))
    return out


def infer_arch(state_dict: Dict[str, torch.Tensor]) -> Tuple[str, int]:
    """Return the SANet variant ('s', 'm' or 'l') and class count of a
    state dict in this project's names (class count 0 when it has no main
    classifier, as ImageNet weights)."""

    def count(prefix):
        return len({
            k[len(prefix):].split('.')[0]
            for k in state_dict if k.startswith(prefix)
        })

    depths = tuple(
        count(f'backbone.layer{i}.') for i in (1, 2, 4, 5))
    paths = (count('backbone.spatial_path1.convs.'),
             count('backbone.spatial_path2.convs.'))
    for arch, setting in SANet.arch_settings.items():
        if depths == setting['depths'] and paths == tuple(
                len(d) for d in setting['dilations']):
            break
    else:
        raise ValueError(
            f'not an SANet-S/M/L state dict: stage depths {depths}, '
            f'spatial path lengths {paths}')
    cls = state_dict.get('decode_head.conv_seg.weight')
    return arch, 0 if cls is None else cls.shape[0]


def check_state_dict(state_dict: Dict[str, torch.Tensor],
                     model_state: Dict[str, torch.Tensor],
                     partial: bool = False) -> None:
    """Compare converted tensors with a model's, by name and shape.

    Args:
        state_dict (dict): Converted tensors.
        model_state (dict): ``model.state_dict()`` of the target model.
        partial (bool): Allow tensors of the model to be missing (an
            initialisation that covers only the shared layers).

    Raises:
        KeyError: naming unexpected and (unless ``partial``) missing keys,
            and every shape mismatch.
    """
    problems = []
    unexpected = [k for k in state_dict if k not in model_state]
    if unexpected:
        problems.append('unexpected keys: ' + ', '.join(unexpected))
    missing = [k for k in model_state if k not in state_dict]
    if missing and not partial:
        problems.append('missing keys: ' + ', '.join(missing))
    shapes = [
        f'{k} {tuple(v.shape)} (model {tuple(model_state[k].shape)})'
        for k, v in state_dict.items()
        if k in model_state and v.shape != model_state[k].shape
    ]
    if shapes:
        problems.append('shape mismatches: ' + ', '.join(shapes))
    if problems:
        raise KeyError('; '.join(problems))


def _default_config(config_dir: str, arch: str, num_classes: int) -> str:
    dataset = {0: 'cityscapes', 19: 'cityscapes', 11: 'camvid'}.get(num_classes)
    path = osp.join(config_dir, f'sanet-{arch}_{dataset}.py')
    if dataset is None or not osp.isfile(path):
        raise ValueError(
            f'no default config for SANet-{arch.upper()} with {num_classes} '
            'classes: name one with --config')
    return path


def convert_authors_checkpoint(src: str,
                               config: Optional[str] = None,
                               config_dir: str = 'configs/sanet',
                               form: Optional[str] = None,
                               mmpretrain: bool = False) -> Tuple[dict, str]:
    """Convert one of the authors' checkpoint files.

    Args:
        src (str): The authors' file (see :func:`read_authors_checkpoint`).
        config (str, optional): Config of the target segmentor. Default: the
            Cityscapes (19 classes, ImageNet weights) or CamVid (11 classes)
            config of the detected variant in ``config_dir``.
        config_dir (str): Where the default configs are.
        form (str, optional): One of :data:`AUTHORS_FORMS`; by default
            told from the file's layout. ImageNet weights (the authors' or
            this project's MMPretrain classifier's) become an initialisation
            of the layers the segmentor shares with the ImageNet model.
        mmpretrain (bool): Convert ImageNet weights for the MMPretrain
            classifier instead.

    Returns:
        tuple(dict, str): The checkpoint ``{'meta', 'state_dict'}`` and a
        report of what was converted and what was left out.
    """
    authors, detected = read_authors_checkpoint(src)
    form = form or detected
    if form not in AUTHORS_FORMS:
        raise ValueError(f'form must be one of {AUTHORS_FORMS}, got {form}')
    if mmpretrain:
        return convert_to_mmpretrain(authors, src, config_dir)
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS, MODELS

    imagenet = form in ('imagenet', 'mmpretrain')
    if form == 'mmpretrain':
        state = rename(authors, MMPRETRAIN_TO_SEGMENTOR)
    else:
        state = convert_authors_state_dict(authors)
    arch, num_classes = infer_arch(state)
    if imagenet:
        # the ImageNet model's seg units are not part of the segmentor's
        # initialisation: keep the layers both models share
        state = OrderedDict((k, v) for k, v in state.items()
                            if k.startswith(SHARED_WITH_IMAGENET))
    cfg = Config.fromfile(
        config or _default_config(config_dir, arch, num_classes))
    if not imagenet:
        cfg.model.decode_head.num_classes = num_classes
    init_default_scope('mmseg')
    model_state = MODELS.build(cfg.model).state_dict()
    check_state_dict(state, model_state, partial=imagenet)

    meta = dict(sanet=dict(arch=arch, source=osp.basename(src), form=form))
    if imagenet:
        left = sorted({k.rsplit('.', 1)[0] for k in model_state} -
                      {k.rsplit('.', 1)[0] for k in state})
        report = (f'SANet-{arch.upper()} ImageNet weights -> segmentation '
                  f'initialisation: {len(state)} of {len(model_state)} '
                  'tensors (backbone, APPPM, SAD fusion); not in the '
                  'ImageNet model, left to their initialisation: ' +
                  ', '.join(left))
    else:
        dataset = DATASETS.get(cfg.train_dataloader.dataset.type)
        meta['dataset_meta'] = dict(
            classes=dataset.METAINFO['classes'],
            palette=dataset.METAINFO['palette'])
        report = (f'SANet-{arch.upper()}, {num_classes} classes ({form} '
                  f'checkpoint): all {len(state)} tensors converted')
    dropped = {
        name: sum(bool(re.fullmatch(p, k)) for k in authors)
        for name, p in AUTHORS_UNUSED.items()
    }
    report += ''.join(f'; dropped unused {p} ({n} tensors)'
                      for p, n in dropped.items() if n)
    return dict(meta=meta, state_dict=state), report


def save_checkpoint(checkpoint: dict, path: str) -> None:
    """Write ``checkpoint`` to ``path`` atomically (a temporary file in the
    same folder, then a rename), so that no truncated file is left."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def rename(state_dict: Dict[str, torch.Tensor],
           mapping: List[Tuple[str, str]]) -> 'OrderedDict[str, torch.Tensor]':
    """Rename by the first matching (pattern, replacement); drop the rest."""
    out = OrderedDict()
    for key, value in state_dict.items():
        for pattern, repl in mapping:
            if re.fullmatch(pattern, key):
                out[re.sub(pattern, repl, key)] = value
                break
    return out


def convert_to_mmpretrain(authors: Dict[str, torch.Tensor], src: str,
                          config_dir: str) -> Tuple[dict, str]:
    """The authors' ImageNet weights -> the MMPretrain classifier of
    ``sanet-{arch}_in1k.py`` (backbone, APPPM, SAD fusion and classifier).

    MMPretrain's hidden Linear has a bias where the authors' has none; it is
    set to zero (a bias right before BatchNorm changes nothing).
    """
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    if not any(re.fullmatch(AUTHORS_CLASSIFIER, k) for k in authors):
        raise KeyError(f'{src} has no ImageNet classifier (classifier.*)')
    seg = convert_authors_state_dict(authors)
    arch, _ = infer_arch(seg)
    state = rename(seg, SEGMENTOR_TO_MMPRETRAIN)
    state.update(rename(authors, AUTHORS_CLASSIFIER_MAP))
    weight = state['head.layers.0.fc.weight']
    state['head.layers.0.fc.bias'] = weight.new_zeros(weight.shape[0])

    init_default_scope('mmpretrain')
    cfg = Config.fromfile(osp.join(config_dir, f'sanet-{arch}_in1k.py'))
    check_state_dict(state, MODELS.build(cfg.model).state_dict())
    left = sorted({
        k.rsplit('.', 1)[0]
        for k in seg if k.startswith('decode_head.')
        and not k.startswith('decode_head.fusion.')
    })
    report = (f'SANet-{arch.upper()} ImageNet weights -> MMPretrain '
              f'classifier: {len(state)} tensors; the seg units of the '
              'reference are not part of it: ' + ', '.join(left))
    meta = dict(sanet=dict(arch=arch, source=osp.basename(src),
                           form='mmpretrain'))
    return dict(meta=meta, state_dict=state), report

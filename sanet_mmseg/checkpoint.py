# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""The authors' parameter names, and reading their checkpoints.

This is the only module that knows the reference implementation's key
names. :data:`AUTHORS_KEY_MAP` maps each of them (a regular expression) to
this project's name in an MMSeg ``EncoderDecoder``.
"""
import re
from collections import OrderedDict
from typing import Dict, Iterable, List, Tuple

import torch

from .models.backbones.sanet import SANet

# (authors' key pattern, our key); patterns must match the whole key.
AUTHORS_KEY_MAP: List[Tuple[str, str]] = [
    # backbone
    (r'stom\.0\.(.+)', r'backbone.stem.0.conv.\1'),
    (r'stom\.1\.(.+)', r'backbone.stem.0.bn.\1'),
    (r'stom\.3\.(.+)', r'backbone.stem.1.conv.\1'),
    (r'stom\.4\.(.+)', r'backbone.stem.1.bn.\1'),
    (r'layer(\d)\.(\d+)\.conv(\d)\.(.+)', r'backbone.layer\1.\2.conv\3.conv.\4'),
    (r'layer(\d)\.(\d+)\.bn(\d)\.(.+)', r'backbone.layer\1.\2.conv\3.bn.\4'),
    (r'layer(\d)\.(\d+)\.downsample\.0\.(.+)',
     r'backbone.layer\1.\2.downsample.conv.\3'),
    (r'layer(\d)\.(\d+)\.downsample\.1\.(.+)',
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
    (r'decoder\.conv_H\.(.+)', r'decode_head.conv_h.\1'),
    (r'decoder\.conv_W\.(.+)', r'decode_head.conv_w.\1'),
    (r'decoder\.conv_out\.(.+)', r'decode_head.conv_out.\1'),
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
AUTHORS_UNUSED = [
    r'spp\.process\d\..+', r'seghead_d2\..+', r'fc\..+', r'classifier\..+'
]
# The authors' ImageNet classifier on the pooled decoder feature.
AUTHORS_CLASSIFIER = r'classifier\..+'

# Prefixes of the parts a segmentation model shares with the ImageNet
# model (backbone, APPPM and the SAD fusion); the seg units are not shared.
SHARED_WITH_IMAGENET = ('backbone.', 'neck.', 'decode_head.conv_h.',
                        'decode_head.conv_w.', 'decode_head.conv_out.')


def read_authors_checkpoint(path: str) -> 'OrderedDict[str, torch.Tensor]':
    """Read one of the authors' checkpoint files as a flat state dict.

    Accepts their released ``.pt`` files (keys prefixed ``model.``), their
    training ``checkpoint*.pth.tar`` (under ``state_dict``) and their
    ImageNet weights (no prefix, possibly under ``state_dict``). Reads with
    ``weights_only=True``: a file that needs more is refused.
    """
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f'checkpoint not found: {path}') from None
    except Exception as e:  # torch raises UnpicklingError and others
        raise ValueError(
            f'{path} is not a plain tensor checkpoint (it cannot be read '
            f'with weights_only=True, so it is refused): {e}') from None
    if isinstance(ckpt, dict) and 'state_dict' in ckpt:
        ckpt = ckpt['state_dict']
    if not isinstance(ckpt, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor)
            for k, v in ckpt.items()):
        raise ValueError(f'{path} holds no state dict of tensors')
    if any(k.startswith('backbone.') for k in ckpt):
        raise ValueError(f'{path} is already an MMSeg checkpoint '
                         '(its keys start with "backbone.")')
    out = OrderedDict()
    for k, v in ckpt.items():
        k = k[len('model.'):] if k.startswith('model.') else k
        k = k[len('module.'):] if k.startswith('module.') else k
        out[k] = v
    return out


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
            if not _match_any(key, AUTHORS_UNUSED):
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

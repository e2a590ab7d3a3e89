# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""The paper's analysis tools as functions: head outputs, painted labels,
boundary maps, Grad-CAM, receptive fields, multi-class boundaries."""
import copy
import glob
import os.path as osp
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
import torch
import torch.nn as nn

from mmseg.apis.utils import _preprare_data
from mmseg.models.utils import resize


IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')


def list_images(path: str) -> List[str]:
    """One image file, or the images in a folder (recursively, sorted).
    A missing path or a folder without images is an error naming it."""
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f'no image or folder at {path}')
    images = sorted(
        p for p in glob.glob(osp.join(path, '**', '*'), recursive=True)
        if p.lower().endswith(IMAGE_SUFFIXES))
    if not images:
        raise FileNotFoundError(f'no images ({", ".join(IMAGE_SUFFIXES)}) '
                                f'under {path}')
    return images


def prepare_inputs(model: nn.Module, img) -> Tuple[torch.Tensor, tuple]:
    """Run the config's test pipeline and data preprocessor on one image
    (path or BGR array). Returns the normalised batch (1, 3, h, w) and the
    image's original (H, W)."""
    data, _ = _preprare_data(img, model)
    data = model.data_preprocessor(data, False)
    return data['inputs'], data['data_samples'][0].ori_shape


def head_logits(model: nn.Module, img) -> Dict[str, torch.Tensor]:
    """Logits of the auxiliary, main and boundary heads of an SANet
    segmentor, each resized to the image, as (C, H, W)."""
    inputs, ori_shape = prepare_inputs(model, img)
    with torch.no_grad():
        outputs = model.decode_head.forward_all(model.extract_feat(inputs))
    return {
        name: resize(
            out,
            size=ori_shape,
            mode='bilinear',
            align_corners=model.decode_head.align_corners)[0]
        for name, out in zip(('aux', 'main', 'boundary'), outputs)
    }


def paint_labels(image: np.ndarray, labels: np.ndarray, palette,
                 opacity: float = 1.0) -> np.ndarray:
    """Colour a label map (H, W) with the palette (RGB), blended over the
    RGB image with ``opacity`` (1: the colours alone). 255 stays black."""
    colours = np.zeros((256, 3), np.uint8)
    colours[:len(palette)] = np.asarray(palette, np.uint8)
    painted = colours[labels].astype(np.float32)
    out = image.astype(np.float32) * (1 - opacity) + painted * opacity
    return np.clip(out, 0, 255).astype(np.uint8)


def paint_probability(image: np.ndarray, prob: np.ndarray,
                      opacity: float = 1.0) -> np.ndarray:
    """A probability map (H, W) in [0, 1] as a JET colour map (RGB),
    blended over the RGB image with ``opacity``."""
    jet = cv2.applyColorMap((prob * 255).astype(np.uint8), cv2.COLORMAP_JET)
    jet = cv2.cvtColor(jet, cv2.COLOR_BGR2RGB).astype(np.float32)
    out = image.astype(np.float32) * (1 - opacity) + jet * opacity
    return np.clip(out, 0, 255).astype(np.uint8)


class _LogitsAtInputSize(nn.Module):
    """The segmentor as an image -> logits (N, C, H, W) function."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return resize(
            self.model._forward(x),
            size=x.shape[2:],
            mode='bilinear',
            align_corners=self.model.decode_head.align_corners)


def grad_cam(model: nn.Module,
             img,
             category: int,
             layer: str = 'decode_head.fusion') -> np.ndarray:
    """Grad-CAM (``pytorch_grad_cam``) of one class: the class score summed
    over the pixels predicted as that class (over all pixels when there are
    none), explained at module ``layer``. Returns a map (H, W) in [0, 1] at
    the image's original size."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import \
        SemanticSegmentationTarget
    modules = dict(model.named_modules())
    if layer not in modules:
        raise KeyError(f'no module {layer!r} in the model; e.g. ' + ', '.join(
            n for n in modules if n.count('.') <= 1 and n))
    inputs, ori_shape = prepare_inputs(model, img)
    wrapper = _LogitsAtInputSize(model).eval()
    with torch.no_grad():
        labels = wrapper(inputs)[0].argmax(0).numpy()
    mask = (labels == category).astype(np.float32)
    if not mask.any():
        mask[:] = 1
    with GradCAM(model=wrapper, target_layers=[modules[layer]]) as cam:
        heat = cam(
            input_tensor=inputs,
            targets=[SemanticSegmentationTarget(category, mask)])[0]
    return cv2.resize(heat, (ori_shape[1], ori_shape[0]))


def rf_probe_model(model: nn.Module) -> nn.Module:
    """A float64 copy whose dependencies are those of ``model`` but all
    positive: convolutions average, BNs and activations are identities. The
    gradient of one output pixel is non-zero exactly on its theoretical
    receptive field."""
    probe = copy.deepcopy(model).double().eval()
    for name, m in list(probe.named_modules()):
        if isinstance(m, nn.Conv2d):
            nn.init.constant_(m.weight,
                              1.0 / m.weight[0].numel())
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.zero_()
            m.running_var.fill_(1 - m.eps)
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for name, m in list(probe.named_modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, (nn.ReLU, nn.ReLU6, nn.LeakyReLU)):
                setattr(m, child_name, nn.Identity())
    return probe


# The stages of the SANet segmentor whose receptive fields the tool reports.
SANET_STAGES = [
    'backbone.stem', 'backbone.layer1', 'backbone.layer2', 'backbone.layer3',
    'backbone.spatial_path1', 'backbone.layer4', 'backbone.layer5',
    'backbone.spatial_path2', 'backbone.layer6', 'neck.scales.0',
    'neck.scales.1', 'neck.scales.2', 'neck.scales.3', 'neck.scales.4',
    'neck', 'decode_head.fusion'
]


def _centre_gradients(model, x, stages, pick=None):
    """Gradient wrt ``x`` of the centre pixel (summed over channels) of
    each stage's output."""
    outputs = {}
    hooks = [
        dict(model.named_modules())[name].register_forward_hook(
            lambda m, a, out, name=name: outputs.__setitem__(
                name, out[-1] if isinstance(out, tuple) else out))
        for name in stages
    ]
    x = x.clone().requires_grad_(True)
    model.decode_head.fusion(model.extract_feat(x))
    for h in hooks:
        h.remove()
    grads = {}
    for name in stages:
        out = outputs[name]
        h, w = out.shape[2] // 2, out.shape[3] // 2
        g, = torch.autograd.grad(
            out[0, :, h, w].sum(), x, retain_graph=True, allow_unused=True)
        grads[name] = g[0].abs().sum(0)
    return grads


def receptive_fields(model: nn.Module,
                     input_size=(1024, 1024),
                     stages: Optional[List[str]] = None) -> Dict[str, dict]:
    """Theoretical receptive field of every stage: the extent of the input
    that the centre pixel of its output depends on (clipped to the input).

    Returns:
        dict: per stage, ``rf`` (height, width) and ``box`` (y0, x0, y1,
        x1) on the input.
    """
    stages = stages or SANET_STAGES
    probe = rf_probe_model(model)
    x = torch.zeros(1, 3, *input_size, dtype=torch.float64)
    grads = _centre_gradients(probe, x, stages)
    result = {}
    for name, g in grads.items():
        ys, xs = torch.nonzero(g > 0, as_tuple=True)
        box = (ys.min().item(), xs.min().item(), ys.max().item() + 1,
               xs.max().item() + 1)
        result[name] = dict(
            rf=(box[2] - box[0], box[3] - box[1]), box=box)
    return result


def effective_receptive_field(model: nn.Module, inputs: torch.Tensor,
                              stage: str = 'decode_head.fusion',
                              share: float = 0.95):
    """The effective receptive field: |gradient| of the centre pixel of a
    stage wrt the (normalised) input image, and the side of the smallest
    centred square holding ``share`` of it. Returns (map (H, W), side)."""
    model = copy.deepcopy(model).eval()
    g = _centre_gradients(model, inputs, [stage])[stage]
    g = (g / g.sum()).numpy()
    h, w = g.shape
    cy, cx = h // 2, w // 2
    side = 1
    for r in range(1, max(h, w)):
        if g[max(cy - r, 0):cy + r + 1, max(cx - r, 0):cx + r + 1].sum() \
                >= share:
            side = 2 * r + 1
            break
    else:
        side = max(h, w)
    return g, side

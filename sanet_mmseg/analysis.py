# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""The paper's analysis tools as functions: head outputs, painted labels and
probabilities, Grad-CAM, receptive fields. Images are BGR arrays as
``mmcv.imread`` returns them; pictures are RGB arrays."""
import copy
import importlib
import os.path as osp
from typing import Dict, List, Optional, Tuple

import cv2
import mmcv
import numpy as np
import torch
import torch.nn as nn
from mmengine.structures import PixelData

from mmseg.models.utils import resize
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer
from .deploy.calibration import ImagePipeline
from .fileio import atomic_path
from .models.segmentor_output import SegmentorOutput


def require(module: str):
    """Import an optional dependency of the analysis tools, or fail with an
    ImportError saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f'this tool needs {module}, which is not installed: install the '
            "analysis extra (pip install -e '.[analysis]', i.e. grad-cam "
            'and matplotlib)') from e


def save_image(picture: np.ndarray, path: str) -> None:
    """Write an RGB picture atomically, in the format of ``path``'s
    suffix."""
    ok, data = cv2.imencode(osp.splitext(path)[1], mmcv.rgb2bgr(picture))
    if not ok:
        raise ValueError(f'cannot encode a picture as {path}')
    with atomic_path(path) as tmp:
        data.tofile(tmp)


def prepare_inputs(model: nn.Module,
                   image: np.ndarray) -> Tuple[torch.Tensor, tuple]:
    """The normalised batch (1, 3, h, w) of one BGR image on the model's
    device, and the image's (H, W): the deployment's route
    (:class:`sanet_mmseg.deploy.ImagePipeline` on ``model.cfg``: the test
    dataloader's pipeline and the data preprocessor, as ``tools/test.py``
    computes them)."""
    inputs = ImagePipeline(model.cfg, from_array=True)(image)
    return inputs.to(next(model.parameters()).device), image.shape[:2]


def head_logits(model: nn.Module,
                image: np.ndarray) -> Dict[str, torch.Tensor]:
    """Logits (C, H, W) of the auxiliary, main and boundary heads of an
    SANet segmentor on one BGR image, each resized to the image."""
    inputs, ori_shape = prepare_inputs(model, image)
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


def paint_labels(image: np.ndarray,
                 labels: np.ndarray,
                 dataset_meta: dict,
                 opacity: float = 1.0) -> np.ndarray:
    """A label map (H, W) in the dataset's palette over an RGB image, by
    MMSeg's ``SegLocalVisualizer``.

    Args:
        image (np.ndarray): RGB image (H, W, 3).
        labels (np.ndarray): Class ids; ids outside the classes (255) are
            not painted.
        dataset_meta (dict): ``classes`` and ``palette``.
        opacity (float): Weight of the colours (1: the colours alone, black
            where nothing is painted). Default: 1.0.
    """
    visualizer = SegLocalVisualizer(alpha=opacity)
    # set directly: MMSeg 1.2.2's __init__ swaps its classes and palette
    visualizer.dataset_meta = dict(
        classes=dataset_meta['classes'], palette=dataset_meta['palette'])
    sample = SegDataSample(
        pred_sem_seg=PixelData(data=torch.as_tensor(labels)[None]))
    visualizer.add_datasample(
        'labels', image, sample, draw_gt=False, with_labels=False)
    return visualizer.get_image()


def paint_probability(image: np.ndarray,
                      prob: np.ndarray,
                      opacity: float = 1.0) -> np.ndarray:
    """A probability map (H, W) as a JET colour map over an RGB image.

    The colours keep the absolute scale (0 blue, 1 red), unlike MMEngine's
    ``draw_featmap``, which stretches every map to its own range.
    """
    jet = cv2.applyColorMap((prob * 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.addWeighted(image, 1 - opacity, mmcv.bgr2rgb(jet), opacity, 0)


def grad_cam(model: nn.Module,
             image: np.ndarray,
             category: int,
             layer: str = 'decode_head.fusion') -> np.ndarray:
    """Grad-CAM (``pytorch_grad_cam``) of one class on one BGR image.

    The target is the class score summed over the pixels predicted as that
    class (over all pixels when there are none), explained at the module
    named ``layer``. Returns a map (H, W) in [0, 1] at the image's size.
    """
    modules = dict(model.named_modules())
    if layer not in modules:
        raise KeyError(f'no module {layer!r} in the model; e.g. ' + ', '.join(
            n for n in modules if n.count('.') <= 1 and n))
    cam_module = require('pytorch_grad_cam')
    targets = require('pytorch_grad_cam.utils.model_targets')
    inputs, ori_shape = prepare_inputs(model, image)
    logits = SegmentorOutput(model, 'logits_full').eval()
    with torch.no_grad():
        scores = logits(inputs)[0]
    if not 0 <= category < len(scores):
        raise ValueError(
            f'class index {category}, but the model scores {len(scores)} '
            'classes (does its checkpoint name more classes than its head '
            'has?)')
    mask = (scores.argmax(0).numpy() == category).astype(np.float32)
    if not mask.any():
        mask[:] = 1
    with cam_module.GradCAM(
            model=logits, target_layers=[modules[layer]]) as cam:
        heat = cam(
            input_tensor=inputs,
            targets=[targets.SemanticSegmentationTarget(category, mask)])[0]
    return cv2.resize(heat, (ori_shape[1], ori_shape[0]))


def rf_probe_model(model: nn.Module) -> nn.Module:
    """A float64 copy of ``model`` whose dependencies are all positive:
    convolutions average, BNs and ReLUs are identities. The gradient of one
    output pixel is then non-zero exactly on its theoretical receptive
    field."""
    probe = copy.deepcopy(model).double().eval()
    for m in list(probe.modules()):
        if isinstance(m, nn.Conv2d):
            nn.init.constant_(m.weight, 1.0 / m.weight[0].numel())
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.zero_()
            m.running_var.fill_(1 - m.eps)
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        for name, child in m.named_children():
            if isinstance(child, (nn.ReLU, nn.ReLU6, nn.LeakyReLU)):
                setattr(m, name, nn.Identity())
    return probe


# The stages of the SANet segmentor whose receptive fields the tool reports.
SANET_STAGES = [
    'backbone.stem', 'backbone.layer1', 'backbone.layer2', 'backbone.layer3',
    'backbone.spatial_path1', 'backbone.layer4', 'backbone.layer5',
    'backbone.spatial_path2', 'backbone.layer6', 'neck.scales.0',
    'neck.scales.1', 'neck.scales.2', 'neck.scales.3', 'neck.scales.4',
    'neck', 'decode_head.fusion'
]


def centre_gradients(model: nn.Module, x: torch.Tensor,
                     stages: List[str]) -> Dict[str, torch.Tensor]:
    """|Gradient| (H, W) wrt the input ``x`` of the centre pixel (summed
    over channels) of each stage's output, through the SAD fusion."""
    modules = dict(model.named_modules())
    outputs = {}
    hooks = [
        modules[name].register_forward_hook(
            lambda m, a, out, name=name: outputs.__setitem__(
                name, out[-1] if isinstance(out, tuple) else out))
        for name in stages
    ]
    x = x.clone().requires_grad_(True)
    try:
        model.decode_head.fusion(model.extract_feat(x))
    finally:
        for h in hooks:
            h.remove()
    grads = {}
    for name in stages:
        out = outputs[name]
        centre = out[0, :, out.shape[2] // 2, out.shape[3] // 2].sum()
        g, = torch.autograd.grad(centre, x, retain_graph=True)
        grads[name] = g[0].abs().sum(0)
    return grads


def receptive_fields(model: nn.Module,
                     input_size: Tuple[int, int] = (1024, 1024),
                     stages: Optional[List[str]] = None) -> Dict[str, dict]:
    """Theoretical receptive field of every stage: the extent of the input
    that the centre pixel of its output depends on (clipped to the input).

    Args:
        model (nn.Module): An SANet segmentor.
        input_size (tuple[int]): Input (H, W). Default: (1024, 1024).
        stages (list[str], optional): Module names. Default: None
            (:data:`SANET_STAGES`).

    Returns:
        dict: Per stage, ``rf`` (height, width) and ``box`` (y0, x0, y1, x1)
        on the input.
    """
    probe = rf_probe_model(model)
    x = torch.zeros(1, 3, *input_size, dtype=torch.float64,
                    device=next(probe.parameters()).device)
    grads = centre_gradients(probe, x, stages or SANET_STAGES)
    result = {}
    for name, g in grads.items():
        ys, xs = torch.nonzero(g > 0, as_tuple=True)
        box = (ys.min().item(), xs.min().item(), ys.max().item() + 1,
               xs.max().item() + 1)
        result[name] = dict(rf=(box[2] - box[0], box[3] - box[1]), box=box)
    return result


def effective_receptive_field(model: nn.Module,
                              inputs: torch.Tensor,
                              stage: str = 'decode_head.fusion',
                              share: float = 0.95) -> Tuple[np.ndarray, int]:
    """The effective receptive field of a stage's centre pixel on a
    normalised input (1, 3, H, W): its |gradient| wrt the input, as shares
    summing to 1 (H, W), and the side of the smallest centred square holding
    ``share`` of it (Default: 0.95). ``inputs`` go to the model's device."""
    inputs = inputs.to(next(model.parameters()).device)
    g = centre_gradients(model.eval(), inputs, [stage])[stage]
    g = (g / g.sum()).cpu().numpy()
    h, w = g.shape
    cy, cx = h // 2, w // 2
    for r in range(max(h, w)):
        if g[max(cy - r, 0):cy + r + 1,
             max(cx - r, 0):cx + r + 1].sum() >= share:
            return g, 2 * r + 1
    return g, max(h, w)

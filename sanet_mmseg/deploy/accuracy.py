# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""int8 with an accuracy guard: the mIoU of a model on a config's
validation images (MMSeg's ``IoUMetric`` on the predictions
``tools/deployment/test.py`` makes) and NNCF's quantization with accuracy
control on it, which keeps the layers that cost most in float until the
mIoU drop is within a bound."""
import os.path as osp
import tempfile
from typing import Iterable, Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from torch import Tensor

from mmseg.evaluation import IoUMetric
from mmseg.registry import DATASETS
from .calibration import dataset_cfg, deploy_pipeline
from .predictors import Predictor, as_numpy


class ValidationSet:
    """Labelled images of a config's dataset through its test pipeline
    (resized to ``shape``), and the mIoU of a model on them.

    Args:
        cfg (Config): The segmentor config.
        shape (Sequence[int], optional): (H, W) the model takes; None: the
            pipeline's size. Default: None.
        num (int, optional): How many images, evenly spaced; None: all.
            Default: None.
        split (str): The dataloader to read. Default: 'val'.
    """

    def __init__(self,
                 cfg: Config,
                 shape: Optional[Sequence[int]] = None,
                 num: Optional[int] = None,
                 split: str = 'val'):
        init_default_scope('mmseg')
        pipeline = deploy_pipeline(cfg, shape, labels=True)
        self.dataset = DATASETS.build(dataset_cfg(cfg, split, pipeline))
        total = len(self.dataset)
        if total == 0:
            raise FileNotFoundError(f'the {split} dataset of the config has '
                                    'no images')
        num = total if num is None else min(num, total)
        self.indices = np.unique(
            np.linspace(0, total - 1, num).round().astype(int)).tolist()
        self.preprocessor = cfg.model.data_preprocessor
        self.align_corners = cfg.model.decode_head.get('align_corners',
                                                       False)
        self.classes = self.dataset.metainfo['classes']

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self):
        return (self.dataset[i] for i in self.indices)

    def miou(self, predictor: Predictor,
             items: Optional[Iterable[dict]] = None) -> float:
        """The mIoU (points) of ``predictor`` on ``items`` (default: all),
        predicted as :class:`DeployedSegmentor` predicts for
        ``tools/deployment/test.py``."""
        from .segmentor import DeployedSegmentor
        init_default_scope('mmseg')
        model = DeployedSegmentor(
            predictor, data_preprocessor=self.preprocessor,
            align_corners=self.align_corners)
        metric = IoUMetric()
        metric.dataset_meta = dict(classes=self.classes)
        with torch.no_grad():
            for item in self if items is None else items:
                outputs = model.test_step(pseudo_collate([item]))
                metric.process({}, [s.to_dict() for s in outputs])
        areas = [sum(r) for r in zip(*metric.results)]
        iou = IoUMetric.total_area_to_metrics(*areas, ['mIoU'])['IoU']
        return float(np.nanmean(iou) * 100) if np.isfinite(iou).any() \
            else 0.


class CompiledPredictor(Predictor):
    """An OpenVINO compiled model (as NNCF hands it to a validation
    function) as a :class:`Predictor`."""
    backend = 'openvino'

    def __init__(self, compiled):
        super().__init__('fp32')
        self.compiled = compiled

    def _run(self, inputs: Tensor) -> Tensor:
        return torch.from_numpy(self.compiled(as_numpy(inputs))[0].copy())


def quantized_ops(model) -> set:
    """The names of the operations of an OpenVINO model that take an input
    through a FakeQuantize (the int8 ones)."""
    return {
        op.get_friendly_name()
        for op in model.get_ordered_ops() if op.get_type_name() not in
        ('FakeQuantize', 'Result') and any(
            i.get_source_output().get_node().get_type_name() ==
            'FakeQuantize' for i in op.inputs())
    }


def guarded_quantize(model, calib, validation: ValidationSet,
                     max_drop: float, options: dict):
    """``nncf.quantize_with_accuracy_control`` on ``validation``'s mIoU.

    Args:
        model (ov.Model): The float32 model.
        calib (nncf.Dataset): The calibration inputs.
        validation (ValidationSet): The labelled images.
        max_drop (float): The largest mIoU drop allowed, in points.
        options (dict): Options of
            ``nncf.quantize_with_accuracy_control``.

    Returns:
        tuple[ov.Model, dict]: The model, and the report for
        ``deploy.json``'s ``accuracy``: ``max_drop``, ``fp32_miou``,
        ``plain_int8_miou``, ``int8_miou``, ``images`` and ``kept_float``
        (the layers kept in float).
    """
    import nncf
    from nncf.quantization.advanced_parameters import \
        AdvancedAccuracyRestorerParameters

    from .backends.openvino import openvino_core
    if validation is None:
        raise ValueError('max_drop needs a validation set (validation)')

    def validate(compiled, items):
        return validation.miou(CompiledPredictor(compiled), items)

    core = openvino_core()

    def miou(candidate):
        compiled = core.compile_model(
            candidate, 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})
        return validate(compiled, None)

    with tempfile.TemporaryDirectory(prefix='sanet-guard-') as tmp:
        quantized = nncf.quantize_with_accuracy_control(
            model, calib, nncf.Dataset(list(validation)), validate,
            max_drop=max_drop, drop_type=nncf.DropType.ABSOLUTE,
            advanced_accuracy_restorer_parameters=(
                AdvancedAccuracyRestorerParameters(
                    intermediate_model_dir=tmp)),
            **options)
        plain = core.read_model(osp.join(tmp, 'intermediate_model.xml'))
        kept = sorted(quantized_ops(plain) - quantized_ops(quantized))
        report = dict(
            metric='mIoU', max_drop=max_drop, images=len(validation),
            fp32_miou=round(miou(model), 2),
            plain_int8_miou=round(miou(plain), 2),
            int8_miou=round(miou(quantized), 2), kept_float=kept)
    return quantized, report

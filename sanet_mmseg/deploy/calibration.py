# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Model inputs from real images through a config's test pipeline: for
int8 calibration, label-agreement checks and the video demo."""
import copy
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope
from torch import Tensor

from mmseg.models import SegDataPreProcessor
from mmseg.registry import DATASETS, MODELS
from ..fileio import list_files, read_image

#: ``--calib config``: the images of the config's dataset.
FROM_CONFIG = 'config'


def deploy_pipeline(cfg: Config,
                    shape: Optional[Sequence[int]] = None,
                    from_array: bool = False,
                    labels: bool = False) -> List[dict]:
    """The config's test pipeline (``test_dataloader.dataset.pipeline``),
    for images without labels unless ``labels``.

    Args:
        cfg (Config): A segmentor config.
        shape (Sequence[int], optional): (H, W): replace the pipeline's
            ``Resize`` by one to exactly this size, which is the same for
            images of the aspect ratio the config expects (a model exported
            for a fixed size needs it for any other). Default: None.
        from_array (bool): Load BGR arrays (``dict(img=array)``) instead of
            files (``dict(img_path=path)``). Default: False.
        labels (bool): Keep ``LoadAnnotations`` (for evaluation).
            Default: False.

    Returns:
        list[dict]: The transforms.
    """
    pipeline = [
        dict(t) for t in copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
        if labels or t['type'] != 'LoadAnnotations'
    ]
    if not pipeline or not pipeline[0]['type'].startswith('LoadImageFrom'):
        raise ValueError('the test pipeline of the config must start with '
                         'an image loading transform, got '
                         f'{[t["type"] for t in pipeline]}')
    if from_array:
        pipeline[0] = dict(type='LoadImageFromNDArray')
    if shape is not None:
        pipeline = [t for t in pipeline if t['type'] != 'Resize']
        pipeline.insert(
            1, dict(type='Resize', scale=(shape[1], shape[0]),
                    keep_ratio=False))
    return pipeline


def pipeline_shape(cfg: Config) -> Tuple[int, int]:
    """The (H, W) that the test pipeline's ``Resize`` scales images to
    (exact for images of its aspect ratio)."""
    for t in cfg.test_dataloader.dataset.pipeline:
        if t['type'] == 'Resize' and t.get('scale') is not None:
            return int(t['scale'][1]), int(t['scale'][0])
    raise ValueError('the config\'s test pipeline has no Resize with a '
                     'scale: give the input size (--shape H W)')


class ImagePipeline:
    """An image (file or BGR array) to the normalised model input
    (1, 3, H, W) float32, through the config's test pipeline and data
    preprocessor as ``tools/test.py`` computes it: the one route from an
    image to a model input, for deployment, calibration, the demos and the
    analysis tools. A file is read by :func:`sanet_mmseg.fileio.read_image`
    (an undecodable one is a ValueError naming it) and then goes the
    array's way.

    Args:
        cfg (Config): The segmentor config.
        shape (Sequence[int], optional): (H, W) to resize to (see
            :func:`deploy_pipeline`). Default: None (the pipeline's).
        from_array (bool): Take BGR arrays instead of file paths.
            Default: False.
    """

    def __init__(self,
                 cfg: Config,
                 shape: Optional[Sequence[int]] = None,
                 from_array: bool = False):
        init_default_scope('mmseg')
        self.pipeline = Compose(deploy_pipeline(cfg, shape, True))
        self.preprocessor = MODELS.build(cfg.model.data_preprocessor)
        self.from_array = from_array
        # (C,) mean and std in the model's channel order, for the fast path
        pre = self.preprocessor
        self._plain = (
            type(pre) is SegDataPreProcessor and pre._enable_normalize
            and not pre.test_cfg)
        if self._plain:
            # (C, 256) float32: the normalised value of each uint8 value
            mean = pre.mean.flatten().numpy()[:, None]
            self._tables = np.empty((len(mean), 256), np.float32)
            np.subtract(np.arange(256, dtype=np.uint8), mean,
                        out=self._tables, dtype=np.float32)
            np.divide(self._tables, pre.std.flatten().numpy()[:, None],
                      out=self._tables)

    def __call__(self, img: Union[str, np.ndarray]) -> Tensor:
        if self.from_array != isinstance(img, np.ndarray):
            raise TypeError(f'this pipeline takes '
                            f'{"arrays" if self.from_array else "paths"}, '
                            f'got {type(img).__name__}')
        if not self.from_array:
            img = read_image(img)
        return self.preprocess(self.pipeline(dict(img=img)))

    def preprocess(self, data: dict) -> Tensor:
        """The data preprocessor on one packed sample of the pipeline.

        MMSeg's ``SegDataPreProcessor`` without test-time padding is
        looked up, channel by channel, in a table of the normalised value
        of each uint8 value (computed by the same float32 operations, so
        equal to the last bit, and ~30x faster: it matters beside
        inference in the video demo and tools/predict.py); any other
        preprocessor runs as is.
        """
        img = data['inputs']
        if self._plain and img.dtype == torch.uint8 and img.ndim == 3 \
                and img.shape[0] == len(self._tables):
            img = img.numpy()
            out = np.empty((1, ) + img.shape, np.float32)
            flip = self.preprocessor.channel_conversion and img.shape[0] == 3
            for c in range(img.shape[0]):
                cv2.LUT(img[2 - c if flip else c], self._tables[c, None],
                        dst=out[0, c])
            return torch.from_numpy(out)
        batch = dict(inputs=[img], data_samples=[data['data_samples']])
        with torch.no_grad():
            return self.preprocessor(batch, False)['inputs'].contiguous()


def dataset_cfg(cfg: Config, split: str, pipeline: List[dict]) -> Config:
    """The dataset of a split with ``pipeline``: a wrapper of one dataset
    (RepeatDataset, ...) unwrapped, each part of a ConcatDataset given
    ``pipeline``."""
    key = f'{split}_dataloader'
    if key not in cfg:
        raise KeyError(f'the config has no {key} to take images from')
    dataset = copy.deepcopy(cfg[key].dataset)
    while 'pipeline' not in dataset and 'dataset' in dataset:
        dataset = dataset.dataset
    for part in dataset.get('datasets', [dataset]):
        part.pipeline = pipeline
    return dataset


class PipelineInputs:
    """Normalised model inputs of real images, computed one by one as the
    config's test pipeline and data preprocessor compute them for
    ``tools/test.py`` (so resizing and normalisation are the evaluation's).

    A sequence of ``num`` tensors (1, 3, H, W) float32, evenly spaced over
    the images found (so that a sorted Cityscapes split gives every city);
    it can be iterated more than once (NNCF does) and holds no image in
    memory.

    Args:
        cfg (Config): The segmentor config.
        source (str): ``'config'``: the images of the config's dataset
            (split ``split``); otherwise an image file or a folder, searched
            recursively.
        num (int, optional): How many images; None: all. Default: None.
        shape (Sequence[int], optional): (H, W) to resize every image to
            (see :func:`deploy_pipeline`). Default: None (the pipeline's).
        split (str): The config's dataloader whose dataset
            ``source='config'`` reads: 'train', 'val' or 'test'.
            Default: 'train' (calibrating on the evaluation images would
            flatter the int8 model).
    """

    def __init__(self,
                 cfg: Config,
                 source: str,
                 num: Optional[int] = None,
                 shape: Optional[Sequence[int]] = None,
                 split: str = 'train'):
        if num is not None and num < 1:
            raise ValueError(f'num must be >= 1, got {num}')
        self.pipeline = ImagePipeline(cfg, shape)
        if source == FROM_CONFIG:
            dataset = DATASETS.build(dataset_cfg(cfg, split, []))
            self.paths = [
                dataset.get_data_info(i)['img_path']
                for i in range(len(dataset))
            ]
            if not self.paths:
                raise FileNotFoundError(
                    f'the {split} dataset of the config has no images')
            self.source = f'{split} split of the config\'s dataset'
        else:
            self.paths = list_files(source)
            self.source = source
        total = len(self.paths)
        num = total if num is None else min(num, total)
        self.indices = np.unique(
            np.linspace(0, total - 1, num).round().astype(int)).tolist()

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Tensor:
        return self.pipeline(self.paths[self.indices[i]])

    def __iter__(self) -> Iterator[Tensor]:
        return (self[i] for i in range(len(self)))

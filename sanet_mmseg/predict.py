# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Segmenting many inputs (images, videos, cameras; :mod:`.sources`) with
a model of a checkpoint or an artefact, in the three-thread pipeline of
:mod:`.video`: label maps (train ids, Cityscapes labelIds), painted images
and overlay videos written atomically, a summary, resumable runs; the
engine of tools/predict.py and of the image and video demos."""
import csv
import io
import json
import os
import os.path as osp
import re
import shutil
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmseg.models.utils import resize

from .cli import is_artefact, open_for_config
from .deploy import (PRECISIONS, ImagePipeline, Predictor, build_predictor,
                     load_predictor, load_segmentor, pipeline_shape)
from .fileio import atomic_path, read_image
from .inference import MAX_LOGITS_BYTES, argmax_upsampled, labels_of_logits
from .painting import blend_labels, palette_bgr
from .sources import Input, Problem
from .video import VideoFile, open_video, progress_bar, run_pipeline

#: Cityscapes' labelIds by class name (cityscapesscripts' ``labels``), as
#: the submission configs' ``CityscapesMetric`` writes them
CITYSCAPES_LABEL_IDS = {
    'road': 7, 'sidewalk': 8, 'building': 11, 'wall': 12, 'fence': 13,
    'pole': 17, 'traffic light': 19, 'traffic sign': 20, 'vegetation': 21,
    'terrain': 22, 'sky': 23, 'person': 24, 'rider': 25, 'car': 26,
    'truck': 27, 'bus': 28, 'train': 31, 'motorcycle': 32, 'bicycle': 33
}
#: what tools/predict.py writes, and the folder of each under --out-dir
OUTPUTS = {'labels': 'labels', 'label_ids': 'labelIds', 'painted': 'painted'}


def open_model(path: str,
               cfg: Config,
               backend: Optional[str] = None,
               precision: Optional[str] = None,
               shape: Optional[Sequence[int]] = None,
               threads: int = 0) -> Tuple[Predictor, dict, Optional[tuple]]:
    """(predictor, meta with ``classes``, ``palette`` and
    ``align_corners``, input (H, W) or None: the pipeline's) of MODEL: an
    artefact of export.py checked against ``cfg``
    (:func:`sanet_mmseg.cli.open_for_config`), or a checkpoint on
    ``backend`` (default torch) in ``precision`` (default fp32), built in
    memory. What does not fit ends the tool (SystemExit) with a message."""
    if is_artefact(path):
        meta, fixed = open_for_config(path, cfg)
        for name, given in (('backend', backend), ('precision', precision)):
            if given and given != meta[name]:
                raise SystemExit(f'--{name} {given}: the artefact is '
                                 f'{meta[name]}')
        if shape:
            raise SystemExit('--shape goes with a checkpoint; an artefact '
                             'has its own')
        return load_predictor(path, threads), meta, fixed
    backend, precision = backend or 'torch', precision or 'fp32'
    if precision not in PRECISIONS[backend] or precision == 'int8':
        raise SystemExit(
            f'{backend} {precision} from a checkpoint: choose from '
            f'{[p for p in PRECISIONS[backend] if p != "int8"]} (int8: '
            'export an artefact with tools/deployment/export.py)')
    model = load_segmentor(cfg, path)
    shape = tuple(shape) if shape else None
    if backend != 'torch' and shape is None:
        shape = pipeline_shape(cfg)
    predictor = build_predictor(model, backend, precision, shape,
                                threads=threads)
    meta = dict(model.dataset_meta,
                align_corners=model.decode_head.align_corners)
    return predictor, meta, shape


def default_streams(predictor: Predictor) -> int:
    """Images to infer at once: 2 for PyTorch on the CPU with 2 threads or
    more, each image on half of them (SANet-S at 1024x2048 on 2 cores:
    1.31 images/s against 1.27 and 1.29 for one image on both, measured
    side by side; and reading and writing hold up one stream, not both,
    as they hold up OpenMP's threads waiting for each other), else 1 (a
    GPU; ONNX Runtime and OpenVINO, which have their own threads)."""
    on_cpu = getattr(predictor, 'device', torch.device('cpu')).type == 'cpu'
    if predictor.backend == 'torch' and on_cpu and \
            torch.get_num_threads() >= 2:
        return 2
    return 1


def label_id_table(classes: Sequence[str]) -> Optional[np.ndarray]:
    """A (256,) uint8 lookup table from class index to Cityscapes labelId
    where every class is a Cityscapes class (by name), else None."""
    if not all(c in CITYSCAPES_LABEL_IDS for c in classes):
        return None
    table = np.zeros(256, np.uint8)
    table[:len(classes)] = [CITYSCAPES_LABEL_IDS[c] for c in classes]
    return table


class Segmenter:
    """Labels of BGR images as the evaluation computes them: the config's
    test pipeline and preprocessing (:class:`ImagePipeline`), the
    predictor's logits upsampled to the input and then to the image
    (``EncoderDecoder``'s two resizes), the argmax. Where the input is the
    image's size, only the pixels whose label is in doubt are upsampled
    (:func:`sanet_mmseg.inference.argmax_upsampled`, the same labels);
    beyond ``max_logits_bytes`` of full-size logits the argmax is resized
    instead (:func:`sanet_mmseg.inference.labels_of_logits`).

    Args:
        cfg (Config): The config (test pipeline, data preprocessor).
        predictor (Predictor): Normalised inputs -> logits.
        meta (dict): ``classes``, ``palette``, ``align_corners``.
        shape (Sequence[int], optional): Input (H, W); None: as the
            pipeline resizes. Default: None.
    """

    def __init__(self,
                 cfg: Config,
                 predictor: Predictor,
                 meta: dict,
                 shape: Optional[Sequence[int]] = None,
                 max_logits_bytes: int = MAX_LOGITS_BYTES):
        self.predictor = predictor
        self.pipeline = ImagePipeline(cfg, shape, from_array=True)
        self.classes = list(meta['classes'])
        self.colours = palette_bgr(meta['palette'])
        self.align_corners = bool(meta['align_corners'])
        self.max_logits_bytes = max_logits_bytes

    def inputs(self, img: np.ndarray) -> torch.Tensor:
        """The normalised input (1, 3, H, W) of a BGR image."""
        return self.pipeline(img)

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """The predictor's logits (C, h, w) of an input, float32 on the
        CPU."""
        return self.predictor(inputs)[0].float().cpu()

    def labels(self, logits: torch.Tensor, input_size: Tuple[int, int],
               size: Tuple[int, int]) -> np.ndarray:
        """The labels (H, W) uint8 at an image's ``size`` (H, W) of the
        logits of its input of ``input_size`` (H, W)."""
        if tuple(size) == tuple(input_size):
            return argmax_upsampled(logits, size, self.align_corners)
        logits = resize(logits[None].contiguous(), tuple(input_size),
                        mode='bilinear', align_corners=self.align_corners,
                        warning=False)[0]
        return labels_of_logits(logits, size, self.align_corners,
                                self.max_logits_bytes)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        """The labels (H, W) uint8 of a BGR image."""
        inputs = self.inputs(img)
        return self.labels(self.logits(inputs), inputs.shape[2:],
                           img.shape[:2])

    def paint(self, img: np.ndarray, labels: np.ndarray,
              opacity: float) -> np.ndarray:
        """The BGR image blended with its labels' colours."""
        return blend_labels(img, labels, self.colours, opacity)


#: PNG settings of photographs (painted images): each row's difference to
#: the pixel before, Huffman-coded; a 2048x1024 frame: 1.73 MB in 48 ms
#: against 1.81 MB in 64 ms with OpenCV's default (run-length, for labels;
#: older OpenCV has no filter setting)
PHOTO_PNG = (cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY
             ) + ((cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB)
                  if hasattr(cv2, 'IMWRITE_PNG_FILTER') else ())


def encode_png(array: np.ndarray, path: str, params: Sequence[int] = ()
               ) -> None:
    """Write ``array`` as a PNG (OpenCV's ``params``) atomically (a
    temporary file renamed)."""
    ok, data = cv2.imencode('.png', array, params)
    if not ok:
        raise ValueError(f'cannot encode {path}')
    with atomic_path(path) as tmp:
        data.tofile(tmp)


_TEMP = re.compile(r'^\..+\.(\d+)\.tmp(\.\w+)?$')


def remove_stale_temporaries(out_dir: str) -> List[str]:
    """Remove the temporary files and folders that a killed run left under
    ``out_dir`` (``.NAME.PID.tmp[.EXT]`` of a process no longer running);
    return them."""
    removed = []
    for root, dirs, files in os.walk(out_dir):
        for name in dirs + files:
            match = _TEMP.match(name)
            if not match or _running(int(match.group(1))):
                continue
            path = osp.join(root, name)
            if osp.isdir(path):
                shutil.rmtree(path)
                dirs.remove(name)
            else:
                os.remove(path)
            removed.append(path)
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Outputs:
    """Where the outputs of each input go under ``out_dir``: for an image
    NAME, ``labels/NAME.png`` (class indices, the train ids),
    ``labelIds/NAME.png`` (Cityscapes labelIds) and ``painted/NAME.png``;
    for a video or camera, one PNG per frame in ``labels/NAME/`` and
    ``labelIds/NAME/`` (``000000.png``, ...) and ``painted/NAME.mp4``.

    Args:
        out_dir (str): The output folder.
        kinds (Sequence[str]): Keys of :data:`OUTPUTS` to write.
    """

    def __init__(self, out_dir: str, kinds: Sequence[str]):
        unknown = set(kinds) - set(OUTPUTS)
        if unknown or not kinds:
            raise ValueError(f'outputs are some of {list(OUTPUTS)}, got '
                             f'{list(kinds)}')
        self.out_dir, self.kinds = out_dir, list(kinds)

    def paths(self, item: Input) -> Dict[str, str]:
        """{kind: path} of an input's outputs (a folder of frames for the
        labels of a video)."""
        paths = {}
        for kind in self.kinds:
            path = osp.join(self.out_dir, OUTPUTS[kind], item.name)
            if item.kind == 'image':
                path += '.png'
            elif kind == 'painted':
                path += '.mp4'
            paths[kind] = path
        return paths

    def complete(self, item: Input) -> bool:
        """Whether every output of a file input is there (written
        atomically, so there means complete); a camera never is."""
        return item.kind != 'camera' and all(
            osp.exists(p) for p in self.paths(item).values())


class _Video:
    """The outputs of one video being written: the painted video and the
    label frames in temporary folders, put in place by ``close``."""

    def __init__(self, paths: Dict[str, str], fps: float):
        self.paths, self.fps = paths, fps
        self.painted = None
        self.folders = {}
        for kind, path in paths.items():
            if kind == 'painted':
                os.makedirs(osp.dirname(path), exist_ok=True)
                self.painted = VideoFile(path, fps)
            else:
                tmp = osp.join(
                    osp.dirname(path),
                    f'.{osp.basename(path)}.{os.getpid()}.tmp')
                if osp.exists(tmp):
                    shutil.rmtree(tmp)
                os.makedirs(tmp)
                self.folders[kind] = tmp
        self.item = None
        self.frames = 0
        self.counts = None
        self.seconds = 0.
        self.size = None

    def close(self, keep: bool) -> None:
        if self.painted is not None:
            self.painted.close(keep)
        for kind, tmp in self.folders.items():
            if keep:
                if osp.exists(self.paths[kind]):
                    shutil.rmtree(self.paths[kind])
                os.replace(tmp, self.paths[kind])
            else:
                shutil.rmtree(tmp, ignore_errors=True)


class BadInput(Exception):
    """An input that cannot be segmented (with --strict: the run stops)."""


class Report:
    """What a run did: ``rows`` (one dict per input done: input, name,
    kind, width, height, frames, seconds of inference, class shares),
    ``problems`` (inputs left out, with reasons), ``resumed`` (inputs
    whose outputs were there), ``stats`` of the pipeline, ``interrupted``.
    """

    def __init__(self, classes: Sequence[str]):
        self.classes = list(classes)
        self.rows: List[dict] = []
        self.problems: List[Problem] = []
        self.resumed: List[Input] = []
        self.stats = None
        self.interrupted = False
        self.seconds = 0.

    def add(self, item: Input, size, frames: int, seconds: float,
            counts: np.ndarray) -> None:
        total = max(int(counts.sum()), 1)
        self.rows.append(dict(
            input=item.path, name=item.name, kind=item.kind, width=size[1],
            height=size[0], frames=frames, seconds=round(seconds, 4),
            shares={c: round(float(n) / total, 6)
                    for c, n in zip(self.classes, counts[:len(self.classes)])
                    if n}))

    def write(self, path: str) -> None:
        """The summary as JSON (``.json``) or CSV (otherwise; one column
        per class share, skipped inputs with their reason), atomically."""
        if path.lower().endswith('.json'):
            text = json.dumps(
                dict(inputs=self.rows,
                     skipped=[p._asdict() for p in self.problems],
                     resumed=[i.path for i in self.resumed],
                     classes=self.classes), indent=1)
        else:
            out = io.StringIO()
            fields = ['input', 'name', 'kind', 'status', 'reason', 'width',
                      'height', 'frames', 'seconds'] + self.classes
            writer = csv.DictWriter(out, fields)
            writer.writeheader()
            for row in self.rows:
                writer.writerow(dict(
                    {k: v for k, v in row.items() if k != 'shares'},
                    status='done', **row['shares']))
            for item in self.resumed:
                writer.writerow(dict(input=item.path, name=item.name,
                                     kind=item.kind, status='resumed'))
            for problem in self.problems:
                writer.writerow(dict(input=problem.path, status='skipped',
                                     reason=problem.reason))
            text = out.getvalue()
        folder = osp.dirname(osp.abspath(path))
        os.makedirs(folder, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, 'w', newline='') as f:
            f.write(text)


def predict(inputs: Sequence[Input],
            segmenter: Segmenter,
            outputs: Outputs,
            opacity: float = 0.5,
            resume: bool = False,
            strict: bool = False,
            progress: bool = True,
            problems: Sequence[Problem] = (),
            streams: int = 1) -> Report:
    """Segment ``inputs`` in a pipeline of threads (:func:`run_pipeline`:
    reading and preprocessing, inference in ``streams``, labels/painting/
    writing) and write their outputs atomically.

    A file that cannot be read (missing, corrupt, empty, not an image),
    a video that cannot be opened or ends before the frames it announces
    (its outputs are then not kept) is left out and listed in the
    report's ``problems``; with ``strict`` the first raises
    :class:`BadInput`. With ``resume``, inputs whose outputs are all there
    are left out (``resumed``). Ctrl-C stops (``interrupted``); a camera's
    outputs are then kept, an unfinished video's not.

    Args:
        inputs (Sequence[Input]): Of :func:`sanet_mmseg.sources.collect`.
        segmenter (Segmenter): The model.
        outputs (Outputs): What to write where.
        opacity (float): Of the painted labels. Default: 0.5.
        resume (bool): Leave out inputs done before. Default: False.
        strict (bool): Stop at the first bad input. Default: False.
        progress (bool): Show a progress bar. Default: True.
        problems (Sequence[Problem]): Found before (sources that gave
            nothing), put first in the report; with ``strict`` the first
            raises.
        streams (int): Images inferred at once (:func:`default_streams`),
            each with its share of torch's threads. Default: 1.
    """
    report = Report(segmenter.classes)
    report.problems += problems
    if strict and problems:
        raise BadInput(f'{problems[0].path}: {problems[0].reason}')
    ids = None
    if 'label_ids' in outputs.kinds:
        ids = label_id_table(segmenter.classes)
        if ids is None:
            raise ValueError('labelIds are written for Cityscapes classes '
                             f'only, the model has {segmenter.classes}')
    os.makedirs(outputs.out_dir, exist_ok=True)
    remove_stale_temporaries(outputs.out_dir)
    todo = []
    for item in inputs:
        if resume and outputs.complete(item):
            report.resumed.append(item)
        else:
            todo.append(item)
    total = 0
    for item in todo:
        if item.kind == 'image':
            total += 1
        elif item.kind == 'video' and osp.isfile(item.path):
            cap = cv2.VideoCapture(item.path)
            total += max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
            cap.release()

    def bad(path, reason):
        if strict:
            raise BadInput(f'{path}: {reason}')
        report.problems.append(Problem(path, reason))

    def read():
        for item in todo:
            if item.kind == 'image':
                try:
                    if not os.path.getsize(item.path):
                        raise ValueError('empty file (0 bytes)')
                    img = read_image(item.path)
                except (OSError, ValueError) as e:
                    reason = str(e).replace(f' {item.path}', '')
                    bad(item.path, reason.splitlines()[0])
                    yield item, None, ('skipped', )  # for the progress bar
                    continue
                yield item, img, None
                continue
            try:
                cap = open_video(item.path)
            except (OSError, ValueError) as e:
                bad(item.path, str(e))
                continue
            announced = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            fps = cap.get(cv2.CAP_PROP_FPS) or 25
            yield item, None, ('start', fps)
            frames = 0
            try:
                while True:
                    ok, frame = cap.read()
                    if not ok:
                        break
                    yield item, frame, frames
                    frames += 1
            finally:
                cap.release()
            reason = None
            if not frames:
                reason = 'no frame could be read'
            elif item.kind == 'video' and frames < announced:
                reason = f'ended after {frames} of {announced} frames'
            if reason:
                bad(item.path, reason + ' (outputs not kept)')
            yield item, None, ('end', reason is None)

    def prepare(entry):
        item, img, _ = entry
        return entry, None if img is None else segmenter.inputs(img)

    threads, local = torch.get_num_threads(), threading.local()

    def infer(inputs):
        if streams > 1 and not hasattr(local, 'threads'):
            local.threads = max(1, threads // streams)
            torch.set_num_threads(local.threads)  # this thread's
        return segmenter.logits(inputs), inputs.shape[2:]

    videos: Dict[str, _Video] = {}
    ended = []

    def write_labels(item, paths, labels, frame):
        for kind, table in (('labels', None), ('label_ids', ids)):
            if kind not in paths:
                continue
            path = paths[kind]
            if frame is not None:  # a video's: in its temporary folder
                path = osp.join(videos[item.path].folders[kind],
                                f'{frame:06d}.png')
            else:
                os.makedirs(osp.dirname(path), exist_ok=True)
            encode_png(labels if table is None else table[labels], path)

    def finish(entry, logits, seconds, fps):
        item, img, step = entry
        paths = outputs.paths(item)
        if img is None:  # start or end of a video, or an image skipped
            if step[0] == 'skipped':
                tick()
                return False
            if step[0] == 'start':
                videos[item.path] = _Video(paths, step[1])
                return False
            video = videos.pop(item.path)
            video.close(keep=step[1])
            if step[1]:
                report.add(item, video.size, video.frames, video.seconds,
                           video.counts)
                ended.append(item)
            return False
        labels = segmenter.labels(*logits, img.shape[:2])
        counts = np.bincount(labels.ravel(), minlength=256)
        painted = segmenter.paint(img, labels, opacity) \
            if 'painted' in paths else None
        if item.kind == 'image':
            write_labels(item, paths, labels, None)
            if painted is not None:
                os.makedirs(osp.dirname(paths['painted']), exist_ok=True)
                encode_png(painted, paths['painted'], PHOTO_PNG)
            report.add(item, img.shape[:2], 1, seconds, counts)
            ended.append(item)
            tick()
            return True
        video = videos[item.path]
        write_labels(item, paths, labels, step)
        if painted is not None:
            video.painted.write(painted)
        video.item = item
        video.frames += 1
        video.seconds += seconds
        video.size = img.shape[:2]
        video.counts = counts if video.counts is None else \
            video.counts + counts
        tick()
        return True

    if any(item.kind == 'camera' for item in todo):
        total = 0  # unknown
    bar = progress_bar(total) if progress and todo else None

    def tick():
        if bar is not None:
            bar.update()

    problems_before = len(report.problems)
    started = time.perf_counter()
    try:
        report.stats = run_pipeline(read(), prepare, infer,
                                    finish, progress=False, streams=streams)
    finally:
        torch.set_num_threads(threads)  # that of new threads too
        if hasattr(bar, 'close'):
            bar.close()
        for video in videos.values():  # stopped: keep a camera's frames
            keep = video.frames > 0 and video.item.kind == 'camera'
            video.close(keep=keep)
            if keep:
                report.add(video.item, video.size, video.frames,
                           video.seconds, video.counts)
                ended.append(video.item)
    left_out = len(report.problems) - problems_before
    report.interrupted = len(ended) + left_out < len(todo)
    report.seconds = time.perf_counter() - started
    return report

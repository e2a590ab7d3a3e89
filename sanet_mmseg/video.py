# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""A video segmented in a pipeline of three threads (decoding and
preprocessing, inference, painting and encoding) connected by short
queues, so that inference never waits for I/O: the video demo's engine."""
import os
import os.path as osp
import queue
import threading
import time
from collections import deque
from typing import Callable, List, Optional

import cv2
import numpy as np
from mmengine.utils import ProgressBar

#: FourCC of the output by the file's extension (others: MJPG)
FOURCC = {'.mp4': 'mp4v', '.avi': 'MJPG'}


def open_video(source: str) -> cv2.VideoCapture:
    """A ``cv2.VideoCapture`` on a video file or a camera id ('0', '1',
    ...), checked: raises FileNotFoundError for a missing file, OSError
    for a camera that cannot be opened, ValueError for a file OpenCV
    cannot read."""
    if source.isdigit():
        cap = cv2.VideoCapture(int(source))
        if not cap.isOpened():
            raise OSError(f'cannot open camera {source} (no such device, or '
                          'in use)')
        return cap
    if not osp.isfile(source):
        raise FileNotFoundError(f'no video file {source}')
    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        raise ValueError(f'cannot read video {source} (not a video, or a '
                         'codec OpenCV lacks)')
    return cap


class VideoFile:
    """A video written under a temporary name beside ``path`` and put in
    place by :meth:`close` (``keep=True``) or removed, so that an
    interrupted run leaves neither a truncated video nor a temporary file.

    Args:
        path (str): The video to write; its folder must exist.
        fps (float): Frames per second.
        fourcc (str, optional): Default: by the extension (:data:`FOURCC`).
    """

    def __init__(self, path: str, fps: float, fourcc: Optional[str] = None):
        folder = osp.dirname(osp.abspath(path))
        if not osp.isdir(folder):
            raise FileNotFoundError(f'no folder {folder} for {path}')
        stem, ext = osp.splitext(osp.basename(path))
        # the container follows the extension: keep it on the temp file
        self.tmp = osp.join(folder, f'.{stem}.{os.getpid()}.tmp{ext}')
        self.path, self.fps = path, fps
        self.fourcc = fourcc or FOURCC.get(ext.lower(), 'MJPG')
        self.writer = None

    def write(self, img: np.ndarray) -> None:
        if self.writer is None:
            self.writer = cv2.VideoWriter(
                self.tmp, cv2.VideoWriter_fourcc(*self.fourcc), self.fps,
                (img.shape[1], img.shape[0]))
            if not self.writer.isOpened():
                raise RuntimeError(f'cannot write {self.path} with FourCC '
                                   f'{self.fourcc}')
        self.writer.write(img)

    def close(self, keep: bool) -> None:
        if self.writer is not None:
            self.writer.release()
        if osp.exists(self.tmp):
            if keep:
                os.replace(self.tmp, self.path)
            else:
                os.remove(self.tmp)


class _Stop(Exception):
    """Another stage stopped."""


class _Stage(threading.Thread):
    """A pipeline stage in a thread; an error stops the others and is kept
    in ``error``."""

    def __init__(self, target: Callable, stop: threading.Event):
        super().__init__(daemon=True)
        self.target, self.stop, self.error = target, stop, None

    def run(self):
        try:
            self.target()
        except _Stop:
            pass
        except BaseException as e:  # noqa: B902 (re-raised by run_video)
            self.error = e
            self.stop.set()


def _put(q: queue.Queue, item, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            return q.put(item, timeout=0.1)
        except queue.Full:
            pass
    raise _Stop


def _get(q: queue.Queue, stop: threading.Event):
    while not stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            pass
    raise _Stop


class VideoStats:
    """What :func:`run_video` measured: ``done`` (when each frame was
    painted), ``infer`` (inference seconds per frame), ``latency`` (decoded
    to painted, per frame) and ``started``."""

    def __init__(self):
        self.started = time.perf_counter()
        self.done: List[float] = []
        self.infer: List[float] = []
        self.latency: List[float] = []

    def summary(self) -> str:
        """FPS (with and after the start-up) and the latencies' mean, p50
        and p95 in ms."""

        def spread(values):
            v = np.asarray(values) * 1e3
            return (f'mean {v.mean():.1f}, p50 {np.percentile(v, 50):.1f}, '
                    f'p95 {np.percentile(v, 95):.1f}')

        n, elapsed = len(self.done), self.done[-1] - self.started
        sustained = (n - 1) / (self.done[-1] - self.done[0]) if n > 1 \
            else float('nan')
        return (f'{n} frames in {elapsed:.2f} s: {n / elapsed:.2f} FPS '
                f'(sustained after the first frame: {sustained:.2f} FPS)\n'
                f'inference latency ms: {spread(self.infer)}\n'
                f'frame latency (decoded to painted) ms: '
                f'{spread(self.latency)}')


def run_video(cap: cv2.VideoCapture,
              prepare: Callable,
              infer: Callable,
              render: Callable,
              output: Optional[VideoFile] = None,
              show: bool = False,
              wait_ms: int = 1) -> VideoStats:
    """Segment every frame of ``cap`` in three threads and write or show
    the painted frames; Ctrl-C, or q or Esc in the ``show`` window, stops.

    Args:
        cap (cv2.VideoCapture): The video (:func:`open_video`); released.
        prepare (callable): BGR frame -> model input (decoding thread).
        infer (callable): Model input -> logits (C, h, w) on the CPU.
        render (callable): ``(frame, logits, fps, seconds of inference)``
            -> the painted BGR frame (painting thread).
        output (VideoFile, optional): Where to write the painted frames;
            kept only if the run ends without error. Default: None.
        show (bool): Show them in a window. Default: False.
        wait_ms (int): Of ``cv2.waitKey`` after each shown frame.

    Returns:
        VideoStats: Raises the first stage's error, or an EOFError if no
        frame could be read.
    """
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    stop, stats = threading.Event(), VideoStats()
    decoded, inferred = queue.Queue(2), queue.Queue(2)

    def read():
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            start = time.perf_counter()
            _put(decoded, (frame, prepare(frame), start), stop)
        _put(decoded, None, stop)

    def paint():
        bar = ProgressBar(total) if total > 0 else None
        recent = deque(maxlen=30)
        while True:
            item = _get(inferred, stop)
            if item is None:
                break
            frame, logits, start, seconds = item
            recent.append(time.perf_counter())
            fps = (len(recent) - 1) / (recent[-1] - recent[0]) \
                if len(recent) > 1 else 0.
            img = render(frame, logits, fps, seconds)
            if output is not None:
                output.write(img)
            if show:
                cv2.imshow('video_demo', img)
                if cv2.waitKey(wait_ms) & 0xFF in (ord('q'), 27):
                    stop.set()
            stats.latency.append(time.perf_counter() - start)
            stats.done.append(time.perf_counter())
            if bar:
                bar.update()

    stages = [_Stage(read, stop), _Stage(paint, stop)]
    for stage in stages:
        stage.start()
    try:
        while True:
            item = _get(decoded, stop)
            if item is None:
                break
            frame, inputs, start = item
            t = time.perf_counter()
            logits = infer(inputs)
            stats.infer.append(time.perf_counter() - t)
            _put(inferred, (frame, logits, start, stats.infer[-1]), stop)
        _put(inferred, None, stop)
    except BaseException as e:  # noqa: B902 (Ctrl-C stops; others raise)
        stop.set()
        if not isinstance(e, (_Stop, KeyboardInterrupt)):
            raise
    finally:
        for stage in stages:
            stage.join()
        cap.release()
        if show:
            cv2.destroyAllWindows()
        errors = [s.error for s in stages if s.error is not None]
        if output is not None:
            output.close(keep=bool(stats.done) and not errors)
    if errors:
        raise errors[0]
    if not stats.done:
        raise EOFError('no frame could be read from the video')
    return stats

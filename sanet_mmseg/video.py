# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Images or a video segmented in a pipeline of threads (decoding and
preprocessing, inference in one or more streams, painting and encoding)
connected by short queues, so that inference never waits for I/O: the
engine of the video demo and of tools/predict.py."""
import os
import os.path as osp
import queue
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, List, Optional

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
        except BaseException as e:  # noqa: B902 (re-raised by run_pipeline)
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
    """What :func:`run_pipeline` measured: ``done`` (when each item was
    finished), ``infer`` (inference seconds per item), ``latency`` (read
    to finished, per item) and ``started``."""

    def __init__(self):
        self.started = time.perf_counter()
        self.done: List[float] = []
        self.infer: List[float] = []
        self.latency: List[float] = []

    def summary(self, unit: str = 'frames') -> str:
        """FPS (with and after the start-up) and the latencies' mean, p50
        and p95 in ms."""

        def spread(values):
            v = np.asarray(values) * 1e3
            if not len(v):
                return 'none'
            return (f'mean {v.mean():.1f}, p50 {np.percentile(v, 50):.1f}, '
                    f'p95 {np.percentile(v, 95):.1f}')

        n = len(self.done)
        if not n:
            return f'0 {unit}'
        elapsed = self.done[-1] - self.started
        sustained = (n - 1) / (self.done[-1] - self.done[0]) if n > 1 \
            else float('nan')
        return (f'{n} {unit} in {elapsed:.2f} s: {n / elapsed:.2f} FPS '
                f'(sustained after the first frame: {sustained:.2f} FPS)\n'
                f'inference latency ms: {spread(self.infer)}\n'
                f'frame latency (decoded to painted) ms: '
                f'{spread(self.latency)}')


def progress_bar(total: int):
    """A progress bar with rate and ETA for ``total`` items (0: unknown):
    tqdm's where it is installed, else MMEngine's ``ProgressBar``; both
    have ``update()``."""
    try:
        from tqdm import tqdm
    except ImportError:
        return ProgressBar(total)
    return tqdm(total=total or None, unit='img', dynamic_ncols=True)


def run_pipeline(items: Iterable,
                 prepare: Callable,
                 infer: Callable,
                 finish: Callable,
                 total: int = 0,
                 progress: bool = True,
                 stop: Optional[threading.Event] = None,
                 streams: int = 1) -> VideoStats:
    """Run ``items`` through threads connected by short queues: reading
    and preprocessing, inference (``streams`` threads, each item in one),
    finishing (postprocessing, painting, writing) in the items' order, so
    that inference never waits for I/O. Ctrl-C, or ``stop`` set, stops it;
    the items then left are not finished.

    Args:
        items (Iterable): Iterated in the reading thread (which may decode
            there, e.g. a video's frames).
        prepare (callable): item -> ``(payload, inputs)``, in the reading
            thread; ``inputs`` None passes the payload on without
            inference (e.g. the end of a video).
        infer (callable): inputs -> outputs (e.g. logits on the CPU); with
            several streams, called from several threads at once.
        finish (callable): ``(payload, outputs or None, seconds of
            inference, recent FPS)`` -> whether the item counts as done
            (progress bar, ``VideoStats.done``), in the finishing thread.
        total (int): Items expected, for the progress bar (0: unknown).
        progress (bool): Show a progress bar. Default: True.
        stop (threading.Event, optional): Set to stop. Default: a new one.
        streams (int): Items inferred at once. Default: 1.

    Returns:
        VideoStats: Raises the first stage's error once all stopped.
    """
    stop = stop or threading.Event()
    stats = VideoStats()
    prepared, inferred = queue.Queue(2), queue.Queue(2 * streams)

    def read():
        for item in items:
            start = time.perf_counter()
            _put(prepared, (*prepare(item), start), stop)
        _put(prepared, None, stop)

    def timed(inputs):
        start = time.perf_counter()
        return infer(inputs), time.perf_counter() - start

    def write():
        bar = progress_bar(total) if progress else None
        recent = deque(maxlen=30)
        try:
            while True:
                item = _get(inferred, stop)
                if item is None:
                    break
                payload, future, start = item
                outputs, seconds = None, 0.
                if future is not None:
                    outputs, seconds = future.result()
                    stats.infer.append(seconds)
                    recent.append(time.perf_counter())
                if stop.is_set():
                    break
                fps = (len(recent) - 1) / (recent[-1] - recent[0]) \
                    if len(recent) > 1 else 0.
                if finish(payload, outputs, seconds, fps):
                    stats.latency.append(time.perf_counter() - start)
                    stats.done.append(time.perf_counter())
                    if bar is not None:
                        bar.update()
        finally:
            if hasattr(bar, 'close'):
                bar.close()

    pool = ThreadPoolExecutor(streams, thread_name_prefix='inference')
    stages = [_Stage(read, stop), _Stage(write, stop)]
    for stage in stages:
        stage.start()
    try:
        while True:  # inputs to the inference threads, in order
            item = _get(prepared, stop)
            if item is None:
                break
            payload, inputs, start = item
            future = None if inputs is None else pool.submit(timed, inputs)
            _put(inferred, (payload, future, start), stop)
        _put(inferred, None, stop)
    except BaseException as e:  # noqa: B902 (Ctrl-C stops; others raise)
        stop.set()
        if not isinstance(e, (_Stop, KeyboardInterrupt)):
            raise
    finally:
        for stage in stages:
            stage.join()
        pool.shutdown(cancel_futures=True)
    errors = [s.error for s in stages if s.error is not None]
    if errors:
        raise errors[0]
    return stats


def run_video(cap: cv2.VideoCapture,
              prepare: Callable,
              infer: Callable,
              render: Callable,
              output: Optional[VideoFile] = None,
              show: bool = False,
              wait_ms: int = 1) -> VideoStats:
    """Segment every frame of ``cap`` in three threads
    (:func:`run_pipeline`) and write or show the painted frames; Ctrl-C,
    or q or Esc in the ``show`` window, stops.

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
    stop = threading.Event()

    def frames():
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield frame

    def finish(frame, logits, seconds, fps):
        img = render(frame, logits, fps, seconds)
        if output is not None:
            output.write(img)
        if show:
            cv2.imshow('video_demo', img)
            if cv2.waitKey(wait_ms) & 0xFF in (ord('q'), 27):
                stop.set()
        return True

    stats = None
    try:
        stats = run_pipeline(frames(), lambda f: (f, prepare(f)), infer,
                             finish, max(total, 0), stop=stop)
    finally:
        cap.release()
        if show:
            cv2.destroyAllWindows()
        if output is not None:
            output.close(keep=stats is not None and bool(stats.done))
    if not stats.done:
        raise EOFError('no frame could be read from the video')
    return stats

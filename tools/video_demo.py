# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Segment a video file or a camera live and paint the labels over it
(MMSeg's demo/video_demo.py for SANet, on any backend).

MODEL is a checkpoint (run with --backend torch, onnxruntime or openvino in
--precision fp32 or bf16, converted in memory) or an artefact folder of
tools/deployment/export.py (its backend and precision, int8 included).
Decoding (with the test pipeline's resizing and normalisation), inference,
and painting/encoding run in three threads connected by short queues, so
that inference never waits for I/O. The frames carry the pipeline's FPS
and the inference latency; at the end the tool prints the mean FPS and the
mean, p50 and p95 latencies. To keep the painting cheap (it shares the
CPU with inference), the labels are the argmax of the logits resized by
OpenCV (bilinear, corners aligned or not as in the evaluation) to a
quarter of the model's input size (twice the logits' size), coloured and
resized bilinearly to the frame: they differ from the evaluation's (the
logits resized to the full size, then the argmax) only along the class
boundaries, which are drawn soft over a few pixels.
Press q or Esc in the --show window to stop (Ctrl-C anywhere).
"""
import os
import os.path as osp
import queue
import threading
import time
from collections import deque

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.utils import ProgressBar

from sanet_mmseg.cli import add_shape, add_threads, tool_parser
from sanet_mmseg.deploy import (PRECISIONS, ImagePipeline, build_predictor,
                                load_predictor, load_segmentor,
                                pipeline_shape, read_meta)

FOURCC = {'.mp4': 'mp4v', '.avi': 'MJPG'}


def parse_args(argv=None):
    parser = tool_parser(
        __doc__, ('video', 'video file, or camera id (0, 1, ...)'), 'config',
        ('model', 'checkpoint file, or artefact folder of export.py'))
    parser.add_argument(
        '--backend', choices=tuple(PRECISIONS),
        help='with a checkpoint: the backend (default torch)')
    parser.add_argument(
        '--precision', choices=('fp32', 'bf16', 'fp16', 'int8'),
        help='with a checkpoint: the precision (default fp32; int8 needs '
        'an artefact)')
    add_shape(
        parser, 'with a checkpoint: resize frames to this input size '
        "(default: the test pipeline's; onnxruntime/openvino: its Resize "
        'scale)')
    add_threads(parser)
    parser.add_argument('--output-file', help='painted video to write')
    parser.add_argument(
        '--output-fourcc',
        help='FourCC of the output (default mp4v for .mp4, MJPG otherwise)')
    parser.add_argument('--show', action='store_true', help='show live')
    parser.add_argument(
        '--show-wait-time', type=int, default=1,
        help='ms to wait for a key after each shown frame (default 1)')
    parser.add_argument(
        '--opacity', type=float, default=0.5,
        help='opacity of the painted labels, in (0, 1] (default 0.5)')
    args = parser.parse_args(argv)
    if not (args.show or args.output_file):
        parser.error('nothing to do: give --output-file and/or --show')
    if not 0 < args.opacity <= 1:
        parser.error('--opacity must be in (0, 1]')
    return args


def open_video(source):
    """A cv2.VideoCapture on a file or a camera id, checked."""
    if source.isdigit():
        cap = cv2.VideoCapture(int(source))
        if not cap.isOpened():
            raise SystemExit(f'cannot open camera {source} (no such device, '
                             'or in use)')
        return cap
    if not osp.isfile(source):
        raise SystemExit(f'no video file {source}')
    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        raise SystemExit(f'cannot read video {source} (not a video, or a '
                         'codec OpenCV lacks)')
    return cap


def make_predictor(args, cfg):
    """(predictor, classes, palette and align_corners, input shape or
    None)."""
    is_artefact = osp.isdir(args.model) or osp.basename(
        args.model) == 'deploy.json'
    if is_artefact:
        meta = read_meta(args.model)
        for name in ('backend', 'precision'):
            given = getattr(args, name)
            if given and given != meta[name]:
                raise SystemExit(f'--{name} {given}: the artefact is '
                                 f'{meta[name]}')
        if args.shape:
            raise SystemExit('--shape goes with a checkpoint; an artefact '
                             'has its own')
        predictor = load_predictor(args.model, args.threads)
        return predictor, meta, predictor.shape
    backend = args.backend or 'torch'
    precision = args.precision or 'fp32'
    if precision not in PRECISIONS[backend] or precision == 'int8':
        raise SystemExit(
            f'{backend} {precision} from a checkpoint: choose from '
            f'{[p for p in PRECISIONS[backend] if p != "int8"]} (int8: '
            'export an artefact with tools/deployment/export.py)')
    model = load_segmentor(cfg, args.model)
    shape = tuple(args.shape) if args.shape else None
    if backend != 'torch' and shape is None:
        shape = pipeline_shape(cfg)
    predictor = build_predictor(model, backend, precision, shape,
                                threads=args.threads)
    return predictor, dict(
        model.dataset_meta,
        align_corners=model.decode_head.align_corners), shape


class Stop(Exception):
    """Another stage stopped."""


def put(q, item, stop):
    while not stop.is_set():
        try:
            return q.put(item, timeout=0.1)
        except queue.Full:
            pass
    raise Stop


def get(q, stop):
    while not stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            pass
    raise Stop


class Stage(threading.Thread):
    """A pipeline stage in a thread; an error stops the others and is kept
    in ``error``."""

    def __init__(self, target, stop):
        super().__init__(daemon=True)
        self.target = target
        self.stop = stop
        self.error = None

    def run(self):
        try:
            self.target()
        except Stop:
            pass
        except BaseException as e:  # noqa: B902 (re-raised in finish)
            self.error = e
            self.stop.set()


def resize(img, size, align_corners):
    """``img`` resized bilinearly to ``size`` (W, H), the corner pixels
    aligned or not, as the evaluation resizes the logits."""
    if not align_corners:
        return cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
    h, w = img.shape[:2]
    scale = np.float32([[(w - 1) / max(size[0] - 1, 1), 0, 0],
                        [0, (h - 1) / max(size[1] - 1, 1), 0]])
    return cv2.warpAffine(img, scale, size,
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def paint(frame, logits, palette_bgr, opacity, size, align_corners=True):
    """The frame with the labels of the logits (C, h, w) blended in; the
    labels are the argmax of the logits resized bilinearly to ``size``
    (W, H), coloured, and resized bilinearly to the frame."""
    scores = resize(np.ascontiguousarray(logits.permute(1, 2, 0).numpy()),
                    size, align_corners)
    labels = scores.argmax(-1) if scores.ndim == 3 else \
        np.zeros(scores.shape, np.int64)  # one class
    colours = resize(palette_bgr[labels], (frame.shape[1], frame.shape[0]),
                     align_corners)
    return cv2.addWeighted(frame, 1 - opacity, colours, opacity, 0)


def draw_text(img, text):
    """White text on a black box at the top left, sized to the frame."""
    scale = max(0.4, img.shape[1] / 1280)
    thickness = max(1, round(scale * 1.5))
    (width, height), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX,
                                            scale, thickness)
    pad = int(6 * scale)
    cv2.rectangle(img, (0, 0), (width + 2 * pad, height + base + 2 * pad),
                  (0, 0, 0), -1)
    cv2.putText(img, text, (pad, pad + height), cv2.FONT_HERSHEY_SIMPLEX,
                scale, (255, 255, 255), thickness, cv2.LINE_AA)


def percentiles(values):
    v = np.asarray(values) * 1e3
    return (f'mean {v.mean():.1f}, p50 {np.percentile(v, 50):.1f}, p95 '
            f'{np.percentile(v, 95):.1f}')


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    cap = open_video(args.video)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    predictor, meta, shape = make_predictor(args, cfg)
    # the backend has its own threads; decoding and painting take one each
    cv2.setNumThreads(1)
    if predictor.backend != 'torch':
        torch.set_num_threads(1)
    pipeline = ImagePipeline(cfg, shape, from_array=True)
    palette_bgr = np.zeros((256, 3), np.uint8)
    palette_bgr[:len(meta['palette'])] = np.asarray(
        meta['palette'], np.uint8)[:, ::-1]
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if not \
        args.video.isdigit() else 0
    fps_in = cap.get(cv2.CAP_PROP_FPS) or 25
    size = 'any size' if shape is None else '%dx%d' % shape
    print(f'{predictor.name} ({size}), {threads} threads; '
          f'{args.video}: {total or "?"} frames at {fps_in:.1f} FPS')

    stop = threading.Event()
    decoded, inferred = queue.Queue(2), queue.Queue(2)
    infer_times, frame_times, done = [], [], []
    tmp_file = None
    if args.output_file:
        out_dir = osp.dirname(osp.abspath(args.output_file))
        if not osp.isdir(out_dir):
            raise SystemExit(f'--output-file: no folder {out_dir}')
        stem, ext = osp.splitext(osp.basename(args.output_file))
        # the container follows the extension: keep it on the temp file
        tmp_file = osp.join(out_dir, f'.{stem}.{os.getpid()}.tmp{ext}')
        fourcc = args.output_fourcc or FOURCC.get(ext.lower(), 'MJPG')

    def read():
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            start = time.perf_counter()
            put(decoded, (frame, pipeline(frame), start), stop)
        put(decoded, None, stop)

    def write():
        writer = None
        bar = ProgressBar(total) if total else None
        recent = deque(maxlen=30)
        try:
            while True:
                item = get(inferred, stop)
                if item is None:
                    break
                frame, logits, start, latency = item
                quarter_input = (logits.shape[2] * 2, logits.shape[1] * 2)
                img = paint(frame, logits, palette_bgr, args.opacity,
                            quarter_input, meta['align_corners'])
                recent.append(time.perf_counter())
                fps = (len(recent) - 1) / (recent[-1] - recent[0]) \
                    if len(recent) > 1 else 0.
                draw_text(img, f'{fps:.1f} FPS  inference '
                          f'{latency * 1e3:.0f} ms  {predictor.name}')
                if tmp_file:
                    if writer is None:
                        writer = cv2.VideoWriter(
                            tmp_file, cv2.VideoWriter_fourcc(*fourcc),
                            fps_in, (img.shape[1], img.shape[0]))
                        if not writer.isOpened():
                            raise RuntimeError(
                                f'cannot write {args.output_file} with '
                                f'FourCC {fourcc}')
                    writer.write(img)
                if args.show:
                    cv2.imshow('video_demo', img)
                    if cv2.waitKey(args.show_wait_time) & 0xFF in (
                            ord('q'), 27):
                        stop.set()
                frame_times.append(time.perf_counter() - start)
                done.append(time.perf_counter())
                if bar:
                    bar.update()
        finally:
            if writer is not None:
                writer.release()

    reader, painter = Stage(read, stop), Stage(write, stop)
    started = time.perf_counter()
    reader.start()
    painter.start()
    try:
        while True:
            item = get(decoded, stop)
            if item is None:
                break
            frame, inputs, start = item
            t = time.perf_counter()
            logits = predictor(inputs)[0].float().cpu()
            infer_times.append(time.perf_counter() - t)
            put(inferred, (frame, logits, start, infer_times[-1]), stop)
        put(inferred, None, stop)
    except (Stop, KeyboardInterrupt):
        stop.set()
    reader.join()
    painter.join()
    cap.release()
    if args.show:
        cv2.destroyAllWindows()
    errors = [s.error for s in (reader, painter) if s.error is not None]
    if tmp_file and osp.exists(tmp_file):
        if done and not errors:
            os.replace(tmp_file, args.output_file)
        else:
            os.remove(tmp_file)
    if errors:
        raise errors[0]
    if not done:
        raise SystemExit(f'no frames could be read from {args.video}')
    elapsed = done[-1] - started
    sustained = (len(done) - 1) / (done[-1] - done[0]) if len(done) > 1 \
        else float('nan')
    print(f'\n{len(done)} frames in {elapsed:.2f} s: '
          f'{len(done) / elapsed:.2f} FPS (sustained after the first frame: '
          f'{sustained:.2f} FPS)')
    print(f'inference latency ms: {percentiles(infer_times)}')
    print(f'frame latency (decoded to painted) ms: '
          f'{percentiles(frame_times)}')
    if args.output_file:
        print(f'saved {args.output_file}')


if __name__ == '__main__':
    main()

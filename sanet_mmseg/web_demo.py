# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""A web page to try a segmentor (Gradio): an uploaded image painted with
its labels (computed as the evaluation does), the class legend with each
class's share, and the webcam segmented live (painted as the video demo
paints, :mod:`sanet_mmseg.painting`).

Everything the page needs is served by the process itself (Gradio's
bundled front end, no fonts or scripts from elsewhere, analytics off)."""
import ctypes
import html
import os
import os.path as osp
import time
from collections import deque
from typing import Optional, Sequence

import numpy as np

# Gradio's usage statistics and version check call out: off unless asked
os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
import gradio as gr  # noqa: E402
from mmengine.config import Config  # noqa: E402

from . import predict  # noqa: E402
from .deploy import Predictor  # noqa: E402
from .fileio import read_image  # noqa: E402
from .painting import blend_labels, paint  # noqa: E402

#: Uploads above these sizes are refused (the page says so).
MAX_FILE_MB = 20
MAX_PIXELS = 40_000_000
#: Files of the page in Gradio's cache (uploads, result images) are
#: deleted this many seconds after they were written (checked every
#: minute, or every CACHE_SECONDS where shorter); each upload is deleted
#: as soon as it is read.
CACHE_SECONDS = 300
#: ... and the oldest are deleted first where they take more than this.
CACHE_MB = 200
#: Visitors whose state (their last image and labels, for the opacity
#: slider) is kept, the least recent dropped first; a state is also
#: dropped STATE_SECONDS after its last upload.
MAX_VISITORS = 8
STATE_SECONDS = 1800


class Segmenter(predict.Segmenter):
    """A predictor for the page: the labels of an image as the evaluation
    computes them (:class:`sanet_mmseg.predict.Segmenter`, as
    tools/predict.py: the logits upsampled to the input, then to the image,
    then the argmax), and video frames painted as the video demo paints
    them.

    Args:
        cfg (Config): The config (test pipeline and data preprocessor; its
            normalisation must be the predictor's).
        predictor (Predictor): From ``load_predictor`` or
            ``build_predictor``.
        meta (dict): ``classes``, ``palette`` and ``align_corners``.
        shape (Sequence[int], optional): (H, W) the images are resized to;
            None: as the test pipeline resizes them. Default: None.
    """

    def __init__(self,
                 cfg: Config,
                 predictor: Predictor,
                 meta: dict,
                 shape: Optional[Sequence[int]] = None):
        super().__init__(cfg, predictor, meta, shape)
        self.palette = np.ascontiguousarray(self.colours[:, ::-1])  # RGB

    def paint_frame(self, frame_bgr: np.ndarray,
                    opacity: float) -> np.ndarray:
        """A video frame (BGR) painted as the video demo paints it (the
        argmax at a quarter of the input size, soft class boundaries)."""
        logits = self.predictor(self.pipeline(frame_bgr))[0]
        logits = logits.float().cpu()
        quarter_input = (logits.shape[2] * 2, logits.shape[1] * 2)
        return paint(frame_bgr, logits, self.colours, opacity,
                     quarter_input, self.align_corners)

    def paint(self, image_bgr: np.ndarray, labels: np.ndarray,
              opacity: float) -> np.ndarray:
        """The RGB image with the labels' palette colours blended in (as
        MMSeg's visualizer blends them)."""
        return blend_labels(image_bgr[..., ::-1], labels, self.palette,
                            opacity)

    def legend(self, labels: np.ndarray) -> str:
        """An HTML table of the classes present: colour, name and share of
        the pixels, largest first."""
        counts = np.bincount(labels.ravel(), minlength=len(self.classes))
        rows = []
        for i in np.argsort(-counts, kind='stable'):
            if counts[i] == 0:
                break
            name = self.classes[i] if i < len(self.classes) else f'#{i}'
            colour = '#%02x%02x%02x' % tuple(self.palette[i])
            share = 100 * counts[i] / labels.size
            rows.append(
                f'<tr><td><span class="swatch" style="background:{colour}">'
                f'</span></td><td>{html.escape(name)}</td><td class="share">'
                f'{share:.{1 if share >= 0.1 else 3}f} %</td></tr>')
        return ('<table class="legend"><tr><th></th><th>class</th>'
                '<th>share</th></tr>' + ''.join(rows) + '</table>')


def read_upload(path: Optional[str]) -> np.ndarray:
    """The BGR image of an uploaded file; a ValueError that says what is
    wrong with it (none, too large, not an image, corrupt)."""
    if not path:
        raise ValueError('no image: drop an image file (PNG, JPEG, ...)')
    name = osp.basename(path)
    size_mb = os.path.getsize(path) / 2**20
    if size_mb > MAX_FILE_MB:
        raise ValueError(f'{name} is {size_mb:.1f} MB: the page takes '
                         f'images up to {MAX_FILE_MB} MB')
    from PIL import Image
    try:  # the header only: refuse huge images before decoding them
        with Image.open(path) as im:
            width, height = im.size
    except Exception:  # let the decoder name the problem
        width = height = 0
    if width * height > MAX_PIXELS:
        raise ValueError(f'{name} is {width}x{height}: the page takes up to '
                         f'{MAX_PIXELS / 1e6:.0f} megapixels')
    try:
        return read_image(path)
    except ValueError:
        raise ValueError(f'{name} is not an image that can be read (not an '
                         'image, or a corrupt one)') from None


class FrameRate:
    """Frames per second over the last ``n`` frames."""

    def __init__(self, n: int = 30):
        self.times = deque(maxlen=n)

    def tick(self) -> float:
        self.times.append(time.perf_counter())
        if len(self.times) < 2:
            return 0.
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])


CSS = """
.legend td, .legend th {padding: 2px 8px; border: none}
.swatch {display: inline-block; width: 1.2em; height: 1.2em;
         border: 1px solid #888; vertical-align: middle}
.share {text-align: right}
"""


def forget(path: Optional[str]) -> None:
    """Delete an upload from Gradio's cache once it is read."""
    if path and osp.isfile(path):
        try:
            os.remove(path)
        except OSError:
            pass


def trim_cache(blocks, max_bytes: int) -> int:
    """Delete the oldest files that ``blocks`` wrote in Gradio's cache
    until they take at most ``max_bytes``; return their size then."""
    files = []
    for temp_set in blocks.temp_file_sets:
        for path in list(temp_set):
            try:
                info = os.stat(path)
            except OSError:
                temp_set.discard(path)
                continue
            files.append((info.st_mtime, info.st_size, path, temp_set))
    total = sum(f[1] for f in files)
    for _, size, path, temp_set in sorted(files, key=lambda f: f[0]):
        if total <= max_bytes:
            break
        forget(path)
        temp_set.discard(path)
        total -= size
    return total


def build_app(segmenter: Segmenter, title: str,
              cache_seconds: int = CACHE_SECONDS,
              cache_mb: float = CACHE_MB):
    """The Gradio Blocks of the page (launch it with :func:`serve`); its
    files in Gradio's cache are deleted ``cache_seconds`` after they were
    written, the oldest first beyond ``cache_mb``, and each upload once it
    is read."""
    def upload(path, opacity):
        try:
            image = read_upload(path)
        except ValueError as e:
            raise gr.Error(str(e), print_exception=False)
        finally:
            forget(path)
            trim_cache(app, int(cache_mb * 2**20))
        start = time.perf_counter()
        labels = segmenter(image)
        took = time.perf_counter() - start
        return (image[..., ::-1], segmenter.paint(image, labels, opacity),
                segmenter.legend(labels), (image, labels),
                f'{image.shape[1]}x{image.shape[0]}, segmented in '
                f'{took * 1e3:.0f} ms')

    def repaint(state, opacity):
        if state is None:
            return None
        return segmenter.paint(*state, opacity)

    def stream(frame_rgb, opacity, rate):
        if frame_rgb is None:
            return None, '', rate
        rate = rate or FrameRate()
        frame = np.ascontiguousarray(frame_rgb[..., ::-1])
        start = time.perf_counter()
        painted = segmenter.paint_frame(frame, opacity)
        took = time.perf_counter() - start
        return (painted[..., ::-1],
                f'{rate.tick():.1f} FPS (inference and painting '
                f'{took * 1e3:.0f} ms per frame)', rate)

    cache = (min(60, cache_seconds), cache_seconds)
    with gr.Blocks(title=title, analytics_enabled=False,
                   delete_cache=cache) as app:
        gr.Markdown(f'## {html.escape(title)}')
        opacity = gr.Slider(
            0, 1, value=0.5, step=0.05, label='opacity of the labels',
            elem_id='opacity')
        with gr.Tab('Image'):
            image_in = gr.File(
                label='image (PNG, JPEG, ...; gray and RGBA too; up to '
                f'{MAX_FILE_MB} MB)', type='filepath', height=120,
                elem_id='upload')
            with gr.Row():
                original = gr.Image(label='image', format='png',
                                    interactive=False, elem_id='original')
                image_out = gr.Image(
                    label='segmentation', format='png', interactive=False,
                    elem_id='result')
            info = gr.Markdown(elem_id='info')
            legend = gr.HTML(elem_id='legend')
            state = gr.State(time_to_live=STATE_SECONDS)
        with gr.Tab('Webcam'):
            with gr.Row():
                camera = gr.Image(
                    label='webcam', sources=['webcam'], streaming=True,
                    webcam_options=gr.WebcamOptions(mirror=False),
                    elem_id='camera')
                live = gr.Image(label='live segmentation', format='jpeg',
                                elem_id='live')
            rate_text = gr.Markdown(elem_id='fps')
            rate = gr.State()
        image_in.upload(
            upload, [image_in, opacity],
            [original, image_out, legend, state, info],
            concurrency_id='model')
        opacity.change(repaint, [state, opacity], image_out,
                       show_progress='hidden')
        camera.stream(
            stream, [camera, opacity, rate], [live, rate_text, rate],
            stream_every=0.05, concurrency_id='model',
            show_progress='hidden')
    return app


def release_freed_images() -> bool:
    """Have glibc's malloc give every block of 128 KiB or more back to the
    system when it is freed (``M_MMAP_THRESHOLD`` fixed at its initial
    value). By default the threshold rises to the largest block freed, and
    the images and logits of later requests are then carved from the heaps
    of Gradio's worker threads, which grow in steps and rarely shrink: a
    page serving for days keeps growing though it holds a bounded number
    of images. Returns False where the C library is not glibc."""
    mallopt = getattr(ctypes.CDLL(None), 'mallopt', None)
    if mallopt is None:
        return False
    return mallopt(-3, 128 * 2**10) == 1  # M_MMAP_THRESHOLD; 1: done


def serve(app, host: str = '127.0.0.1', port: Optional[int] = None,
          max_visitors: int = MAX_VISITORS):
    """Serve the page until interrupted; uploads over
    :data:`MAX_FILE_MB` are refused by the server too; the state of
    ``max_visitors`` visitors is kept (Gradio's session capacity); freed
    images are given back to the system (:func:`release_freed_images`)."""
    release_freed_images()
    app.queue(default_concurrency_limit=1).launch(
        server_name=host, server_port=port, css=CSS, ssr_mode=False,
        state_session_capacity=max_visitors,
        max_file_size=f'{MAX_FILE_MB + 1}mb', footer_links=[],
        show_error=True, quiet=False)

# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Time tools/predict.py on a folder of images against the model alone and
against MMSeg's MMSegInferencer, side by side in one run.

Rows (images or frames per second over the folder; the model in PyTorch
float32, the same weights in every row):

- model only, as tools/analysis_tools/benchmark.py times it (one input of
  the size the test pipeline gives the folder's first image, already
  normalised, --seconds per runner, --repeat times): "plain" (the model as
  trained) and "torch:fp32" (BN folded, channels-last: what predict runs
  for a checkpoint);
- predict (sanet_mmseg.predict, the engine of tools/predict.py, with its
  default streams) writing label PNGs and painted images, with torch:fp32
  and with plain; and with torch:fp32 writing label PNGs only
  (pseudo-labelling a folder);
- MMSegInferencer(model=CONFIG, weights=CHECKPOINT)(images,
  out_dir=...) writing its painted images (vis/, without class names, as
  predict paints) and label PNGs (pred/).

The folder is read --copies times over (links in a temporary folder), so
that the start and end of the pipeline weigh little, as in a long run.
All rows run --rounds times, in an order rotated each round (the figures
are their means, the ratios are given per round too). The ratios the
table ends with: predict (torch:fp32) to benchmark.py's
torch:fp32 figure, and predict to MMSegInferencer. The CPU's features
(AMX, AVX-512 BF16, VNNI) and the load average are printed beside them.
"""
import os
import os.path as osp
import tempfile
import time

import cv2
import numpy as np
import torch
from mmengine.config import Config

from sanet_mmseg.benchmark import cpu_description, time_variants, versions
from sanet_mmseg.cli import add_threads, checkpoint_file, positive, \
    tool_parser
from sanet_mmseg.deploy import TorchPredictor, build_predictor, \
    load_segmentor
from sanet_mmseg.fileio import list_files, read_image
from sanet_mmseg.predict import Outputs, Segmenter, default_streams, predict
from sanet_mmseg.sources import collect


PREDICT = 'predict (torch:fp32), labels + painted'
LABELS_ONLY = 'predict (torch:fp32), labels only'
INFERENCER = 'MMSegInferencer, pred + vis'


def parse_args(argv=None):
    parser = tool_parser(__doc__, 'config')
    parser.add_argument('images', help='folder of images (recursive)')
    parser.add_argument(
        '--checkpoint', type=checkpoint_file,
        help='checkpoint file (default: random weights; the speed is the '
        'same)')
    parser.add_argument(
        '--seconds', type=positive(float), default=5,
        help="benchmark.py's time per runner per round (default 5)")
    parser.add_argument(
        '--repeat', type=positive(int), default=3,
        help="benchmark.py's rounds (default 3)")
    parser.add_argument(
        '--copies', type=positive(int), default=4,
        help='times the folder is read over (default 4)')
    parser.add_argument(
        '--rounds', type=positive(int), default=2,
        help='rounds of all rows, in an order rotated each round '
        '(default 2)')
    add_threads(parser)
    return parser.parse_args(argv)


def run_predict(segmenter, images, out_dir, kinds=('labels', 'painted')):
    """Images per second of predict writing ``kinds`` (labels and painted
    images)."""
    inputs, problems = collect([images])
    assert not problems, problems
    start = time.perf_counter()
    report = predict(inputs, segmenter, Outputs(out_dir, kinds),
                     progress=False,
                     streams=default_streams(segmenter.predictor))
    seconds = time.perf_counter() - start
    assert len(report.rows) == len(inputs) and not report.problems
    return len(inputs) / seconds


def run_inferencer(config, checkpoint, images, out_dir):
    """Images per second of MMSegInferencer writing painted images and
    predictions (its model built before the clock starts)."""
    from mmseg.apis import MMSegInferencer
    inferencer = MMSegInferencer(model=config, weights=checkpoint,
                                 device='cpu')
    files = list_files(images)
    start = time.perf_counter()
    inferencer(files, out_dir=out_dir, with_labels=False, opacity=0.5)
    seconds = time.perf_counter() - start
    assert len(os.listdir(osp.join(out_dir, 'vis'))) == len(files)
    return len(files) / seconds


def linked_copies(folder, copies, out):
    """``out``/<copy>_<index>_<name>: links to each image of ``folder``,
    ``copies`` times (names that MMSegInferencer, which writes vis/<name>,
    does not mix up); returns ``out``."""
    os.makedirs(out)
    for i in range(copies):
        for j, path in enumerate(list_files(folder)):
            os.symlink(osp.abspath(path),
                       osp.join(out, f'{i}_{j}_{osp.basename(path)}'))
    return out


def random_checkpoint(cfg, path):
    """A checkpoint of the config's model with random weights and the
    config's classes, so that every row runs the same weights."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    from sanet_mmseg.datasets import config_dataset_meta
    init_default_scope('mmseg')
    torch.manual_seed(0)
    torch.save(dict(meta=dict(dataset_meta=config_dataset_meta(cfg)),
                    state_dict=MODELS.build(cfg.model).state_dict()), path)
    return path


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = Config.fromfile(args.config)
    cv2.setNumThreads(1)  # as tools/predict.py
    tmp = tempfile.TemporaryDirectory()
    images = linked_copies(args.images, args.copies,
                           osp.join(tmp.name, 'images'))
    checkpoint = args.checkpoint or random_checkpoint(
        cfg, osp.join(tmp.name, 'random.pth'))
    model = load_segmentor(cfg, checkpoint)
    meta = dict(model.dataset_meta, align_corners=model.align_corners)
    plain = TorchPredictor(model, 'fp32')
    prepared = build_predictor(model, 'torch', 'fp32')
    files = list_files(images)
    img = read_image(files[0])
    first = Segmenter(cfg, plain, meta).inputs(img)
    shape = tuple(first.shape[2:])
    print(f'{osp.basename(args.config)}; {len(files)} images in '
          f'{args.images} x {args.copies} ({img.shape[1]}x{img.shape[0]} the '
          f'first), model '
          f'input {shape[0]}x{shape[1]}; '
          f'{args.checkpoint or "random weights"}')
    print(f'CPU: {cpu_description()}')
    print(f'{torch.get_num_threads()} threads; {versions()}')
    print(f'load average before: {os.getloadavg()[0]:.2f}', flush=True)
    runs = {
        'model only (plain), benchmark.py': None,
        'model only (torch:fp32), benchmark.py': None,
        PREDICT: lambda out: run_predict(Segmenter(cfg, prepared, meta),
                                         images, out),
        INFERENCER: lambda out: run_inferencer(args.config, checkpoint,
                                               images, out),
        'predict (plain), labels + painted': lambda out: run_predict(
            Segmenter(cfg, plain, meta), images, out),
        LABELS_ONLY: lambda out: run_predict(
            Segmenter(cfg, prepared, meta), images, out, ['labels']),
    }
    fps = {name: [] for name in runs}
    for r in range(args.rounds):  # the order rotates each round
        names = list(runs)[1:]
        names = names[r % len(names):] + names[:r % len(names)]
        for name in names:
            if runs[name] is None:  # benchmark.py's timing, both models
                times = time_variants(
                    {'plain': plain, 'torch:fp32': prepared}, first, 'cpu',
                    args.seconds, args.repeat)
                for key, t in times.items():
                    fps[f'model only ({key}), benchmark.py'].append(
                        len(t) / sum(t))
                continue
            with tempfile.TemporaryDirectory() as out:
                fps[name].append(runs[name](out))
            print(f'round {r + 1}: {name}: {fps[name][-1]:.3f} images/s',
                  flush=True)
    tmp.cleanup()
    print(f'load average after: {os.getloadavg()[0]:.2f}')
    width = max(map(len, fps)) + 2
    print(f'\n{"":<{width}}{"images/s":>9}  per round')
    for name, values in fps.items():
        print(f'{name:<{width}}{np.mean(values):>9.3f}  ' +
              ' '.join(f'{v:.3f}' for v in values))
    ratios = {
        'predict (torch:fp32) / benchmark.py (torch:fp32)':
        (PREDICT, 'model only (torch:fp32), benchmark.py'),
        'predict (torch:fp32), labels only / benchmark.py (torch:fp32)':
        (LABELS_ONLY, 'model only (torch:fp32), benchmark.py'),
        'predict (torch:fp32) / MMSegInferencer': (PREDICT, INFERENCER),
        'predict (plain) / MMSegInferencer':
        ('predict (plain), labels + painted', INFERENCER)
    }
    print()
    for text, (a, b) in ratios.items():
        per_round = np.array(fps[a]) / np.array(fps[b])
        print(f'{text}: {np.mean(fps[a]) / np.mean(fps[b]):.2f} (per '
              f'round {", ".join(f"{v:.2f}" for v in per_round)})')


if __name__ == '__main__':
    main()

# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Evaluate a deployed artefact (tools/deployment/export.py) like any MMSeg
model: the config's test dataset, pipeline and evaluator (IoUMetric,
CityscapesMetric, ...) through MMEngine's test loop, with the usual
per-class table, so that the mIoU cost of bf16 or int8 shows on your own
validation set.

The config's model is replaced by a DeployedSegmentor running the artefact;
its data preprocessor stays, and must normalise as the artefact was
exported. An artefact of a fixed input size gets the images resized to that
size (the test pipeline's Resize is replaced by one to exactly that size,
the same for images of the config's aspect ratio); the predictions are
resized back to the original images as tools/test.py does.
"""
import argparse
import os.path as osp

from mmengine.config import DictAction
from mmengine.runner import Runner

from sanet_mmseg.datasets import config_dataset_meta
from sanet_mmseg.deploy import deploy_pipeline, read_meta
from sanet_mmseg.engine import load_config, setup_runtime


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='test config file path')
    parser.add_argument('artefact', help='artefact folder (export.py)')
    parser.add_argument(
        '--work-dir',
        help='where the metrics are dumped as json (default: '
        'work_dirs/CONFIG_NAME/deploy)')
    parser.add_argument(
        '--out', help='directory to save the predictions (as tools/test.py)')
    parser.add_argument(
        '--show-dir', help='directory to save painted predictions')
    parser.add_argument(
        '--threads', type=int, default=0,
        help='inference threads (default: as many as torch uses)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, xxx=yyy')
    return parser.parse_args(argv)


def check_classes(cfg, meta):
    """The dataset's classes must be the artefact's."""
    classes = config_dataset_meta(cfg)['classes']
    if list(classes) != list(meta['classes']):
        raise SystemExit(
            f'the artefact predicts {len(meta["classes"])} classes '
            f'({", ".join(meta["classes"][:4])}, ...), the test dataset has '
            f'{len(classes)} ({", ".join(list(classes)[:4])}, ...)')


def build_cfg(cfg, artefact, threads=0):
    """The config with the artefact in place of its model, in place."""
    meta = read_meta(artefact)
    check_classes(cfg, meta)
    shape = meta['input']['shape']
    if shape is not None:
        cfg.test_dataloader.dataset.pipeline = deploy_pipeline(
            cfg, shape[2:], labels=True)
    cfg.model = dict(
        type='DeployedSegmentor',
        predictor=osp.abspath(artefact),
        data_preprocessor=cfg.model.data_preprocessor,
        threads=threads)
    cfg.custom_imports = dict(
        imports=['sanet_mmseg', 'sanet_mmseg.deploy'],
        allow_failed_imports=False)
    cfg.load_from = None
    return meta


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options, args.work_dir, 'deploy')
    setup_runtime(cfg)
    meta = build_cfg(cfg, args.artefact, args.threads)
    shape = meta['input']['shape']
    print(f'evaluating {meta["backend"]} {meta["precision"]} '
          f'({"any size" if shape is None else "%dx%d" % tuple(shape[2:])})'
          f' from {args.artefact}')
    if args.show_dir:
        cfg.default_hooks.visualization.update(draw=True, interval=1)
        cfg.visualizer['save_dir'] = args.show_dir
    if args.out is not None:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    return Runner.from_cfg(cfg).test()


if __name__ == '__main__':
    main()

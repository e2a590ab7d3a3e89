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
import os.path as osp

from mmengine.runner import Runner

from sanet_mmseg.cli import (add_runner_args, add_test_outputs, add_threads,
                             apply_test_outputs, runner_config, tool_parser)
from sanet_mmseg.deploy import (MismatchError, check_config, deploy_pipeline,
                                read_meta)


def parse_args(argv=None):
    parser = tool_parser(__doc__, 'config', 'artefact')
    add_test_outputs(parser, work_dir='work_dirs/CONFIG_NAME/deploy')
    add_threads(parser)
    add_runner_args(parser)
    return parser.parse_args(argv)


def build_cfg(cfg, artefact, threads=0):
    """The config with the artefact in place of its model, in place."""
    meta = read_meta(artefact)
    try:
        shape = check_config(cfg, meta)
    except MismatchError as e:
        raise SystemExit(f'{artefact}: {e}')
    if shape is not None:
        cfg.test_dataloader.dataset.pipeline = deploy_pipeline(
            cfg, shape, labels=True)
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
    cfg = runner_config(args, sub_dir='deploy')
    meta = build_cfg(cfg, args.artefact, args.threads)
    shape = meta['input']['shape']
    print(f'evaluating {meta["backend"]} {meta["precision"]} '
          f'({"any size" if shape is None else "%dx%d" % tuple(shape[2:])})'
          f' from {args.artefact}')
    apply_test_outputs(cfg, args)
    return Runner.from_cfg(cfg).test()


if __name__ == '__main__':
    main()

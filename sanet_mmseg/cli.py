# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""The command-line arguments that several of the project's tools take,
declared once so that they read and behave the same everywhere."""
import argparse
import os
import os.path as osp
from typing import Callable, Optional, Sequence, Tuple, Union

from mmengine.config import Config, DictAction

from .engine import add_tensorboard, load_config, setup_runtime
from .fileio import is_checkpoint

# Help of the positional arguments the tools share
POSITIONALS = dict(
    config='config file',
    checkpoint='checkpoint file',
    artefact='artefact folder of tools/deployment/export.py',
    img='an image or a folder of images')


def positive(kind: type) -> Callable[[str], Union[int, float]]:
    """An argparse ``type`` that reads ``kind`` and refuses values <= 0."""

    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f'must be positive, got {text}')
        return value

    parse.__name__ = f'positive {kind.__name__}'
    return parse


def checkpoint_file(path: str) -> str:
    """An argparse ``type`` for a checkpoint file: refuses a missing path
    ('checkpoint not found') and any file that is not a checkpoint ('not a
    checkpoint', e.g. an artefact's model.xml) before torch's unpickler
    sees it."""
    if not osp.isfile(path):
        raise argparse.ArgumentTypeError(f'checkpoint not found: {path}')
    if not is_checkpoint(path):
        raise argparse.ArgumentTypeError(
            f'not a checkpoint: {path} (a checkpoint is a file written by '
            'torch.save, e.g. a .pth of tools/train.py)')
    return path


def checkpoint_or_none(path: str) -> str:
    """:func:`checkpoint_file`, or 'none' (random weights) as is."""
    return path if path.lower() == 'none' else checkpoint_file(path)


def is_artefact(path: str) -> bool:
    """Whether a model argument names an artefact of
    ``tools/deployment/export.py`` (its folder or its ``deploy.json``)
    rather than a checkpoint file."""
    return osp.isdir(path) or osp.basename(path) == 'deploy.json'


def checkpoint_or_artefact(path: str) -> str:
    """An artefact (:func:`is_artefact`) as is, otherwise
    :func:`checkpoint_file`: for tools that run either."""
    return path if is_artefact(path) else checkpoint_file(path)


def open_for_config(path: str, cfg: Config) -> Tuple[dict, Optional[tuple]]:
    """An artefact's checked meta data (``read_meta``) and the input (H, W)
    its images take (None: any), after the checks that it goes with the
    config (``check_config``: normalisation, classes, input size); a
    mismatch ends the tool with a message naming both."""
    from .deploy import MismatchError, check_config, read_meta
    meta = read_meta(path)
    try:
        return meta, check_config(cfg, meta)
    except MismatchError as e:
        raise SystemExit(f'{path} does not go with the config: {e}')


def tool_parser(doc: str,
                *positionals: Union[str, Sequence[str]],
                random_weights: bool = False) -> argparse.ArgumentParser:
    """A parser whose help is the tool's docstring as written, with its
    positional arguments. CHECKPOINT is checked by
    :func:`checkpoint_file`.

    Args:
        doc (str): The tool's docstring.
        positionals: Names of :data:`POSITIONALS`, or (name, help) pairs.
        random_weights (bool): CHECKPOINT may be 'none' (random weights).
            Default: False.
    """
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for item in positionals:
        if isinstance(item, str):
            item = item, POSITIONALS[item]
        name, text = item
        kind = None
        if name == 'checkpoint':
            kind = checkpoint_or_none if random_weights else checkpoint_file
            if random_weights:
                text += ", or 'none' for random weights"
        parser.add_argument(name, help=text, type=kind)
    return parser


def add_shape(parser: argparse.ArgumentParser,
              text: str,
              default: Optional[Sequence[int]] = None) -> None:
    """``--shape H W``: the model's input height and width, positive."""
    parser.add_argument(
        '--shape',
        type=positive(int),
        nargs=2,
        default=default,
        metavar=('H', 'W'),
        help=text)


def add_threads(parser: argparse.ArgumentParser) -> None:
    """``--threads N``: CPU threads of inference, 0 for torch's number."""
    parser.add_argument(
        '--threads',
        type=int,
        default=0,
        help='CPU threads of inference (default: as many as torch uses)')


def add_verify(parser: argparse.ArgumentParser, verify: str,
               tolerance: str) -> None:
    """``--verify`` (a comparison with the PyTorch model, described by
    ``verify``) and its ``--tolerance`` (``tolerance``; default 1e-3)."""
    parser.add_argument('--verify', action='store_true', help=verify)
    parser.add_argument(
        '--tolerance',
        type=float,
        default=1e-3,
        help=tolerance + ' (default 1e-3)')


def add_runner_args(parser: argparse.ArgumentParser,
                    launcher: bool = False) -> None:
    """MMSeg's ``--cfg-options``, ``--tensorboard`` and, with ``launcher``,
    ``--launcher`` and ``--local-rank``: read by :func:`runner_config`."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file.')
    parser.add_argument(
        '--tensorboard',
        action='store_true',
        help='log to TensorBoard too (losses and metrics; with --show-dir '
        'the painted images), event files in WORK_DIR/TIMESTAMP/vis_data or '
        'under --show-dir')
    if launcher:
        parser.add_argument(
            '--launcher',
            choices=['none', 'pytorch', 'slurm', 'mpi'],
            default='none',
            help='job launcher')
        parser.add_argument(
            '--local_rank', '--local-rank', type=int, default=0)


def runner_config(args: argparse.Namespace,
                  sub_dir: str = '',
                  amp: bool = False) -> Config:
    """The config of a Runner tool's arguments (CONFIG, ``--work-dir`` and
    those of :func:`add_runner_args`) for this machine: read as MMSeg's
    tools read it (:func:`load_config`, under ``sub_dir`` of the default
    work dir), adapted by :func:`setup_runtime` (``amp``: mixed precision),
    with TensorBoard on ``--tensorboard``. Exports ``--local-rank`` as
    LOCAL_RANK unless the launcher did, as MMSeg's tools do."""
    launcher = getattr(args, 'launcher', 'none')
    if hasattr(args, 'local_rank') and 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    cfg = load_config(args.config, args.cfg_options, args.work_dir, sub_dir)
    cfg.launcher = launcher
    setup_runtime(cfg, launcher, amp=amp)
    if args.tensorboard:
        add_tensorboard(cfg)
    return cfg


def add_test_outputs(parser: argparse.ArgumentParser,
                     work_dir: str = 'work_dirs/CONFIG_NAME') -> None:
    """What a test run writes or shows besides its metrics, as in MMSeg's
    tools/test.py: ``--work-dir`` (default ``work_dir``), ``--out``,
    ``--show``, ``--show-dir``, ``--show-interval``, ``--wait-time``; set
    into a config by :func:`apply_test_outputs`."""
    parser.add_argument(
        '--work-dir',
        help=f'where the metrics are dumped as json (default: {work_dir})')
    parser.add_argument(
        '--out',
        help='The directory to save output prediction for offline evaluation')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved (under '
        'work_dir/timestamp/)')
    parser.add_argument(
        '--show-interval',
        type=positive(int),
        default=1,
        help='with --show or --show-dir, paint every N-th batch (default: '
        'every one; MMSeg\'s tools/test.py paints every 50th)')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')


def apply_test_outputs(cfg, args: argparse.Namespace):
    """Set the options of :func:`add_test_outputs` into ``cfg`` (its
    visualization hook and test evaluator), in place; return ``cfg``."""
    if args.show or args.show_dir:
        if 'visualization' not in cfg.default_hooks:
            raise RuntimeError('--show and --show-dir need a visualization '
                               'hook in default_hooks')
        hook = cfg.default_hooks['visualization']
        hook.update(draw=True, interval=args.show_interval)
        if args.show:
            hook.update(show=True, wait_time=args.wait_time)
        if args.show_dir:
            cfg.visualizer['save_dir'] = args.show_dir
    if args.out is not None:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    return cfg

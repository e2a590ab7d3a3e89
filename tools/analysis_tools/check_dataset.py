# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Read every image and label of a config's datasets, in parallel, and
report all problems at once before a long training run: files that cannot
be decoded, images without a label and labels without an image, labels of
another size than their image, label values that are neither a class
index nor the ignore index (after the dataset's label_map and
reduce_zero_label). Exits with status 1 when there is any.

    python tools/analysis_tools/check_dataset.py CONFIG [--splits train val]
"""
import sys

from mmengine.config import DictAction

from sanet_mmseg.cli import tool_parser
from sanet_mmseg.dataset_check import check_datasets, format_problems
from sanet_mmseg.engine import load_config


def parse_args():
    parser = tool_parser(__doc__, 'config')
    parser.add_argument(
        '--splits',
        nargs='+',
        default=['train', 'val'],
        choices=['train', 'val', 'test'],
        help='the dataloaders whose datasets are read (default: train val)')
    parser.add_argument(
        '--nproc',
        type=int,
        default=None,
        help='processes that read the files (default: the usable CPUs)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value')
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options)
    report = check_datasets(cfg, args.splits, args.nproc)
    if report.problems:
        print(format_problems(report.problems))
    print(report.summary())
    sys.exit(1 if report.problems else 0)


if __name__ == '__main__':
    main()

# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Score a folder of Cityscapes labelIds predictions with Cityscapes' own
evaluator (``cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling``,
the test server's code), and print its tables.

Check a submission on the val split before uploading the test split's:

    python tools/test.py \
        configs/sanet/sanet-s_cityscapes-val-submission.py CKPT
    python tools/analysis_tools/cityscapes_eval.py \\
        work_dirs/sanet-s_cityscapes-val-submission/labelIds \\
        data/cityscapes/gtFine/val

Predictions are matched to the ground truth as the server does (a file
``CITY_SEQ_FRAME*.png`` per ``CITY_SEQ_FRAME_gtFine_labelIds.png``). The
instance-level scores (nIoU) need the ``*_gtFine_instanceIds.png`` files
beside the labelIds; ``--no-instances`` computes the IoUs without them.
The evaluator calls ``np.in1d``, which NumPy 2.4 removed: it is provided
as ``np.isin`` while the evaluator runs.
"""
import argparse
import contextlib
import io
import os.path as osp
from typing import Iterator, Optional

import numpy as np

from sanet_mmseg.fileio import atomic_path, list_files


@contextlib.contextmanager
def numpy_in1d() -> Iterator[None]:
    """``np.in1d`` (removed in NumPy 2.4) as ``np.isin`` on the flattened
    input, for the duration of the block; nothing changes on a NumPy that
    has it."""
    if hasattr(np, 'in1d'):
        yield
        return

    def in1d(ar1, ar2, assume_unique=False, invert=False):
        return np.isin(
            ar1, ar2, assume_unique=assume_unique, invert=invert).ravel()

    np.in1d = in1d
    try:
        yield
    finally:
        del np.in1d


def evaluate(pred_dir: str,
             gt_dir: str,
             instances: bool = True,
             out: Optional[str] = None) -> dict:
    """Run the official evaluator on the predictions in ``pred_dir``
    against every ``*_gtFine_labelIds.png`` under ``gt_dir``.

    Args:
        pred_dir (str): Folder of labelIds PNGs, searched recursively.
        gt_dir (str): Ground-truth folder, e.g. ``gtFine/val``.
        instances (bool): Compute the instance-level scores (nIoU) from the
            ``*_gtFine_instanceIds.png`` files. Default: True.
        out (str, optional): Write the evaluator's JSON result here.
            Default: None.

    Returns:
        dict: The evaluator's result (``averageScoreClasses`` is the class
        mIoU in [0, 1], ``classScores`` the IoU per class, ...).
    """
    from cityscapesscripts.evaluation import \
        evalPixelLevelSemanticLabeling as cs_eval

    if not osp.isdir(pred_dir):
        raise FileNotFoundError(f'prediction folder not found: {pred_dir}')
    gts = list_files(gt_dir, suffixes=('_gtFine_labelIds.png', ))
    if instances:
        missing = [
            p for p in gts
            if not osp.isfile(p.replace('_labelIds.png', '_instanceIds.png'))
        ]
        if missing:
            raise FileNotFoundError(
                f'{len(missing)} of {len(gts)} ground-truth frames have no '
                '_gtFine_instanceIds.png for the instance-level scores, e.g. '
                f'{missing[0]}; pass --no-instances to compute the IoUs only')
    args = cs_eval.args
    args.predictionPath = osp.abspath(pred_dir)
    args.predictionWalk = None  # the folder is walked again on each call
    args.evalInstLevelScore = instances
    args.quiet = False
    preds = []
    for gt in gts:
        message = io.StringIO()
        try:
            with contextlib.redirect_stdout(message):
                preds.append(cs_eval.getPrediction(args, gt))
        except SystemExit:  # the evaluator's printError
            raise FileNotFoundError(
                message.getvalue().strip() + f' (in {pred_dir})') from None
    with numpy_in1d():
        if out is None:
            args.JSONOutput = False
            return cs_eval.evaluateImgLists(preds, gts, args)
        args.JSONOutput = True
        with atomic_path(out) as tmp:
            args.exportFile = tmp
            return cs_eval.evaluateImgLists(preds, gts, args)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('pred_dir', help='folder of labelIds predictions')
    parser.add_argument('gt_dir', help='ground-truth folder, e.g. '
                        'data/cityscapes/gtFine/val')
    parser.add_argument(
        '--no-instances',
        action='store_true',
        help='skip the instance-level scores (nIoU), which need '
        '*_gtFine_instanceIds.png')
    parser.add_argument('--out', help="write the evaluator's JSON here")
    args = parser.parse_args()
    result = evaluate(args.pred_dir, args.gt_dir, not args.no_instances,
                      args.out)
    print(f'class mIoU: {100 * result["averageScoreClasses"]:.2f}')
    if args.no_instances:
        print('(--no-instances: the nIoU columns above are not meaningful)')


if __name__ == '__main__':
    main()

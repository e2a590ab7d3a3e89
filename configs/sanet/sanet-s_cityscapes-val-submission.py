# SANet-S on the Cityscapes val split: the val mIoU (IoUMetric) and, as for
# the test server, one labelIds PNG per frame, so that a submission can be
# checked locally with Cityscapes' official evaluator before uploading:
#   python tools/test.py \
#       configs/sanet/sanet-s_cityscapes-val-submission.py CKPT
#   python tools/analysis_tools/cityscapes_eval.py \
#       work_dirs/sanet-s_cityscapes-val-submission/labelIds \
#       data/cityscapes/gtFine/val
# For SANet-M/L add --cfg-options model.backbone.arch=m (or l).
_base_ = './sanet-s_cityscapes.py'

test_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    dict(
        type='CityscapesMetric',
        format_only=True,
        keep_results=True,
        output_dir='work_dirs/sanet-s_cityscapes-val-submission/labelIds')
]

# SANet-S on the Cityscapes test split: writes one labelIds PNG per frame,
# named after it, for the test server (zip the folder and upload it):
#   python tools/test.py configs/sanet/sanet-s_cityscapes-submission.py CKPT
_base_ = './sanet-s_cityscapes.py'

test_dataloader = dict(
    dataset=dict(
        data_prefix=dict(_delete_=True, img_path='leftImg8bit/test'),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=(2048, 1024), keep_ratio=True),
            dict(type='PackSegInputs')
        ]))
test_evaluator = dict(
    _delete_=True,
    type='CityscapesMetric',
    format_only=True,
    keep_results=True,
    output_dir='work_dirs/sanet-s_cityscapes-submission/labelIds')

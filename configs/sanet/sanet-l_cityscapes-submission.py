# SANet-L on the Cityscapes test split: labelIds PNGs for the test server.
#   python tools/test.py configs/sanet/sanet-l_cityscapes-submission.py CKPT
_base_ = './sanet-s_cityscapes-submission.py'
model = dict(backbone=dict(arch='l'))
test_evaluator = dict(
    output_dir='work_dirs/sanet-l_cityscapes-submission/labelIds')

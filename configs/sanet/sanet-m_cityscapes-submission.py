# SANet-M on the Cityscapes test split: labelIds PNGs for the test server.
#   python tools/test.py configs/sanet/sanet-m_cityscapes-submission.py CKPT
_base_ = './sanet-s_cityscapes-submission.py'
model = dict(backbone=dict(arch='m'))
test_evaluator = dict(
    output_dir='work_dirs/sanet-m_cityscapes-submission/labelIds')

# SANet-M on Cityscapes train+val for the test server: the SANet-S
# train+val recipe with the M backbone.
_base_ = './sanet-s_cityscapes-trainval.py'
model = dict(backbone=dict(arch='m'))
test_evaluator = dict(
    output_dir='work_dirs/sanet-m_cityscapes-trainval/labelIds')

# SANet-L on Cityscapes train+val for the test server: the SANet-S
# train+val recipe with the L backbone.
_base_ = './sanet-s_cityscapes-trainval.py'
model = dict(backbone=dict(arch='l'))
test_evaluator = dict(
    output_dir='work_dirs/sanet-l_cityscapes-trainval/labelIds')

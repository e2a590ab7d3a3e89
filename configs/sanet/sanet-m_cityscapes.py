# SANet-M on Cityscapes: the SANet-S recipe with the M backbone.
_base_ = './sanet-s_cityscapes.py'
model = dict(backbone=dict(arch='m'))

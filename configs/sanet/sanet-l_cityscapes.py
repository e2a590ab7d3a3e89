# SANet-L on Cityscapes: the SANet-S recipe with the L backbone.
_base_ = './sanet-s_cityscapes.py'
model = dict(backbone=dict(arch='l'))

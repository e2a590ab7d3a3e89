# SANet-L pre-trained on ImageNet-1k: the SANet-S recipe with the L backbone.
_base_ = './sanet-s_in1k.py'
model = dict(backbone=dict(backbone=dict(arch='l')))

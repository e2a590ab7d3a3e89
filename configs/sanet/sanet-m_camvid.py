# SANet-M on CamVid: the SANet-S CamVid recipe with the M backbone.
_base_ = './sanet-s_camvid.py'
model = dict(backbone=dict(arch='m'))

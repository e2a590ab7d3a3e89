# SANet-S pre-trained on ImageNet-1k as the reference does: the whole
# segmentation network (backbone, APPPM, SAD fusion) with a classifier on the
# pooled decoder feature: Linear(64->128) - BN1d - ReLU - Dropout(0.2) -
# Linear(128->1000). MMPretrain's ResNet recipe: 8 GPUs x 32, SGD 0.1, 100
# epochs. Train with `mim train mmpretrain configs/sanet/sanet-s_in1k.py`.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs32.py',
    'mmpretrain::_base_/schedules/imagenet_bs256.py',
    'mmpretrain::_base_/default_runtime.py'
]
custom_imports = dict(
    imports=['sanet_mmseg', 'sanet_mmseg.models.classifiers'],
    allow_failed_imports=False)

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='SANetClsBackbone',
        backbone=dict(type='SANet', arch='s', norm_cfg=norm_cfg),
        neck=dict(type='APPPM', norm_cfg=norm_cfg),
        fusion=dict(type='SADFusion', in_channels=128, channels=64)),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='StackedLinearClsHead',
        num_classes=1000,
        in_channels=64,
        mid_channels=[128],
        dropout_rate=0.2,
        norm_cfg=dict(type='BN1d'),
        act_cfg=dict(type='ReLU'),
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))

# SANet-S on the project's generated demo dataset (Cityscapes layout), sized
# for a CPU: 512x256 frames, 256x256 crops, 400 iterations. Make the data
# with tools/dataset_converters/make_demo_dataset.py.
_base_ = './sanet-s_cityscapes.py'

data_root = 'data/sanet_demo/'
crop_size = (256, 256)
# The 7 Cityscapes classes the generator draws (sanet_mmseg.datasets.demo.
# DEMO_METAINFO): MMSeg's dataset maps their trainIds to 0-6, the others
# to 255, so the evaluation lists only classes the data holds.
metainfo = dict(
    classes=('road', 'sidewalk', 'building', 'vegetation', 'sky', 'person',
             'car'),
    palette=[[128, 64, 128], [244, 35, 232], [70, 70, 70], [107, 142, 35],
             [70, 130, 180], [220, 20, 60], [0, 0, 142]])
norm_cfg = dict(type='BN', requires_grad=True)
# the reference's losses without its Cityscapes class weights
ohem = dict(
    type='OhemCrossEntropy', thres=0.9, min_kept=131072, loss_weight=1.0)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(norm_cfg=norm_cfg),
    neck=dict(norm_cfg=norm_cfg),
    decode_head=dict(
        num_classes=7,
        norm_cfg=norm_cfg,
        loss_decode=[
            dict(
                type='CrossEntropyLoss',
                use_sigmoid=False,
                loss_weight=0.4,
                loss_name='loss_aux'),
            dict(**ohem, loss_name='loss_sem'),
            dict(type='BoundaryLoss', loss_weight=20.0, loss_name='loss_bd'),
            dict(**ohem, loss_name='loss_sem_bd'),
        ]))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(512, 256),
        ratio_range=(0.75, 1.5),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='GenerateEdge', edge_width=4),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(512, 256), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(
        data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=1,
    dataset=dict(
        data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader

iters = 400
train_cfg = dict(max_iters=iters, val_interval=iters)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=iters, max_keep_ckpts=1))
env_cfg = dict(cudnn_benchmark=False)

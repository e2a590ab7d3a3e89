# SANet-S on CamVid (11 classes, 960x720): the reference recipe, initialised
# from a Cityscapes model, trained on train+val, tested on test.
# Data: tools/dataset_converters/camvid.py data/camvid
_base_ = './sanet-s_cityscapes.py'

# a Cityscapes checkpoint of the same variant (its 19-class classifiers do
# not fit and are left to their initialisation)
load_from = None

dataset_type = 'CamVidDataset'
data_root = 'data/camvid/'
crop_size = (720, 960)
ohem = dict(
    type='OhemCrossEntropy', thres=0.9, min_kept=131072, loss_weight=1.0)
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(
        num_classes=11,
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

# the Cityscapes config's sample generation with a long side of
# 960 x (0.5 + k / 10) and 720x960 crops
base_size = 960
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='GenerateCannyEdge', edge_width=4),
    dict(
        type='RandomChoiceResize',
        scales=[(int(base_size * (0.5 + k / 10) + 0.5), ) * 2
                for k in range(17)],
        resize_type='Resize',
        keep_ratio=True),
    dict(
        type='PadSegFields',
        size=crop_size[::-1],
        pad_val=dict(img=0, seg=255, gt_edge_map=0)),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(960, 720), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
# --tta: the Cityscapes config's scales 0.5-1.25 and flip


train_dataloader = dict(
    batch_size=4,  # x 2 GPUs: the reference's batch of 8
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[
            dict(
                type=dataset_type,
                data_root=data_root,
                data_prefix=dict(
                    img_path=split, seg_map_path=f'{split}_labels'),
                pipeline=train_pipeline) for split in ('train', 'val')
        ]))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='test', seg_map_path='test_labels'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# 150 epochs of the 468 train+val frames at batch 8
iters = 8800
optim_wrapper = dict(optimizer=dict(lr=0.001))
train_cfg = dict(max_iters=iters, val_interval=iters // 10)
default_hooks = dict(checkpoint=dict(interval=iters // 10))

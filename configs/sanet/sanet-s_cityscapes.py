# SANet-S on Cityscapes: the reference recipe (arXiv 2309.10519).
# 2 GPUs x 6 images, crop 1024x1024, SGD 0.01, poly, 120k iterations.
_base_ = [
    'mmseg::_base_/datasets/cityscapes_1024x1024.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
custom_imports = dict(imports=['sanet_mmseg'], allow_failed_imports=False)

# Converted ImageNet weights (tools/model_converters/sanet2mmseg.py) to start
# from, as the reference does; None trains from scratch.
load_from = None

# Cityscapes class weights of the reference (trainId order).
class_weight = [
    0.8373, 0.918, 0.866, 1.0345, 1.0166, 0.9969, 0.9754, 1.0489, 0.8786,
    1.0023, 0.9539, 0.9843, 1.1116, 0.9037, 1.0865, 1.0955, 1.0865, 1.1529,
    1.0507
]
crop_size = (1024, 1024)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=crop_size)
# SyncBN across GPUs; a run without CUDA uses plain BN (tools/train.py).
norm_cfg = dict(type='SyncBN', requires_grad=True)
ohem = dict(
    type='OhemCrossEntropy',
    thres=0.9,
    min_kept=131072,
    class_weight=class_weight,
    loss_weight=1.0)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='SANet',
        arch='s',
        channels=32,
        align_corners=False,
        norm_cfg=norm_cfg,
        act_cfg=dict(type='ReLU', inplace=True)),
    neck=dict(
        type='APPPM',
        in_channels=512,
        branch_channels=128,
        out_channels=128,
        norm_cfg=norm_cfg),
    decode_head=dict(
        type='SADHead',
        in_channels=128,
        channels=64,
        boundary_channels=32,
        num_classes=19,
        norm_cfg=norm_cfg,
        act_cfg=dict(type='ReLU', inplace=True),
        align_corners=True,
        loss_decode=[
            dict(
                type='CrossEntropyLoss',
                use_sigmoid=False,
                class_weight=class_weight,
                loss_weight=0.4,
                loss_name='loss_aux'),
            dict(**ohem, loss_name='loss_sem'),
            dict(type='BoundaryLoss', loss_weight=20.0, loss_name='loss_bd'),
            dict(**ohem, loss_name='loss_sem_bd'),
        ]),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

# The authors' training samples (gen_sample of their base_dataset.py): the
# boundary target from the full-resolution label, resized, padded, cropped
# and flipped with it; a long side of 2048 x (0.5 + k / 10), k = 0..16; the
# frame padded with black (label 255, boundary 0) before normalisation
# where it is smaller than the crop.
# MMSeg's GenerateEdge(edge_width=4) after the crop is the alternative
# (docs/implementation.md).
base_size = 2048
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
# MMSeg's CityscapesDataset, with errors for missing or unlabelled folders
dataset_type = 'CheckedCityscapesDataset'
train_dataloader = dict(
    batch_size=6,
    dataset=dict(type=dataset_type, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(type=dataset_type))
test_dataloader = val_dataloader

img_ratios = [0.5, 0.75, 1.0, 1.25]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(type='Resize', scale_factor=r, keep_ratio=True)
                for r in img_ratios
            ],
            [
                dict(type='RandomFlip', prob=0., direction='horizontal'),
                dict(type='RandomFlip', prob=1., direction='horizontal')
            ], [dict(type='LoadAnnotations')], [dict(type='PackSegInputs')]
        ])
]

iters = 120000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0005,
        nesterov=True),
    clip_grad=None)
# poly decay to 0 over the whole run: MMEngine ends it at train_cfg.max_iters,
# so configs that inherit this one set only max_iters
param_scheduler = [
    dict(type='PolyLR', eta_min=0, power=0.9, begin=0, by_epoch=False)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=iters, val_interval=iters // 10)
# keeps the checkpoint of the best val mIoU too (best_mIoU_iter_N.pth), as
# the reference keeps best.pt; all written atomically. non_finite stops the
# run at the first NaN or Inf loss or weight, naming the last checkpoint;
# preemption saves and stops on SIGUSR1 (tools/slurm_submit.sh requeues the
# job, which resumes); see docs/reliability.md
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    non_finite=dict(type='CheckNonFiniteHook'),
    preemption=dict(type='PreemptionHook'),
    checkpoint=dict(
        type='AtomicCheckpointHook',
        by_epoch=False,
        interval=iters // 10,
        save_best='mIoU'))
randomness = dict(seed=304)

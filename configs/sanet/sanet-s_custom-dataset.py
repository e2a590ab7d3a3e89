# SANet-S on your own classes: copy this file, change the lines marked
# "yours", and train it as any config. docs/custom_dataset.md explains each.
# The rest (model, the SAD head's four losses, GenerateEdge, SGD, poly decay,
# best-mIoU checkpoint) is the Cityscapes recipe of sanet-s_cityscapes.py.
_base_ = './sanet-s_cityscapes.py'

# yours: the data. Images data_root/img_dir/{train,val}/NAME{img_suffix},
# labels data_root/ann_dir/{train,val}/NAME{seg_map_suffix}: one channel,
# pixel value i = classes[i], 255 = ignored (any other value is an error).
data_root = 'data/my_dataset/'
img_suffix = '.jpg'
seg_map_suffix = '.png'
classes = ('background', 'road', 'car')
palette = [[0, 0, 0], [128, 64, 128], [0, 0, 142]]
# yours: None, or one weight per class (as many as classes: the Cityscapes
# weights of the base config fit only its 19 classes)
class_weight = None
# yours: frames are resized to about `scale` (w, h) and cropped to crop_size
scale = (2048, 1024)
crop_size = (1024, 1024)
# yours: converted Cityscapes or ImageNet weights to start from (their
# 19-class classifiers do not fit and keep their initialisation), or None
load_from = None
# yours: iterations (the poly decay ends there) and images per GPU
iters = 20000
batch_size = 6

num_classes = len(classes)
ohem = dict(
    type='OhemCrossEntropy',
    thres=0.9,
    min_kept=131072,
    class_weight=class_weight,
    loss_weight=1.0)
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(
        num_classes=num_classes,
        # SADHead needs exactly these four losses, in this order
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
        ]))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize', scale=scale, ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    # the boundary head's target: SADHead needs it
    dict(type='GenerateEdge', edge_width=4),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
# MMSeg's BaseSegDataset with errors for missing folders or labels and for
# label values that are no class
dataset_type = 'CheckedSegDataset'
dataset_train = dict(
    type=dataset_type,
    data_root=data_root,
    metainfo=dict(classes=classes, palette=palette),
    img_suffix=img_suffix,
    seg_map_suffix=seg_map_suffix,
    data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
    pipeline=train_pipeline)
dataset_val = dict(
    dataset_train,
    data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
    pipeline=test_pipeline)
train_dataloader = dict(batch_size=batch_size, dataset=dataset_train)
val_dataloader = dict(dataset=dataset_val)
test_dataloader = val_dataloader

train_cfg = dict(max_iters=iters, val_interval=iters // 10)
default_hooks = dict(checkpoint=dict(interval=iters // 10))

# SANet-S on GTAV (Playing for Data), trained and evaluated on the 19
# Cityscapes classes; initialised from Cityscapes (or from scratch).
# Data: tools/dataset_converters/gtav.py data/gtav --split-mat split.mat
_base_ = './sanet-s_cityscapes.py'

load_from = None
dataset_type = 'GTAVDataset'
data_root = 'data/gtav/'
gtav = dict(
    type=dataset_type,
    data_root=data_root,
    data_prefix=dict(img_path='images', seg_map_path='labels'))
train_dataloader = dict(dataset=dict(gtav, ann_file='train.txt'))
val_dataloader = dict(dataset=dict(gtav, ann_file='val.txt'))
test_dataloader = val_dataloader

# 150 epochs of GTAV's 12403 training frames at batch 12
iters = 155000
optim_wrapper = dict(optimizer=dict(lr=0.001))
train_cfg = dict(max_iters=iters, val_interval=iters // 10)
default_hooks = dict(checkpoint=dict(interval=iters // 10))

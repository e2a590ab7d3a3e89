# SANet-S on Cityscapes train+val (2975 + 500 frames), as the authors train
# their test-server models (test mIoU 78.4 for S, paper Table 8); the rest
# of the recipe is sanet-s_cityscapes.py's. No validation (val is trained
# on); testing writes the test split's labelIds PNGs for the server:
#   bash tools/dist_train.sh configs/sanet/sanet-s_cityscapes-trainval.py 2
#   python tools/test.py configs/sanet/sanet-s_cityscapes-trainval.py CKPT
_base_ = './sanet-s_cityscapes-submission.py'

# the train set of sanet-s_cityscapes.py, once per split
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[
            dict(
                _base_.train_dataloader.dataset,
                data_prefix=dict(
                    img_path=f'leftImg8bit/{split}',
                    seg_map_path=f'gtFine/{split}'))
            for split in ('train', 'val')
        ]))
val_dataloader = None
val_evaluator = None
val_cfg = None
default_hooks = dict(checkpoint=dict(save_best=None))
test_evaluator = dict(
    output_dir='work_dirs/sanet-s_cityscapes-trainval/labelIds')

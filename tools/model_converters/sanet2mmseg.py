# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Convert the SANet authors' checkpoints to MMSegmentation checkpoints.

Takes their released Cityscapes/CamVid ``.pt`` files, their training
``checkpoint*.pth.tar`` files and their ImageNet weights. The variant and the
class count come from the tensors' shapes.
"""
import argparse
import os.path as osp

from sanet_mmseg.checkpoint import (AUTHORS_FORMS, convert_authors_checkpoint,
                                    save_checkpoint)

CONFIG_DIR = osp.join(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))), 'configs', 'sanet')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('src', help="the authors' checkpoint")
    parser.add_argument('dst', help='where to write the MMSeg checkpoint')
    parser.add_argument(
        '--config',
        help='config of the target model (default: the Cityscapes config '
        'of the detected variant, or the CamVid one for 11 classes)')
    parser.add_argument(
        '--form',
        choices=AUTHORS_FORMS,
        help="the file's form: released .pt (keys prefixed 'model.'), "
        'training checkpoint (state_dict + epoch/optimizer) or ImageNet '
        "weights (bare state dict); told from the file's layout by default")
    parser.add_argument(
        '--mmpretrain',
        action='store_true',
        help='write the ImageNet weights for the MMPretrain classifier '
        '(configs/sanet/sanet-*_in1k.py) instead')
    return parser.parse_args()


def main():
    args = parse_args()
    ckpt, report = convert_authors_checkpoint(
        args.src,
        config=args.config,
        config_dir=CONFIG_DIR,
        form=args.form,
        mmpretrain=args.mmpretrain)
    save_checkpoint(ckpt, args.dst)
    print(report)
    print(f'saved {args.dst}')


if __name__ == '__main__':
    main()

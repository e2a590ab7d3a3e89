# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Convert CamVid's colour labels to the 11-class index maps of SANet.

Expects the usual layout (the SegNet 367/101/233 split): ROOT/{train,val,test}
with the frames and ROOT/{train,val,test}_labels/NAME_L.png with the 32-class
colour labels. Writes ROOT/{split}_labels/NAME_trainIds.png (class indices in
the order of ``CamVidDataset``, 255 for void and any other colour).
"""
import argparse
import os.path as osp
from collections import Counter

import mmcv
import numpy as np
from mmengine.utils import track_parallel_progress, track_progress

from sanet_mmseg.datasets import CamVidDataset
from sanet_mmseg.fileio import label_files

SPLITS = ('train', 'val', 'test')
# The 32 CamVid colours (RGB) grouped into the 11 classes; others are void.
GROUPS = {
    'bicyclist': [(0, 128, 192), (192, 0, 192)],  # + MotorcycleScooter
    'building': [(128, 0, 0), (64, 192, 0), (192, 0, 128)],  # + Wall, Archway
    'car': [(64, 0, 128), (64, 128, 192), (192, 128, 192), (128, 64, 64),
            (192, 64, 128)],  # + SUVPickupTruck, Truck_Bus, OtherMoving, Train
    'column_pole': [(192, 192, 128), (0, 0, 64)],  # + TrafficCone
    'fence': [(64, 64, 128)],
    'pedestrian': [(64, 64, 0), (192, 128, 64), (64, 0, 192)],  # + Child,
    # CartLuggagePram
    'road': [(128, 64, 128), (128, 0, 192), (192, 0, 64), (128, 128, 192)],
    # + LaneMkgsDriv, LaneMkgsNonDriv, RoadShoulder
    'sidewalk': [(0, 0, 192), (64, 192, 128)],  # + ParkingBlock
    'sign_symbol': [(192, 128, 128), (128, 128, 64), (0, 64, 64)],
    # + Misc_Text, TrafficLight
    'sky': [(128, 128, 128)],
    'tree': [(128, 128, 0), (192, 192, 0)],  # + VegetationMisc
}
VOID = [(0, 0, 0), (64, 128, 64), (0, 128, 64), (64, 0, 64)]
# Void, Animal, Bridge, Tunnel


def colour_table() -> np.ndarray:
    """A lookup from 24-bit RGB to class index (255 elsewhere)."""
    table = np.full(1 << 24, 255, np.uint8)
    for index, name in enumerate(CamVidDataset.METAINFO['classes']):
        for r, g, b in GROUPS[name]:
            table[(r << 16) | (g << 8) | b] = index
    return table


def convert_label(label_path: str, table: np.ndarray) -> Counter:
    """Write NAME_trainIds.png beside NAME_L.png; returns the colours that
    are in no class and not known void, with their pixel counts."""
    rgb = mmcv.imread(label_path, channel_order='rgb').astype(np.int32)
    code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    mmcv.imwrite(table[code], label_path[:-len('_L.png')] + '_trainIds.png')
    unknown = Counter()
    known_void = {(r << 16) | (g << 8) | b for r, g, b in VOID}
    values, counts = np.unique(code[table[code] == 255], return_counts=True)
    for value, count in zip(values, counts):
        if value not in known_void:
            unknown[(int(value) >> 16, (int(value) >> 8) & 255,
                     int(value) & 255)] += int(count)
    return unknown


def check_split(root: str, split: str) -> list:
    """The colour labels of one split; errors name what is missing."""
    return label_files(
        osp.join(root, split), osp.join(root, f'{split}_labels'),
        lambda name: name[:-len('.png')] + '_L.png', 'CamVid')


def convert_camvid(root: str, nproc: int = 1) -> dict:
    """Convert every split. Returns {split: frames} and prints the unknown
    colours met (mapped to 255)."""
    table = colour_table()
    counts, unknown = {}, Counter()
    for split in SPLITS:
        labels = check_split(root, split)
        if nproc > 1:
            results = track_parallel_progress(
                convert_label, [(p, table) for p in labels], nproc)
        else:
            results = track_progress(
                lambda p: convert_label(p, table), labels)
        for r in results:
            unknown.update(r)
        counts[split] = len(labels)
    for colour, pixels in unknown.most_common():
        print(f'unknown colour {colour}: {pixels} pixels set to 255')
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('root', help='CamVid root folder')
    parser.add_argument('--nproc', type=int, default=1, help='processes')
    args = parser.parse_args()
    counts = convert_camvid(args.root, args.nproc)
    print(f'converted {counts}')


if __name__ == '__main__':
    main()

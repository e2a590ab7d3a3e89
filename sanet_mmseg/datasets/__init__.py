from .camvid import CamVidDataset
from .checked import (CheckedCityscapesDataset, CheckedDatasetMixin,
                      CheckedSegDataset)
from .demo import make_demo_dataset
from .gtav import GTAVDataset
from .metainfo import config_dataset_meta
from .transforms import CheckLabelValues, GenerateMultiClassEdge

__all__ = [
    'CamVidDataset', 'CheckedCityscapesDataset', 'CheckedDatasetMixin',
    'CheckedSegDataset', 'CheckLabelValues', 'GenerateMultiClassEdge',
    'GTAVDataset', 'config_dataset_meta', 'make_demo_dataset'
]

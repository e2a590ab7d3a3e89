from .camvid import CamVidDataset
from .checked import CheckedCityscapesDataset, CheckedDatasetMixin
from .demo import make_demo_dataset
from .gtav import GTAVDataset

__all__ = [
    'CamVidDataset', 'CheckedCityscapesDataset', 'CheckedDatasetMixin',
    'GTAVDataset', 'make_demo_dataset'
]

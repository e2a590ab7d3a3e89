from .camvid import CamVidDataset
from .checked import CheckedCityscapesDataset, CheckedDatasetMixin
from .demo import make_demo_dataset
from .gtav import GTAVDataset
from .transforms import GenerateMultiClassEdge

__all__ = [
    'CamVidDataset', 'CheckedCityscapesDataset', 'CheckedDatasetMixin',
    'GenerateMultiClassEdge', 'GTAVDataset', 'make_demo_dataset'
]

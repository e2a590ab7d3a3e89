from .boundary import GenerateCannyEdge, label_boundary, multi_class_boundary
from .camvid import CamVidDataset
from .checked import (CheckedCityscapesDataset, CheckedDatasetMixin,
                      CheckedSegDataset)
from .demo import make_demo_dataset
from .gtav import GTAVDataset
from .metainfo import config_dataset_meta
from .transforms import (CheckedLoadImageFromFile, CheckLabelValues,
                         PadSegFields)

__all__ = [
    'CamVidDataset', 'CheckedCityscapesDataset', 'CheckedDatasetMixin',
    'CheckedLoadImageFromFile', 'CheckedSegDataset', 'CheckLabelValues',
    'GenerateCannyEdge', 'GTAVDataset', 'PadSegFields', 'config_dataset_meta',
    'label_boundary', 'make_demo_dataset', 'multi_class_boundary'
]

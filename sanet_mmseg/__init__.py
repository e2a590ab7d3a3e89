"""SANet for MMSegmentation: importing this package registers its modules
and lets ``torch.load`` read the checkpoints MMEngine writes. The MMPretrain
classifier for ImageNet pre-training registers on
``import sanet_mmseg.models.classifiers`` (the in1k configs do it), so that
MMPretrain is needed only there."""
from . import serialization  # noqa: F401
from .datasets import *  # noqa: F401,F403
from .engine import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403

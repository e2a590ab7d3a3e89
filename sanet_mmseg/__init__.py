"""SANet for MMSegmentation: importing this package registers its modules
and lets ``torch.load`` read the checkpoints MMEngine writes. The MMPretrain
classifier for ImageNet pre-training registers on
``import sanet_mmseg.models.classifiers`` (the in1k configs do it), so that
MMPretrain is needed only there. With mmcv-lite, :mod:`.mmcv_ext` stands
in for mmcv's compiled ops, which SANet does not use."""
import warnings

from . import mmcv_ext

mmcv_ext.install()
mmcv_ext.require_mmcv()

# MMEngine's package checks (run by every config with ``mmseg::`` bases or
# ``custom_imports``) and MIM import and reload ``pkg_resources``, which
# setuptools >= 67.5 marks deprecated: one warning per reload, several per
# tool run. The pin setuptools<81 (setup.py) keeps it working.
warnings.filterwarnings(
    'ignore', message='pkg_resources is deprecated as an API',
    category=UserWarning)

from . import serialization  # noqa: E402,F401
from .datasets import *  # noqa: E402,F401,F403
from .engine import *  # noqa: E402,F401,F403
from .models import *  # noqa: E402,F401,F403

# The MMPretrain classifier (``.classifiers``) is not imported here, so that
# importing sanet_mmseg does not import MMPretrain: the in1k configs import
# it through ``custom_imports``.
from .backbones import *  # noqa: F401,F403
from .decode_heads import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403

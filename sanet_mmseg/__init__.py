"""SANet for MMSegmentation: importing this package registers its modules
and lets ``torch.load`` read the checkpoints MMEngine writes."""
from . import serialization  # noqa: F401
from .datasets import *  # noqa: F401,F403
from .engine import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403

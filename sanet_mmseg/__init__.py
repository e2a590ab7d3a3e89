"""SANet for MMSegmentation: importing this package registers its modules."""
from .models import *  # noqa: F401,F403

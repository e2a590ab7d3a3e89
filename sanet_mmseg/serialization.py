# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Let ``torch.load(weights_only=True)`` read the checkpoints MMEngine writes.

PyTorch >= 2.6 loads with ``weights_only=True`` by default and MMEngine does
not say otherwise, so checkpoints of MMSeg's own training loop (which hold a
``HistoryBuffer`` and numpy scalars, arrays and dtypes in ``message_hub``)
fail to load in ``init_model``, ``load_from`` and ``--resume``. This module
allow-lists exactly the globals those checkpoints reference. ``weights_only``
stays on: a checkpoint that needs anything else is still refused, so no
checkpoint can run code.

``builtins.getattr`` is needed because ``HistoryBuffer`` pickles its
statistics methods by name; the weights-only unpickler only ever calls
allow-listed callables, so what ``getattr`` returns is never called.
"""
import _codecs
import builtins
import collections
import importlib
import warnings

import numpy as np
import torch
from mmengine.logging import HistoryBuffer


def _numpy_globals():
    """numpy arrays, numeric dtypes and scalars, with their reconstructors
    under the names numpy 1 (``numpy.core``) and numpy 2 (``numpy._core``)
    pickle."""
    found = [np.ndarray, np.dtype]
    # numpy 2 builds dtypes as instances of per-type classes (e.g.
    # numpy.dtypes.Float64DType) whose state the unpickler then sets
    found += sorted({type(np.dtype(t))
                     for t in '?bhilqBHILQefd'}, key=str)
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        with warnings.catch_warnings():  # numpy 2 deprecates numpy.core
            warnings.simplefilter('ignore')
            try:
                multiarray = importlib.import_module(module)
            except ImportError:
                continue
        # registered under the name the pickle uses, which is not the
        # object's own module for numpy 1 pickles read under numpy 2
        found += [(getattr(multiarray, name), f'{module}.{name}')
                  for name in ('_reconstruct', 'scalar')]
    return found


MMENGINE_CHECKPOINT_GLOBALS = [
    HistoryBuffer, _codecs.encode, collections.OrderedDict, builtins.getattr
] + _numpy_globals()

torch.serialization.add_safe_globals(MMENGINE_CHECKPOINT_GLOBALS)

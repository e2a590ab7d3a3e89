# Copyright (c) sanet-mmseg contributors. All rights reserved.
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper

from mmseg.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """Mixed precision on the CPU: the forward runs under bfloat16 autocast.

    MMEngine's ``AmpOptimWrapper`` needs a GPU. bfloat16 has float32's
    exponent range, so no loss scaling is needed; weights and optimizer
    state stay float32.
    """

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        with super().optim_context(model), torch.autocast(
                'cpu', dtype=torch.bfloat16):
            yield

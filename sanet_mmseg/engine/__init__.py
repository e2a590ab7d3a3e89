from .checkpoint_hook import AtomicCheckpointHook
from .nonfinite_hook import CheckNonFiniteHook, NonFiniteError
from .optim_wrapper import CPUAmpOptimWrapper
from .preemption import PreemptionHook, relaunched
from .runtime import (add_tensorboard, close_distributed, load_config,
                      setup_runtime)

__all__ = [
    'AtomicCheckpointHook', 'CheckNonFiniteHook', 'CPUAmpOptimWrapper',
    'NonFiniteError', 'PreemptionHook', 'add_tensorboard', 'close_distributed',
    'load_config', 'relaunched', 'setup_runtime'
]

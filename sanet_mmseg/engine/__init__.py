from .checkpoint_hook import AtomicCheckpointHook
from .optim_wrapper import CPUAmpOptimWrapper
from .runtime import add_tensorboard, setup_runtime

__all__ = [
    'AtomicCheckpointHook', 'CPUAmpOptimWrapper', 'add_tensorboard',
    'setup_runtime'
]

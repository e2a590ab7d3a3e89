from .checkpoint_hook import AtomicCheckpointHook
from .optim_wrapper import CPUAmpOptimWrapper
from .runtime import (add_tensorboard, close_distributed, load_config,
                      setup_runtime)

__all__ = [
    'AtomicCheckpointHook', 'CPUAmpOptimWrapper', 'add_tensorboard',
    'close_distributed', 'load_config', 'setup_runtime'
]

from .checkpoint_hook import AtomicCheckpointHook
from .optim_wrapper import CPUAmpOptimWrapper
from .runtime import setup_runtime

__all__ = ['AtomicCheckpointHook', 'CPUAmpOptimWrapper', 'setup_runtime']

from .sanet import SANet

__all__ = ['SANet']

from .apppm import APPPM

__all__ = ['APPPM']

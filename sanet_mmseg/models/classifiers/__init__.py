from .sanet_cls import SANetClsBackbone

__all__ = ['SANetClsBackbone']

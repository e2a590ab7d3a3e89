from .sad_head import SADHead

__all__ = ['SADHead']

from .sad_head import SADFusion, SADHead

__all__ = ['SADFusion', 'SADHead']

"""A stand-in for ``mmcv._ext``, mmcv's compiled ops, where mmcv-lite is
installed: MMSeg imports ``mmcv.ops`` eagerly (focal loss, point and CC
heads), which loads ``mmcv._ext``; SANet calls none of its ops.

:func:`install` puts :class:`StandInFinder` last on ``sys.meta_path``, so
that it answers ``import mmcv._ext`` only when no other finder does: a full
mmcv is never shadowed. Every op of the stand-in raises
:class:`MissingMmcvOpError` naming the op when called.

It is installed at interpreter start by ``sanet_mmseg_mmcv_ext.pth``, which
``setup.py`` writes beside the packages (so that ``from mmseg.apis import
...`` works as a first import, in DDP and data-loader workers too), and by
``import sanet_mmseg``. Standard library only: Python imports it at start.
"""
import importlib.machinery
import sys
import types

NAME = 'mmcv._ext'
HOW_TO_GET_OPS = (
    'SANet needs none of them; the MMSeg models that do need mmcv built '
    "with its ops: 'SANET_MMCV=full bash tools/setup_env.sh', or "
    "'pip uninstall mmcv-lite' then 'mim install \"mmcv>=2.0.0rc4,<2.2.0\"' "
    '(docs/setup.md)')
# mmcv's build information, which its and MMEngine's environment reports ask
BUILD_INFO = {
    'get_compiler_version': 'n/a (mmcv-lite, no compiled ops)',
    'get_compiling_cuda_version': 'n/a (mmcv-lite, no compiled ops)',
}


class MissingMmcvOpError(RuntimeError):
    """A compiled mmcv op was called where only mmcv-lite is installed."""


def _missing_op(name):

    def op(*args, **kwargs):
        raise MissingMmcvOpError(
            f"mmcv op '{name}' is not available: it is one of mmcv's "
            'compiled ops (mmcv._ext), and the installed mmcv is mmcv-lite, '
            f'which has none. {HOW_TO_GET_OPS}.')

    op.__name__ = op.__qualname__ = name
    return op


class StandInModule(types.ModuleType):
    """``mmcv._ext`` without compiled code: any attribute is an op that
    raises when called, except the build information."""

    def __getattr__(self, name):
        if name.startswith('__'):
            raise AttributeError(name)
        if name in BUILD_INFO:
            return lambda: BUILD_INFO[name]
        return _missing_op(name)


class StandInLoader:
    """Makes the :class:`StandInModule` (a loader by duck typing, as
    ``importlib.abc`` costs an import at interpreter start)."""

    stand_in = True  # tells it from mmcv's own loader (tools/setup_env.sh)

    def create_module(self, spec):
        return StandInModule(spec.name, __doc__)

    def exec_module(self, module):
        module.is_stand_in = True


class StandInFinder:
    """Finds ``mmcv._ext`` when the finders before it did not: last on
    ``sys.meta_path``, it is asked only after them."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != NAME:
            return None
        return importlib.machinery.ModuleSpec(NAME, StandInLoader())


def install():
    """Puts one :class:`StandInFinder` last on ``sys.meta_path``."""
    if not any(type(f).__name__ == StandInFinder.__name__
               and type(f).__module__ == __name__ for f in sys.meta_path):
        sys.meta_path.append(StandInFinder())


def require_mmcv():
    """Raises an ImportError that says what to install where no mmcv (full
    or lite) is installed: setup.py cannot require one or the other."""
    import importlib.util
    if importlib.util.find_spec('mmcv') is None:
        raise ImportError(
            "sanet_mmseg needs mmcv, either build: 'pip install "
            "\"mmcv-lite>=2.0.0rc4,<2.2.0\"' (pure Python, all SANet "
            "needs; or pip install -e '.[lite]') or mmcv with its compiled "
            "ops (pip install -e '.[full]', built from source); "
            'tools/setup_env.sh does it for you (docs/setup.md)')


def is_stand_in(module):
    """Whether ``module`` (an imported ``mmcv._ext``) is the stand-in."""
    return getattr(module, 'is_stand_in', False)

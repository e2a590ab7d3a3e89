# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""The registry of inference backends and the interface each one fills
(the facts about a backend live in its module under ``backends/``)."""
from collections.abc import Mapping
from typing import Iterator, Optional, Sequence, Tuple

from mmengine.registry import Registry

#: Inference backends by name (``torch``, ``onnxruntime``, ``openvino``);
#: the tools read their ``--backend`` and ``--precision`` choices here.
BACKENDS = Registry('deployment backend')


class Backend:
    """One inference backend: the precisions it runs, the files of its
    artefacts, how a float32 ONNX file becomes them, and its predictor. A
    new backend is a subclass registered in :data:`BACKENDS`, in a new
    module of ``sanet_mmseg/deploy/backends/`` imported by its
    ``__init__``.

    Attributes:
        name (str): The registered name.
        precisions (tuple[str]): What it runs ('fp32', 'bf16', 'fp16',
            'int8').
        files (tuple[str]): The model files of its artefact, the one the
            predictor opens first; empty: it exports none (PyTorch).
        int8_options (tuple[str]): Keyword options of its int8 export.
        libraries (tuple[str]): The distributions an artefact records the
            versions of.
    """
    name = ''
    precisions: Tuple[str, ...] = ()
    files: Tuple[str, ...] = ()
    int8_options: Tuple[str, ...] = ()
    libraries: Tuple[str, ...] = ()

    def check(self, precision: str, options: Sequence[str] = ()) -> None:
        """Raise a ValueError naming the choices unless this backend runs
        ``precision`` with export ``options``."""
        if precision not in self.precisions:
            raise ValueError(f'{self.name} runs {", ".join(self.precisions)}'
                             f', not {precision!r}')
        allowed = self.int8_options if precision == 'int8' else ()
        extra = sorted(set(options) - set(allowed))
        if extra and not self.int8_options:
            raise ValueError(f'{self.name} takes no export options, got '
                             f'{extra}')
        if extra:
            raise ValueError(f'{extra} apply to {self.name} int8 only (its '
                             f'options: {", ".join(self.int8_options)})')

    def export(self, onnx_file: str, model_dir: str, precision: str,
               calib=None, **options) -> dict:
        """Write this backend's ``files`` into ``model_dir`` from a float32
        ONNX file (which it may move or leave).

        Returns:
            dict: What to add to ``deploy.json`` (e.g. ``accuracy``).
        """
        raise ValueError(f'backend {self.name!r} has no artefact: export '
                         f'to {" or ".join(artefact_backends())}')

    def load(self, path: str, precision: str, threads: int = 0):
        """The :class:`Predictor` of an artefact's first model file."""
        raise NotImplementedError

    def from_model(self, model, precision: str, threads: int = 0):
        """The :class:`Predictor` of an unprepared segmentor, for a backend
        without artefact files."""
        raise NotImplementedError


def get_backend(name: str) -> Backend:
    """The registered backend ``name``; a ValueError names the choices."""
    cls = BACKENDS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f'unknown backend {name!r}: choose from '
                         f'{", ".join(BACKENDS.module_dict)}')
    return cls()


def check_backend(backend: str, precision: str,
                  options: Sequence[str] = ()) -> Backend:
    """The backend ``backend`` once checked to run ``precision`` with
    export ``options`` (a ValueError names the choices)."""
    found = get_backend(backend)
    found.check(precision, options)
    return found


def backend_files(backend: str, precision: str) -> Tuple[str, ...]:
    """The model files of an artefact of ``backend`` in ``precision`` (a
    ValueError for a backend or precision without artefacts)."""
    found = check_backend(backend, precision)
    if not found.files:
        found.export('', '', precision)  # raises: no artefact
    return found.files


def artefact_backends() -> Tuple[str, ...]:
    """The backends that export artefacts."""
    return tuple(name for name, cls in BACKENDS.module_dict.items()
                 if cls.files)


class _Precisions(Mapping):
    """backend name -> its precisions, read from :data:`BACKENDS`."""

    def __getitem__(self, name: str) -> Tuple[str, ...]:
        cls: Optional[type] = BACKENDS.module_dict.get(name)
        if cls is None:
            raise KeyError(name)
        return cls.precisions

    def __iter__(self) -> Iterator[str]:
        return iter(BACKENDS.module_dict)

    def __len__(self) -> int:
        return len(BACKENDS.module_dict)


#: ``{backend: precisions}`` of the registered backends (a live view).
PRECISIONS = _Precisions()

# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Writing files so that a crash never leaves a truncated one."""
import os
import os.path as osp
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path in ``path``'s folder to write to; when the
    block ends without an error it is renamed to ``path``, otherwise it is
    removed and ``path`` is left as it was."""
    tmp = osp.join(
        osp.dirname(osp.abspath(path)),
        f'.{osp.basename(path)}.{os.getpid()}.tmp')
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)

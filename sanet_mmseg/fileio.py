# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Writing files so that a crash never leaves a truncated one, finding the
images of a folder, and reading an image with an error that names it."""
import os
import os.path as osp
import zipfile
from contextlib import contextmanager
from typing import Callable, Iterator, List, Sequence

import mmcv
import numpy as np
from mmengine.utils import scandir

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


@contextmanager
def atomic_path(path: str, fsync: bool = False) -> Iterator[str]:
    """Yield a temporary path in ``path``'s folder to write to; when the
    block ends without an error it is renamed to ``path``, otherwise it is
    removed and ``path`` is left as it was.

    Args:
        path (str): The file to write.
        fsync (bool): Flush the temporary file to disk before the rename,
            so that the new file survives a power cut too. Default: False.
    """
    tmp = osp.join(
        osp.dirname(osp.abspath(path)),
        f'.{osp.basename(path)}.{os.getpid()}.tmp')
    try:
        yield tmp
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def read_image(path: str, flag: str = 'color') -> np.ndarray:
    """``mmcv.imread`` that names the file it cannot read (missing, empty,
    truncated or not an image) instead of OpenCV's ``!buf.empty()``."""
    try:
        image = mmcv.imread(path, flag)
    except Exception as e:  # cv2 and PIL raise several kinds
        raise ValueError(f'cannot read image {path}: {e}') from None
    if image is None:
        raise ValueError(f'cannot read image {path}')
    return image


# torch.save's legacy format starts with the pickled magic number
_LEGACY_MAGIC = b'\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19'


def is_checkpoint(path: str) -> bool:
    """Whether ``path`` is a file ``torch.save`` wrote: a zip archive with a
    ``data.pkl`` (torch >= 1.6) or the legacy pickle format; read from the
    file's header and directory, without unpickling anything."""
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return False
        return any(n == 'data.pkl' or n.endswith('/data.pkl') for n in names)
    with open(path, 'rb') as f:
        return f.read(len(_LEGACY_MAGIC)) == _LEGACY_MAGIC


def list_files(path: str,
               suffixes: Sequence[str] = IMAGE_SUFFIXES) -> List[str]:
    """One file, or the files with one of ``suffixes`` (any case) in a
    folder and its sub-folders, sorted. A missing path or a folder without
    such files is an error naming it."""
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f'no file or folder at {path}')
    files = sorted(
        osp.join(path, p) for p in scandir(
            path, tuple(suffixes), recursive=True, case_sensitive=False))
    if not files:
        raise FileNotFoundError(f'no files ({", ".join(suffixes)}) under '
                                f'{path}')
    return files


def label_files(img_dir: str, ann_dir: str, label_name: Callable[[str], str],
                dataset: str) -> List[str]:
    """The label of each .png image of ``img_dir``: ``ann_dir`` joined with
    ``label_name(image file name)``. A missing folder, a folder without
    images and images without labels are errors naming them."""
    for folder in (img_dir, ann_dir):
        if not osp.isdir(folder):
            raise FileNotFoundError(f'{dataset} folder not found: {folder}')
    images = sorted(p for p in os.listdir(img_dir) if p.endswith('.png'))
    if not images:
        raise FileNotFoundError(f'no .png images in {img_dir}')
    labels = [osp.join(ann_dir, label_name(p)) for p in images]
    missing = [p for p in labels if not osp.isfile(p)]
    if missing:
        raise FileNotFoundError(
            f'{len(missing)} images in {img_dir} have no label, e.g. ' +
            ', '.join(missing[:3]))
    return labels

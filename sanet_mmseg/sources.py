# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""What tools/predict.py reads: the images and videos of its SOURCE
arguments (an image, a folder searched recursively for images and
videos, a glob, a text file
with one path a line, a video file, a camera id), each with the name its
outputs get, which mirrors its path relative to the sources so that names
never collide."""
import glob
import os.path as osp
from typing import List, NamedTuple, Sequence, Tuple

from .fileio import IMAGE_SUFFIXES, list_files

VIDEO_SUFFIXES = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v', '.mpg',
                  '.mpeg', '.wmv')


class Input(NamedTuple):
    """One input: ``kind`` ('image', 'video' or 'camera'), ``path`` (the
    file, or the camera id) and ``name``, its outputs' path relative to the
    output folder, without suffix."""
    kind: str
    path: str
    name: str


class Problem(NamedTuple):
    """An input or source left out, and why."""
    path: str
    reason: str


def kind_of(path: str) -> str:
    """'image' or 'video' by the suffix, else ''."""
    suffix = osp.splitext(path)[1].lower()
    return 'image' if suffix in IMAGE_SUFFIXES else \
        'video' if suffix in VIDEO_SUFFIXES else ''


def _glob_base(pattern: str) -> str:
    """The folder of a glob's leading parts without wildcards."""
    parts = []
    for part in pattern.split(osp.sep):
        if glob.has_magic(part):
            break
        parts.append(part)
    return osp.sep.join(parts) or '.'


def _read_list(path: str, problems: List[Problem]) -> List[str]:
    """The images and videos of a list file (one path a line, relative to
    the list's folder; blank lines and '#' comments skipped); the others
    go to ``problems``."""
    folder = osp.dirname(osp.abspath(path))
    try:
        with open(path, encoding='utf-8') as f:
            lines = [line.strip() for line in f]
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f'cannot read list file {path}: {e}') from None
    files = []
    for line in lines:
        if not line or line.startswith('#'):
            continue
        entry = osp.join(folder, osp.expanduser(line))
        if not osp.isfile(entry):
            problems.append(Problem(line, f'listed in {path}: no such file'))
        elif not kind_of(entry):
            problems.append(Problem(line, f'listed in {path}: not an image '
                                    'or video suffix'))
        else:
            files.append(entry)
    return files


def expand(source: str, problems: List[Problem]) -> Tuple[List[str], str]:
    """The files of one source and the folder their names are relative to;
    a source that gives nothing raises (FileNotFoundError, ValueError)
    naming it; entries of a list that are not there go to ``problems``."""
    if glob.has_magic(source) and not osp.exists(source):
        files = sorted(f for f in glob.glob(source, recursive=True)
                       if osp.isfile(f) and kind_of(f))
        if not files:
            raise FileNotFoundError(f'no image or video matches {source}')
        return files, _glob_base(source)
    if osp.isdir(source):
        return list_files(source, IMAGE_SUFFIXES + VIDEO_SUFFIXES), source
    if not osp.isfile(source):
        raise FileNotFoundError(f'no file or folder {source}')
    if kind_of(source):
        return [source], osp.dirname(source) or '.'
    files = _read_list(source, problems)
    if not files:
        raise ValueError(f'no image or video listed in {source}')
    return files, osp.commonpath([osp.dirname(f) for f in files])


def collect(sources: Sequence[str]) -> Tuple[List[Input], List[Problem]]:
    """The inputs of several sources, each once, named by their path
    relative to the folder common to the sources (a file's name where two
    files differ in suffix only, e.g. ``a.png`` and ``a.jpg``); cameras
    are named ``camera<id>``. Sources and list entries that give nothing
    are returned as problems, not raised."""
    problems: List[Problem] = []
    found, bases = [], []
    for source in sources:
        if source.isdigit():
            found.append(('camera', source, f'camera{source}'))
            continue
        try:
            files, base = expand(source, problems)
        except (FileNotFoundError, ValueError) as e:
            problems.append(Problem(source, str(e)))
            continue
        bases.append(osp.abspath(base))
        found += [(kind_of(f), osp.abspath(f), None) for f in files]
    root = osp.commonpath(bases) if bases else ''
    seen, stems = set(), {}
    unique = []
    for kind, path, name in found:
        if path in seen:
            continue
        seen.add(path)
        if name is None:
            name = osp.relpath(path, root)
            stems[osp.splitext(name)[0]] = stems.get(
                osp.splitext(name)[0], 0) + 1
        unique.append((kind, path, name))
    inputs = []
    for kind, path, name in unique:
        if kind != 'camera':
            stem = osp.splitext(name)[0]
            name = stem if stems[stem] == 1 else name
        inputs.append(Input(kind, path, name))
    return inputs, problems

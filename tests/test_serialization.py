"""A checkpoint that carries a pickle payload is refused everywhere a
checkpoint is read (torch.load, MMEngine, init_model, load_from, --resume),
and its payload never runs."""
import os

import pytest
import torch
from mmengine.runner import load_checkpoint

import sanet_mmseg  # noqa: F401
from sanet_mmseg.serialization import MMENGINE_CHECKPOINT_GLOBALS


class Payload:

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


@pytest.fixture
def evil_checkpoint(tmp_path):
    marker = tmp_path / 'payload_ran'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': Payload(marker)}, path)
    return str(path), marker


def test_torch_load_refuses_payload(evil_checkpoint):
    path, marker = evil_checkpoint
    with pytest.raises(Exception, match='Weights only load failed'):
        torch.load(path)
    assert not marker.exists()


def test_mmengine_load_checkpoint_refuses_payload(evil_checkpoint):
    path, marker = evil_checkpoint
    with pytest.raises(Exception, match='Weights only load failed'):
        load_checkpoint(torch.nn.Conv2d(1, 1, 1), path)
    assert not marker.exists()


def test_init_model_refuses_payload(evil_checkpoint):
    from mmseg.apis import init_model
    from workflow_utils import CONFIGS
    path, marker = evil_checkpoint
    with pytest.raises(Exception, match='Weights only load failed'):
        init_model(f'{CONFIGS}/sanet-s_cityscapes.py', path, device='cpu')
    assert not marker.exists()


@pytest.mark.parametrize('route', ['load_from', 'resume'])
def test_training_refuses_payload(evil_checkpoint, cityscapes_mini, tmp_path,
                                  route):
    """tools/train.py with the checkpoint as ``load_from``, or as the last
    checkpoint of the work dir that ``--resume`` continues from."""
    from workflow_utils import REPO, small_config
    path, marker = evil_checkpoint
    work_dir = tmp_path / 'work'
    from tool_runner import run_script
    args = ['tools/train.py']
    if route == 'load_from':
        args.append(small_config(cityscapes_mini, work_dir, load_from=path))
    else:
        args += [small_config(cityscapes_mini, work_dir), '--resume']
        (work_dir / 'last_checkpoint').write_text(path)
    out = run_script(*args, cwd=REPO)
    assert out.returncode != 0
    assert 'Weights only load failed' in out.stderr
    assert 'Iter(train)' not in out.stdout + out.stderr
    assert not marker.exists()


def test_allow_list_is_exactly_mmengine_globals():
    names = {
        g[1] if isinstance(g, tuple) else f'{g.__module__}.{g.__qualname__}'
        for g in MMENGINE_CHECKPOINT_GLOBALS
    }
    assert 'posix.system' not in names and 'os.system' not in names
    assert 'builtins.eval' not in names and 'builtins.exec' not in names
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in names
    assert all(
        n.startswith(('numpy', 'mmengine', '_codecs', 'collections',
                      'builtins.getattr')) for n in names), names

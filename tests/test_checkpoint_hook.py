"""AtomicCheckpointHook overrides private CheckpointHook methods: the
installed MMEngine must be in the range setup.py pins, and the methods
must still be there with the signatures it overrides (the atomic saving
itself is tested in test_workflows.py)."""
import importlib.metadata
import inspect
import os.path as osp
import re

from mmengine.hooks import CheckpointHook
from packaging.requirements import Requirement

from sanet_mmseg.engine import AtomicCheckpointHook
from workflow_utils import REPO

OVERRIDDEN = {
    '_save_checkpoint_with_step': '(self, runner, step, meta)',
    '_save_best_checkpoint': '(self, runner, metrics)',
}


def test_mmengine_in_the_pinned_range():
    with open(osp.join(REPO, 'setup.py')) as f:
        pin = re.search(r"'(mmengine[^']*)'", f.read()).group(1)
    requirement = Requirement(pin)
    assert requirement.specifier.contains(
        importlib.metadata.version('mmengine')), pin
    assert '<1' not in pin  # a minor version, not any 0.x


def test_overridden_methods_exist():
    for name, signature in OVERRIDDEN.items():
        theirs = inspect.signature(getattr(CheckpointHook, name))
        assert str(theirs).startswith(signature), (name, theirs)
        assert getattr(AtomicCheckpointHook, name) is not getattr(
            CheckpointHook, name)

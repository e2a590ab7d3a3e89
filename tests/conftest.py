import os
import os.path as osp
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))


@pytest.fixture(scope='session')
def cityscapes_mini(tmp_path_factory):
    """The real frames (``SANET_CITYSCAPES_MINI``, default
    ``../shared/data/cityscapes-mini``): 5 train and 2 val frames in the
    Cityscapes layout; where they are absent, the same number of frames of
    the project's generated dataset."""
    path = os.environ.get(
        'SANET_CITYSCAPES_MINI',
        osp.join(REPO, '..', 'shared', 'data', 'cityscapes-mini'))
    if osp.isdir(osp.join(path, 'leftImg8bit')):
        return osp.abspath(path)
    from sanet_mmseg.datasets import make_demo_dataset
    root = str(tmp_path_factory.mktemp('cityscapes-mini'))
    make_demo_dataset(root, num_train=5, num_val=2, size=(1024, 512))
    return root

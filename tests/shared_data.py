"""Where the tests find ``../shared`` (the real Cityscapes frames and the
authors' parity fixture), and what happens when it is absent.

A new user's clone has no ``../shared``: the parity tests skip and the
frame tests run on generated frames. CI has it and sets
``SANET_REQUIRE_SHARED=1`` (``.ci/run``): there a missing fixture is a
failure, so that no parity test can pass by skipping.
"""
import os
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED = osp.join(REPO, '..', 'shared')
REFERENCE = os.environ.get('SANET_REFERENCE_DIR',
                           osp.join(SHARED, 'reference'))
FIXTURE = osp.join(REFERENCE, 'sanet-s_reference.pth')
CITYSCAPES_MINI = os.environ.get('SANET_CITYSCAPES_MINI',
                                 osp.join(SHARED, 'data', 'cityscapes-mini'))
REQUIRE_SHARED = os.environ.get('SANET_REQUIRE_SHARED', '0') == '1'


def needs_file(path: str):
    """A skip mark for tests that read ``path``; with
    ``SANET_REQUIRE_SHARED=1`` it does not skip (the test then fails on the
    missing file)."""
    return pytest.mark.skipif(
        not REQUIRE_SHARED and not osp.exists(path),
        reason=f'no {path} (../shared is absent)')


needs_reference = needs_file(FIXTURE)


def has_cityscapes_mini() -> bool:
    """Whether the real frames are there; with ``SANET_REQUIRE_SHARED=1``
    their absence is an error."""
    found = osp.isdir(osp.join(CITYSCAPES_MINI, 'leftImg8bit'))
    if not found and REQUIRE_SHARED:
        raise FileNotFoundError(
            f'SANET_REQUIRE_SHARED=1 but no real frames at {CITYSCAPES_MINI}')
    return found

import os
import os.path as osp
import sys

import pytest

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from shared_data import CITYSCAPES_MINI, has_cityscapes_mini  # noqa: E402


# The files that take longest (seconds of one worker, measured 2026-12-06
# after the tool runs were forked, docs/setup.md): with two pytest-xdist
# workers taking whole files (tools/run_tests.sh), handing these out first
# keeps one worker from ending with a long file while the other idles.
LONGEST_FIRST = ('test_setup_env', 'test_reliability', 'test_workflows',
                 'test_web_demo', 'test_multinode', 'test_int8_guard',
                 'test_analysis_tools', 'test_export_atomic',
                 'test_deploy_backends', 'test_inference')


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (``--dist loadfile --no-loadscope-reorder``), the
    files of ``LONGEST_FIRST`` first, in that order."""
    if not os.environ.get('PYTEST_XDIST_WORKER'):
        return
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'cuda: needs a CUDA device; skipped without one, a '
        'failure under SANET_REQUIRE_CUDA=1 (tools/run_cuda_checks.sh)')
    config.addinivalue_line(
        'markers', 'expensive: minutes of CPU or gigabytes of download; '
        'runs only with SANET_EXPENSIVE_TESTS=1')


@pytest.fixture(scope='session')
def generated_cityscapes_mini(tmp_path_factory):
    """5 train and 2 val frames (1024x512) of the project's generated
    dataset, in the Cityscapes layout."""
    from sanet_mmseg.datasets import make_demo_dataset
    root = str(tmp_path_factory.mktemp('cityscapes-mini'))
    make_demo_dataset(root, num_train=5, num_val=2, size=(1024, 512))
    return root


@pytest.fixture(scope='session')
def cityscapes_mini(generated_cityscapes_mini):
    """The real frames (``SANET_CITYSCAPES_MINI``, default
    ``../shared/data/cityscapes-mini``): 5 train and 2 val frames in the
    Cityscapes layout; where they are absent, the generated ones."""
    if has_cityscapes_mini():
        return osp.abspath(CITYSCAPES_MINI)
    return generated_cityscapes_mini


@pytest.fixture(params=['real', 'generated'])
def any_cityscapes_mini(request):
    """Both data sources in turn, so that a test that passes on the real
    frames (CI) also passes on a clone without ``../shared``; the real ones
    skip where they are absent."""
    if request.param == 'generated':
        return request.getfixturevalue('generated_cityscapes_mini')
    if not has_cityscapes_mini():
        pytest.skip(f'no real frames at {CITYSCAPES_MINI}')
    return osp.abspath(CITYSCAPES_MINI)


@pytest.fixture(autouse=True)
def torch_threads_restored():
    """Each test starts with the process's torch thread count: tests that
    train on one thread (bit-exact comparisons with other processes) do
    not slow the ones after them."""
    import torch
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)

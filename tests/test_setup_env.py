"""The set-up a new machine meets: tools/setup_env.sh offline from a folder
of wheels (in a fresh virtual environment that has only torch, as the bare
GPU machine has), tools/run_cuda_checks.sh (dry run, its parts on the CPU,
a failing part) and the silenced ``pkg_resources`` warnings.

The wheel folder is made with ``pip download`` (of the packages installed
here, torch's excepted) into ``SANET_WHEEL_CACHE`` (default
``~/.cache/sanet_mmseg/wheels-cpXY``), once; the mmcv wheel comes from
``../shared/wheels``. Without a registry or without that wheel the tests
that need them skip, under ``SANET_REQUIRE_SHARED=1`` they fail.
"""
import os
import os.path as osp
import re
import subprocess
import sys
import venv
from importlib.metadata import PackageNotFoundError, distribution

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from shared_data import REQUIRE_SHARED, SHARED
from workflow_utils import CONFIGS, REPO

TAG = f'cp{sys.version_info[0]}{sys.version_info[1]}'
MMCV_WHEEL = osp.join(SHARED, 'wheels',
                      f'mmcv-2.1.0-{TAG}-{TAG}-linux_x86_64.whl')
CACHE = os.environ.get(
    'SANET_WHEEL_CACHE',
    osp.join(osp.expanduser('~'), '.cache', 'sanet_mmseg', f'wheels-{TAG}'))
BUILD_TOOLS = ['setuptools>=77,<81', 'wheel', 'ninja', 'psutil']
# pip of the test environments: no user config, no cache, and no bytecode
# compiled at install (three quarters of an install's time here; Python
# compiles what the checks import). PIP_COMPILE=0 is --compile off:
# PIP_NO_COMPILE=1 would mean the opposite (pip inverts --no-* variables).
PIP_ENV = dict(PIP_CONFIG_FILE=os.devnull, PIP_NO_CACHE_DIR='1',
               PIP_COMPILE='0')


# what tools/setup_env.sh reads: a test sets them itself, none comes from
# the calling environment (.ci/run exports SANET_MMCV=lite)
SETUP_VARIABLES = ('PYTHON', 'SANET_MMCV', 'SANET_EXTRAS', 'SANET_OFFLINE',
                   'SANET_WHEEL_DIR', 'SANET_MMCV_DRY_RUN')


def bash(*args, env=None, timeout=1200):
    inherited = {k: v for k, v in os.environ.items()
                 if k not in SETUP_VARIABLES}
    out = subprocess.run(['bash', *args], capture_output=True, text=True,
                         cwd=REPO, env={**inherited, **(env or {})},
                         timeout=timeout)
    return out.returncode, out.stdout + out.stderr


def closure(roots, extras=()):
    """The installed distributions ``roots`` need, recursively (markers
    evaluated here; ``extras`` of the first root)."""
    found, todo = {}, [(r, set(extras) if i == 0 else set())
                       for i, r in enumerate(roots)]
    while todo:
        name, wanted = todo.pop()
        key = canonicalize_name(name)
        if key in found and wanted <= found[key][1]:
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        wanted |= found.get(key, (None, set()))[1]
        found[key] = (dist, wanted)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker and not any(
                    req.marker.evaluate({'extra': e})
                    for e in (wanted or {''})):
                continue
            todo.append((req.name, set(req.extras)))
    return {k: d for k, (d, _) in found.items()}


TORCH = closure(['torch', 'torchvision'])


def wheel_folder(extras=()):
    """``pip download`` of what ``pip install -e .[extras] pytest`` adds
    to a torch-only environment (the versions installed here), mmcv's
    source archive and the build tools, cached; returns its path."""
    needed = closure(['sanet-mmseg', 'pytest', 'mmcv-lite'], extras)
    reqs = sorted(f"{d.metadata['Name']}=={d.version}"
                  for k, d in needed.items()
                  if k not in TORCH and k not in ('sanet-mmseg', 'mmcv',
                                                  'pip'))
    reqs += BUILD_TOOLS
    folder = osp.join(CACHE, '-'.join(extras) or 'core')
    marker = osp.join(folder, 'requirements.txt')
    text = '\n'.join(reqs) + '\n'
    if osp.isfile(marker) and open(marker).read() == text:
        return folder
    os.makedirs(folder, exist_ok=True)
    cmds = [['download', '--no-deps', '-d', folder, *reqs],
            ['download', '--no-deps', '--no-binary', ':all:',
             '--no-build-isolation', '-d', folder, 'mmcv==2.1.0']]
    for cmd in cmds:
        out = subprocess.run([sys.executable, '-m', 'pip', *cmd],
                             capture_output=True, text=True, timeout=1200)
        if out.returncode:
            message = ('pip download failed (no registry?): '
                       + out.stderr[-800:])
            if REQUIRE_SHARED:
                pytest.fail(message)
            pytest.skip(message)
    with open(marker, 'w') as f:
        f.write(text)
    return folder


def torch_only_venv(path):
    """A new virtual environment that sees only torch, torchvision and their
    dependencies (links to this interpreter's, through a .pth file), as the
    bare GPU machine has them. Returns its python."""
    venv.create(path, with_pip=True)
    base = osp.join(path, 'torch_base')
    os.makedirs(base)
    site = str(TORCH['torch'].locate_file(''))
    for dist in TORCH.values():
        for file in dist.files or []:
            top = file.parts[0]
            if top != '..' and not osp.lexists(osp.join(base, top)):
                os.symlink(osp.join(site, top), osp.join(base, top))
    python = osp.join(path, 'bin', 'python')
    purelib = subprocess.check_output(
        [python, '-c',
         'import sysconfig; print(sysconfig.get_path("purelib"))'],
        text=True).strip()
    with open(osp.join(purelib, 'torch_base.pth'), 'w') as f:
        f.write(base + '\n')
    return python


def make_offline_env(tmp_path, extras=()):
    """(python of a torch-only venv, environment for an offline set-up
    of ``extras`` from a folder of the downloaded wheels and the mmcv
    wheel, the download folder)."""
    if not osp.isfile(MMCV_WHEEL):
        if REQUIRE_SHARED:
            pytest.fail(f'no {MMCV_WHEEL}')
        pytest.skip(f'no prebuilt mmcv wheel at {MMCV_WHEEL} (a build takes '
                    'an hour on 2 cores)')
    downloaded = wheel_folder(extras)
    folder = tmp_path / 'wheels'
    folder.mkdir()
    for name in os.listdir(downloaded):
        if not name.startswith('mmcv-'):  # the archive: see the dry run
            os.symlink(osp.join(downloaded, name), folder / name)
    os.symlink(MMCV_WHEEL, folder / osp.basename(MMCV_WHEEL))
    python = torch_only_venv(str(tmp_path / 'venv'))
    env = dict(PYTHON=python, SANET_OFFLINE='1', SANET_WHEEL_DIR=str(folder),
               SANET_EXTRAS=','.join(extras), PYTHONNOUSERSITE='1', **PIP_ENV)
    return python, env, downloaded


@pytest.fixture
def offline_env(tmp_path):
    """The core and pytest: what the CUDA checks need."""
    return make_offline_env(tmp_path)


def test_offline_setup_lite_then_full(offline_env):
    """The bare GPU machine's case: torch there, nothing of OpenMMLab, no
    index. Without an mmcv wheel in the folder, the default route:
    mmcv-lite, no compiler; MMSeg's API imports first, the stand-in raises
    for a compiled op. With the wheel added, the set-up replaces mmcv-lite
    by it. Torch is kept, nothing is downloaded, SANet works, a second run
    changes nothing. (One environment for both: a new one costs half a
    minute.)"""
    python, env, _ = offline_env
    wheel = osp.join(env['SANET_WHEEL_DIR'], osp.basename(MMCV_WHEEL))
    os.remove(wheel)
    rc, log = bash('tools/setup_env.sh', env=env)
    assert rc == 0, log[-4000:]
    assert 'installing mmcv-lite' in log and 'building mmcv' not in log
    check = subprocess.run(
        [python, '-c', 'from mmseg.apis import init_model; import torch; '
         'from mmcv.ops import nms; nms(torch.zeros(1, 4), torch.ones(1), '
         '0.5)'], capture_output=True, text=True, cwd='/', timeout=600)
    assert check.returncode == 1
    assert "MissingMmcvOpError: mmcv op 'nms' is not available" in \
        check.stderr

    os.symlink(MMCV_WHEEL, wheel)
    rc, log = bash('tools/setup_env.sh', env=env)
    assert rc == 0, log[-4000:]
    assert 'offline: every package from' in log
    assert 'is installed: kept' in log.splitlines()[1]  # torch, not pip's
    folder = env['SANET_WHEEL_DIR']
    assert f'mmcv with its compiled ops (a wheel in {folder})' in log
    assert 'installing ' + env['SANET_WHEEL_DIR'] + '/mmcv-2.1.0' in log
    assert 'Downloading' not in log
    check = subprocess.run(
        [python, '-c', 'import torch, mmcv.ops, mmseg, pytest, sanet_mmseg; '
         'from mmseg.apis import init_model; '
         f'm = init_model("{CONFIGS}/sanet-s_demo.py", device="cpu"); '
         'x = m._forward(torch.zeros(1, 3, 64, 64)); print(tuple(x.shape), '
         'torch.__file__, mmcv.ops.nms(torch.zeros(1, 4), torch.ones(1), '
         '0.5)[1].tolist())'],
        capture_output=True, text=True, cwd='/', timeout=600)
    assert check.returncode == 0, check.stderr[-3000:]
    assert '(1, 7, 8, 8)' in check.stdout
    assert 'torch_base' in check.stdout  # the torch it had, not a new one
    assert check.stdout.split()[-1] == '[0]'  # the compiled op ran
    rc, log = bash('tools/setup_env.sh', env=env)
    assert rc == 0, log[-3000:]
    assert 'mmcv 2.1.0 with its compiled ops: kept' in log
    assert 'sanet_mmseg is installed from' in log


@pytest.mark.expensive
@pytest.mark.skipif(
    os.environ.get('SANET_EXPENSIVE_TESTS', '0') != '1',
    reason='the offline set-up with every extra (a large download the '
    'first time, minutes to install): SANET_EXPENSIVE_TESTS=1 runs it')
def test_offline_setup_every_extra(tmp_path):
    """``tools/setup_env.sh``'s default (the tests extra: every optional
    feature) offline from a wheel folder."""
    python, env, _ = make_offline_env(tmp_path, ('tests', ))
    rc, log = bash('tools/setup_env.sh', env=env, timeout=2400)
    assert rc == 0, log[-4000:]
    assert 'Downloading' not in log
    check = subprocess.run(
        [python, '-c', 'import sanet_mmseg, mmpretrain, pytorch_grad_cam, '
         'onnxruntime, onnxsim, openvino, nncf, cityscapesscripts, '
         'matplotlib, tensorboard, pytest'],
        capture_output=True, text=True, cwd='/', timeout=600)
    assert check.returncode == 0, check.stderr[-3000:]


def test_offline_mmcv_source_archive(offline_env, tmp_path):
    """Without an mmcv wheel in the folder the set-up takes mmcv's source
    archive from it (no download), prepared for the build (dry run: the
    compilation itself takes an hour on 2 cores)."""
    python, env, downloaded = offline_env
    folder = env['SANET_WHEEL_DIR']
    os.remove(osp.join(folder, osp.basename(MMCV_WHEEL)))
    os.symlink(osp.join(downloaded, 'mmcv-2.1.0.tar.gz'),
               osp.join(folder, 'mmcv-2.1.0.tar.gz'))
    rc, log = bash('tools/setup_env.sh', env={**env, 'SANET_MMCV': 'full',
                                              'SANET_MMCV_DRY_RUN': '1'})
    assert rc == 0, log[-4000:]
    assert f'mmcv source: {folder}/mmcv-2.1.0.tar.gz' in log
    assert 'dry run: source prepared' in log
    assert "trying OpenMMLab's" not in log  # offline: no mim


def test_offline_needs_a_folder():
    rc, log = bash('tools/setup_env.sh', env=dict(
        SANET_OFFLINE='1', SANET_WHEEL_DIR='/nonexistent'))
    assert rc == 1 and 'SANET_OFFLINE=1 needs SANET_WHEEL_DIR' in log


def test_build_progress_reads_pip_lines(tmp_path):
    """pip -v indents ninja's ``[n/N]`` lines; the progress counts them
    and names a build log that is still there."""
    script = open(osp.join(REPO, 'tools', 'setup_env.sh')).read()
    function = re.search(r'^build_progress\(\) \{.*?^\}$', script,
                         re.S | re.M).group(0)
    lines = ''.join(f'  [{i}/20] c++ -MMD -c op{i}.cpp -o op{i}.o\n'
                    for i in range(1, 21))
    log = tmp_path / 'build.log'
    out = subprocess.run(
        ['bash', '-c', 'step() { echo "[setup] $*"; }; ' + function
         + f'; build_progress {log}'],
        input='  Running setup.py install for mmcv\n' + lines,
        capture_output=True, text=True, check=True).stdout
    assert '[setup] mmcv build: compiled 10 of 20 files' in out
    assert '[setup] mmcv build: compiled 20 of 20 files' in out
    assert re.search(r'20 files compiled in \d+ s \(log: ', out)
    assert log.read_text().count('c++ -MMD') == 20


def test_torch_kept_where_torchvision_fails(tmp_path):
    """Set-up step 1 where torch imports and torchvision does not (PyPI's
    beside a CPU torch): it says what it found and why, installs the
    torchvision release of that torch and keeps torch."""
    python = torch_only_venv(str(tmp_path / 'venv'))
    broken = tmp_path / 'broken' / 'torchvision'
    broken.mkdir(parents=True)
    (broken / '__init__.py').write_text(
        "raise RuntimeError('operator torchvision::nms does not exist')\n")
    purelib = subprocess.check_output(
        [python, '-c', 'import sysconfig; print(sysconfig.get_path('
         '"purelib"))'], text=True).strip()
    with open(osp.join(purelib, 'aaa_broken.pth'), 'w') as f:
        f.write(str(tmp_path / 'broken') + '\n')  # before torch_base.pth
    folder = tmp_path / 'wheels'
    version = TORCH['torchvision'].version
    out = subprocess.run(
        [sys.executable, '-m', 'pip', 'download', '-q', '--no-deps', '-d',
         str(folder), f'torchvision=={version}'],
        capture_output=True, text=True, timeout=600)
    if out.returncode:
        pytest.skip(f'no torchvision {version} wheel to be had here: '
                    + out.stderr[-300:])
    script = open(osp.join(REPO, 'tools', 'setup_env.sh')).read()
    step1 = script[script.index('# the state of every step'):
                   script.index('# 2. setuptools')]
    rc, log = bash('-c', 'set -euo pipefail; PY=$PYTHON; PIP="$PY -m pip"; '
                   'EXTRAS=; step() { echo "[setup] $*"; }\n' + step1,
                   env=dict(PYTHON=python, SANET_OFFLINE='1',
                            PIP_NO_INDEX='1', PIP_FIND_LINKS=str(folder),
                            **PIP_ENV))
    import torch
    torch_version = torch.__version__
    assert rc == 0, log[-3000:]
    assert (f'torch {torch_version} is installed, but torchvision does not '
            'import: RuntimeError: operator torchvision::nms does not exist'
            in log)
    assert f'installing torchvision=={version}' in log and \
        '(torch kept)' in log
    assert f'torch {torch_version} with torchvision {version}: ok' in log
    assert 'replacing' not in log
    check = subprocess.check_output(
        [python, '-c', 'import torch, torchvision; print(torch.__file__, '
         'torchvision.__file__)'], text=True, cwd='/')
    assert 'torch_base' in check.split()[0]  # the torch it had
    assert str(tmp_path / 'venv' / 'lib') in check.split()[1]


PYTHON312 = osp.expanduser('~/.pyenv/versions/3.12.1/bin/python')


@pytest.mark.skipif(not osp.isfile(PYTHON312),
                    reason=f'no Python 3.12 at {PYTHON312}')
def test_gpu_wheel_folder(tmp_path):
    """The bare GPU machine's folder (Python 3.12): small, no sources, and
    it installs offline into a new 3.12 environment with this project,
    whose .pth puts the stand-in for mmcv's ops in place at start. (torch,
    numpy and OpenCV, which that machine has, are not here for 3.12, so
    importing MMSeg is left to the GPU run.)"""
    folder = tmp_path / 'wheels'
    rc, log = bash('tools/gpu_wheels.sh', str(folder), '3.12')
    if rc and ('No matching distribution' in log or 'Could not' in log):
        if REQUIRE_SHARED:
            pytest.fail(log[-2000:])
        pytest.skip('no registry: ' + log[-300:])
    assert rc == 0, log[-3000:]
    wheels = os.listdir(folder)
    assert all(w.endswith('.whl') for w in wheels)
    assert sum(osp.getsize(folder / w) for w in wheels) < 64 * 2**20
    assert any(w.startswith('mmcv_lite-2.1.0') for w in wheels)
    venv_dir = tmp_path / 'venv312'
    subprocess.run([PYTHON312, '-m', 'venv', str(venv_dir)], check=True)
    python = str(venv_dir / 'bin' / 'python')
    env = {**os.environ, **PIP_ENV}
    for args in (['--no-deps', *[str(folder / w) for w in wheels]],
                 ['--find-links', str(folder), '--no-deps', '-e', REPO]):
        out = subprocess.run([python, '-m', 'pip', 'install', '-q',
                              '--no-index', *args], capture_output=True,
                             text=True, env=env, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
    out = subprocess.run(
        [python, '-c', 'import sys, importlib.util as u; '
         'print("sanet_mmseg.mmcv_ext" in sys.modules, '
         '"StandInFinder" in [type(f).__name__ for f in sys.meta_path], '
         'u.find_spec("mmseg").origin)'],
        capture_output=True, text=True, cwd='/', timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[:2] == ['True', 'True']
    assert str(venv_dir) in out.stdout.split()[2]


def test_pkg_resources_warnings_silenced():
    """MMEngine's config loading warns that pkg_resources is deprecated
    (several times); importing sanet_mmseg first silences exactly that."""
    load = ('from mmengine.config import Config; '
            f'Config.fromfile("{CONFIGS}/sanet-s_demo.py")')
    runs = {
        first: subprocess.run([sys.executable, '-c', first + load],
                              capture_output=True, text=True, cwd=REPO)
        for first in ('', 'import sanet_mmseg; ')
    }
    assert all(r.returncode == 0 for r in runs.values())
    assert 'pkg_resources is deprecated' in runs[''].stderr  # the control
    assert 'pkg_resources' not in runs['import sanet_mmseg; '].stderr


def cuda_checks(*args, env=None):
    return bash('tools/run_cuda_checks.sh', *args, env=env)


def test_cuda_checks_dry_run(tmp_path):
    """The commands the GPU machine will run."""
    rc, log = cuda_checks('--dry-run', env=dict(
        SANET_CUDA_CHECKS_DIR=str(tmp_path)))
    assert rc == 0, log
    for expected in ('pytest tests/test_cuda.py', '-m cuda',
                     'tools/train.py configs/sanet/sanet-s_demo.py --amp',
                     'train_cfg.max_iters=200', 'iter_200.pth',
                     'dist_train.sh configs/sanet/sanet-s_demo.py 1',
                     'model.backbone.norm_cfg.type=SyncBN', '--resume',
                     'train_cfg.max_iters=40', '--device cuda',
                     '--shape 1024 2048', 'torch:fp32,torch:fp16'):
        assert expected in log, expected
    assert log.count(' ok ') == 4


def test_cuda_checks_fail(tmp_path):
    """A failing part (training on an empty data folder) makes its summary
    line say FAILED and the exit status non-zero."""
    os.makedirs(tmp_path / 'data' / 'leftImg8bit')
    rc, log = cuda_checks('train', env=dict(
        SANET_CUDA_CHECKS_DIR=str(tmp_path), SANET_CUDA_CHECKS_ALLOW_CPU='1'))
    assert rc == 1, log[-3000:]
    assert log.splitlines()[-1].startswith('train      FAILED'), log[-3000:]
    assert 'image folder not found' in (tmp_path / 'train.log').read_text()


def test_cuda_checks_on_cpu(tmp_path):
    """Every part on the CPU, tiny (2 iterations, 64x128 benchmark): the
    plumbing the GPU run relies on (data, logs, resume, summary)."""
    rc, log = cuda_checks(env=dict(SANET_CUDA_CHECKS_DIR=str(tmp_path),
                                   SANET_CUDA_CHECKS_ALLOW_CPU='1'))
    summary = log[log.index('== CUDA checks'):]
    assert rc == 0, log[-6000:]
    assert summary.count(' ok ') == 4, summary
    assert 'resumed from iteration 2, ended at 4' in summary
    assert 'paper: SANet-S 65.1 FPS' in summary
    assert osp.isfile(tmp_path / 'train_amp' / 'iter_2.pth')

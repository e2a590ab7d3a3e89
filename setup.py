import os.path as osp

from setuptools import Distribution, find_packages, setup
# after setuptools: its own distutils
from distutils.command.install_data import install_data  # noqa: E402,I100

# Python runs this line at start (a .pth file beside the packages): it loads
# sanet_mmseg/mmcv_ext.py without importing the package and installs the
# stand-in for mmcv's compiled ops, so that MMSeg imports with mmcv-lite
# whatever is imported first. A full mmcv is never shadowed.
PTH_NAME = 'sanet_mmseg_mmcv_ext.pth'
PTH_LINE = (
    "import importlib.util as u, os.path as p, sys; "
    "s = u.find_spec('sanet_mmseg'); "
    "f = s and s.origin and p.join(p.dirname(s.origin), 'mmcv_ext.py'); "
    "s = f and p.isfile(f) and u.spec_from_file_location("
    "'sanet_mmseg.mmcv_ext', f); "
    "m = s and sys.modules.setdefault(s.name, u.module_from_spec(s)); "
    "s and (s.loader.exec_module(m), m.install())\n")


class InstallPth(install_data):
    """Writes :data:`PTH_NAME` beside the packages (site-packages), in
    wheels and editable installs alike (both install data this way)."""

    def finalize_options(self):
        super().finalize_options()
        self.install_dir = self.get_finalized_command('install').install_lib

    def run(self):
        self.mkpath(self.install_dir)
        path = osp.join(self.install_dir, PTH_NAME)
        with open(path, 'w', encoding='utf-8') as f:
            f.write(PTH_LINE)
        self.outfiles = [path]


# Optional features, each an extra; 'all': every feature (not an mmcv);
# 'tests' (what tools/setup_env.sh installs): 'all', pytest, pytest-xdist
# and playwright.
EXTRAS = {
    'deploy': ['onnx', 'onnxruntime', 'onnxsim', 'openvino>=2025.0',
               'nncf>=2.16', 'jsonschema>=4.18'],
    'analysis': ['grad-cam', 'matplotlib'],
    'cityscapes': ['cityscapesscripts'],
    'pretrain': ['mmpretrain==1.2.0'],
    'tensorboard': ['tensorboard'],  # MMEngine's TensorboardVisBackend
    # tools/web_demo.py; the tests drive Debian's Chromium with playwright
    'web': ['gradio>=6'],
}
MMCV = {
    'lite': ['mmcv-lite>=2.0.0rc4,<2.2.0'],  # pure Python: enough for SANet
    'full': ['mmcv>=2.0.0rc4,<2.2.0'],  # compiled ops: built from source
}
EXTRAS['all'] = sorted({p for deps in EXTRAS.values() for p in deps})
EXTRAS['tests'] = EXTRAS['all'] + ['pytest', 'pytest-xdist>=3.8', 'playwright']


class PthDistribution(Distribution):
    """setuptools' editable_wheel asks the distribution ``has_data()``
    (install's name) before installing data files, so without this an
    editable install would never write the .pth."""

    def has_data(self):
        return self.has_data_files()


setup(
    name='sanet-mmseg',
    version='0.1.0',
    description='SANet real-time semantic segmentation (arXiv 2309.10519) '
    'as an MMSegmentation 1.x plugin',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['sanet_mmseg', 'sanet_mmseg.*']),
    python_requires='>=3.8',
    # torch and torchvision are not pinned: a user keeps the build (CUDA or
    # CPU) they have; tools/setup_env.sh installs one where none is.
    install_requires=[
        'torch',
        'torchvision',
        # no mmcv here: either build serves (extras 'lite' and 'full'), and
        # pip cannot ask for one or the other; tools/setup_env.sh installs
        # mmcv-lite unless a full mmcv is there or asked for
        # AtomicCheckpointHook overrides two private CheckpointHook methods:
        # the range it is tested with (tests/test_checkpoint_hook.py)
        'mmengine>=0.10.7,<0.11',
        'mmsegmentation==1.2.2',
        'setuptools>=77,<81',  # pkg_resources, which mim and mmengine use
        'openmim',
        'ftfy',  # mmseg.apis imports them without declaring them
        'regex',
        'opencv-python',
    ],
    extras_require={**EXTRAS, **MMCV},
    data_files=[('', [])],  # runs InstallPth
    cmdclass={'install_data': InstallPth},
    distclass=PthDistribution,
    license='MIT',
    zip_safe=False)

from setuptools import find_packages, setup

# Optional features, each an extra; 'all' is what tools/setup_env.sh installs.
EXTRAS = {
    'deploy': ['onnx', 'onnxruntime', 'onnxsim', 'openvino>=2025.0', 'nncf>=2.16',
               'jsonschema>=4.18'],
    'analysis': ['grad-cam', 'matplotlib'],
    'cityscapes': ['cityscapesscripts'],
    'pretrain': ['mmpretrain==1.2.0'],
    'tensorboard': ['tensorboard'],  # MMEngine's TensorboardVisBackend
    # tools/web_demo.py; the tests drive Debian's Chromium with playwright
    'web': ['gradio>=6'],
}
EXTRAS['all'] = sorted({p for deps in EXTRAS.values() for p in deps})
EXTRAS['tests'] = EXTRAS['all'] + ['pytest', 'playwright']

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
        'mmcv>=2.0.0rc4,<2.2.0',
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
    extras_require=EXTRAS,
    license='MIT',
    zip_safe=False)

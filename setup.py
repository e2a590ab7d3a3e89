from setuptools import find_packages, setup

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
        'mmengine>=0.10.7,<1',
        'mmsegmentation==1.2.2',
        'mmpretrain==1.2.0',
        'setuptools>=77,<81',  # pkg_resources, which mim and mmengine use
        'openmim',
        'cityscapesscripts',
        'grad-cam',
        'onnx',
        'onnxruntime',
        'ftfy',
        'regex',
        'matplotlib',
        'opencv-python',
    ],
    extras_require={
        'tests': ['pytest', 'onnxsim'],
        'onnxsim': ['onnxsim'],  # pytorch2onnx.py --simplify
    },
    license='MIT',
    zip_safe=False)

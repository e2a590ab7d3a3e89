#!/usr/bin/env bash
# The wheels a bare GPU machine (Python 3.12 with torch, numpy, OpenCV
# headless, pytest and the like, no OpenMMLab, no network) lacks to run
# tools/run_cuda_checks.sh: mmcv-lite, MMEngine, MMSegmentation, their
# pure-Python needs and the setuptools this package builds with. Nothing in
# it compiles; it stays far under the 64 MiB that travel with a GPU call.
#
#   bash tools/gpu_wheels.sh DIR [PYTHON_VERSION]     # default 3.12
#
# There: SANET_GPU_WHEELS=DIR bash tools/run_cuda_checks.sh installs them
# offline (pip --no-index --no-deps) before its checks.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: bash tools/gpu_wheels.sh DIR [PYTHON_VERSION]" >&2; exit 2; }
OUT=$1
VERSION=${2:-3.12}
PY=${PYTHON:-python}
# pinned to what the tests run here; opencv-python is left out on purpose:
# the machine's opencv-python-headless serves mmcv (the same cv2)
PACKAGES=(
    mmcv-lite==2.1.0 mmengine==0.10.7 mmsegmentation==1.2.2
    addict==2.4.0 yapf==0.43.0 termcolor==3.3.0 platformdirs==4.14.9
    prettytable==3.19.0 wcwidth==0.7.0 ftfy==6.3.1
    'setuptools>=77,<81'
)
mkdir -p "$OUT"
$PY -m pip download -q --no-deps --only-binary=:all: --python-version "$VERSION" \
    --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 --platform any -d "$OUT" "${PACKAGES[@]}"
echo "[gpu-wheels] $(find "$OUT" -name '*.whl' | wc -l) wheels, $(du -sh "$OUT" | cut -f1) in $OUT"

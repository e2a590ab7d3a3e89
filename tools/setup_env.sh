#!/usr/bin/env bash
# One-time set-up of sanet-mmseg in the active Python environment.
# Re-running it is fast and changes nothing.
#
#   SANET_WHEEL_DIR=/path/to/wheels bash tools/setup_env.sh
#
# SANET_WHEEL_DIR (optional): a folder with a prebuilt mmcv wheel for this
# Python and torch (mmcv-2.1.0-cp311-cp311-linux_x86_64.whl for torch 2.14.1),
# tried before OpenMMLab's wheels and a build from source (about 9 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
PIP="$PY -m pip"
MMCV_SPEC='mmcv>=2.0.0rc4,<2.2.0'
SETUPTOOLS_SPEC='setuptools>=77,<81'
step() { echo "[setup] $*"; }

# 1. torch: keep an importable torch + torchvision (a user's CUDA build stays)
if $PY -c 'import torch, torchvision' 2>/dev/null; then
    step "torch $($PY -c 'import torch; print(torch.__version__)') is installed: kept"
else
    step "installing torch 2.14.1 and torchvision 0.29.1"
    $PIP install torch==2.14.1 torchvision==0.29.1
fi

# 2. setuptools <81 keeps pkg_resources, which mim and mmengine's mmseg:: configs import
if $PY -c 'import pkg_resources, setuptools, sys; v = tuple(map(int, setuptools.__version__.split(".")[:2])); sys.exit(not ((77, 0) <= v < (81, 0)))' 2>/dev/null; then
    step "setuptools $($PY -c 'import setuptools; print(setuptools.__version__)'): ok"
else
    step "pinning setuptools>=77,<81"
    $PIP install "$SETUPTOOLS_SPEC"
fi

# 3. mmcv with its compiled ops (MMSeg imports mmcv.ops; mmcv-lite does not do)
mmcv_ok() {
    $PY - <<'PY' 2>/dev/null
import mmcv, mmcv.ops
from packaging.version import Version
assert Version('2.0.0rc4') <= Version(mmcv.__version__) < Version('2.2.0')
PY
}
build_mmcv_from_source() {
    # mmcv 2.1.0's setup.py asks for C++17; torch >= 2.10 headers need C++20
    local tmp
    tmp=$(mktemp -d)
    # the build runs without isolation, in this environment: its tools first
    $PIP install ninja psutil wheel "$SETUPTOOLS_SPEC"
    (cd "$tmp" && $PIP download --no-deps --no-build-isolation --no-binary :all: mmcv==2.1.0 \
        && tar xzf mmcv-2.1.0.tar.gz \
        && sed -i "s/'-std=c++17'/'-std=c++20'/" mmcv-2.1.0/setup.py)
    if [ "${SANET_MMCV_DRY_RUN:-0}" = 1 ]; then
        grep -c "std=c++20" "$tmp/mmcv-2.1.0/setup.py"
        step "dry run: source prepared in $tmp, not compiled"
        return 0
    fi
    MMCV_WITH_OPS=1 FORCE_CUDA=${FORCE_CUDA:-0} MAX_JOBS=${MAX_JOBS:-2} \
        $PIP install --no-deps --no-build-isolation "$tmp/mmcv-2.1.0"
    rm -rf "$tmp"
    $PIP install "$MMCV_SPEC"  # its dependencies (opencv, mmengine, ...)
}
if mmcv_ok; then
    step "mmcv $($PY -c 'import mmcv; print(mmcv.__version__)') with ops: kept"
else
    installed=0
    if [ -n "${SANET_WHEEL_DIR:-}" ] && [ -d "$SANET_WHEEL_DIR" ]; then
        tag=$($PY -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
        for whl in "$SANET_WHEEL_DIR"/mmcv-*-"$tag"-*.whl; do
            [ -e "$whl" ] || continue
            step "installing $whl"
            if $PIP install --no-deps --force-reinstall "$whl" && $PIP install "$MMCV_SPEC" && mmcv_ok; then
                installed=1; break
            fi
            step "$whl does not work with this torch: uninstalled"
            $PIP uninstall -y mmcv
        done
    fi
    if [ $installed = 0 ]; then
        step "trying OpenMMLab's prebuilt mmcv for this torch"
        # (with the setuptools pin: openxlab, which openmim pulls in, would
        # otherwise downgrade setuptools to 60, which cannot build mmcv)
        $PIP install -q openmim "$SETUPTOOLS_SPEC"
        # binary only, short timeouts: without OpenMMLab's site (offline, or
        # no wheel for this torch) this fails fast instead of compiling
        if $PY -m mim install "$MMCV_SPEC" --only-binary mmcv --timeout 20 --retries 1 && mmcv_ok; then
            installed=1
        else
            $PIP uninstall -y mmcv 2>/dev/null || true
        fi
    fi
    if [ $installed = 0 ]; then
        step "building mmcv 2.1.0 with ops from source (about 9 minutes on 2 cores)"
        build_mmcv_from_source
        [ "${SANET_MMCV_DRY_RUN:-0}" = 1 ] && exit 0
    fi
    mmcv_ok || { echo "[setup] mmcv.ops does not import" >&2; exit 1; }
fi

# 4. the plugin itself, editable, with the test extras
# (asked from / so that this folder is not on the path)
here=$PWD
if (cd / && $PY -c 'import sanet_mmseg, pytest, mmseg, mmpretrain, pytorch_grad_cam, onnxruntime, onnxsim, openvino, nncf, cityscapesscripts, matplotlib, tensorboard' 2>/dev/null) \
        && [ "$(cd / && $PY -c 'import sanet_mmseg, os; print(os.path.dirname(os.path.dirname(os.path.abspath(sanet_mmseg.__file__))))' 2>/dev/null)" = "$here" ]; then
    step "sanet_mmseg is installed from $PWD: kept"
else
    step "installing sanet_mmseg (editable) and its dependencies"
    $PIP install -e '.[tests]'
fi
step "done"

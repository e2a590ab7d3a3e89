#!/usr/bin/env bash
# One-time set-up of sanet-mmseg in the active Python environment.
# Re-running it is fast (about 20 s) and changes nothing.
#
#   bash tools/setup_env.sh
#   SANET_WHEEL_DIR=/path/to/wheels bash tools/setup_env.sh
#   SANET_OFFLINE=1 SANET_WHEEL_DIR=/path/to/wheels bash tools/setup_env.sh
#
# SANET_WHEEL_DIR (optional): a folder with a prebuilt mmcv wheel for this
# Python and torch (mmcv-2.1.0-cp311-cp311-linux_x86_64.whl for torch 2.14.1)
# or mmcv's source archive mmcv-2.1.0.tar.gz, tried before OpenMMLab's
# wheels and PyPI's source. Without a wheel mmcv is compiled: measured 9 to
# 64 minutes on 2 cores (docs/setup.md); the progress is shown.
# SANET_OFFLINE=1: no index at all, every package from SANET_WHEEL_DIR
# (pip --no-index --find-links; docs/setup.md says how to fill it).
# SANET_EXTRAS: the extras of setup.py to install (default: tests, i.e.
# all of them; empty: the core only); pytest is installed in any case.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
PIP="$PY -m pip"
MMCV_SPEC='mmcv>=2.0.0rc4,<2.2.0'
SETUPTOOLS_SPEC='setuptools>=77,<81'
EXTRAS=${SANET_EXTRAS-tests}
step() { echo "[setup] $*"; }
if [ "${SANET_OFFLINE:-0}" = 1 ]; then
    if [ -z "${SANET_WHEEL_DIR:-}" ] || [ ! -d "$SANET_WHEEL_DIR" ]; then
        echo "[setup] SANET_OFFLINE=1 needs SANET_WHEEL_DIR, a folder of wheels (got '${SANET_WHEEL_DIR:-}')" >&2
        exit 1
    fi
    export PIP_NO_INDEX=1 PIP_FIND_LINKS=$SANET_WHEEL_DIR
    step "offline: every package from $SANET_WHEEL_DIR"
fi

# 1. torch: keep an importable torch + torchvision (a user's CUDA build stays)
if $PY -c 'import torch, torchvision' 2>/dev/null; then
    step "torch $($PY -c 'import torch; print(torch.__version__)') is installed: kept"
else
    # PyPI's torch is the CUDA build (about 5.5 GB with its CUDA packages);
    # for a CPU-only machine first install the CPU build (docs/setup.md):
    # pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu
    step "installing torch 2.14.1 and torchvision 0.29.1 (PyPI's CUDA build, about 5.5 GB)"
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
build_progress() {
    # pip -v's compiler lines -> one line per 10 ninja steps, and time taken
    local start=$SECONDS n=0
    while IFS= read -r line; do
        echo "$line" >>"$1"
        if [[ $line =~ ^\[([0-9]+)/([0-9]+)\] ]]; then
            n=${BASH_REMATCH[1]}
            if (( n % 10 == 0 || n == BASH_REMATCH[2] )); then
                step "mmcv build: compiled $n of ${BASH_REMATCH[2]} files ($((SECONDS - start)) s)"
            fi
        fi
    done
    step "mmcv build: $n files compiled in $((SECONDS - start)) s (log: $1)"
}
build_mmcv_from_source() {
    # mmcv 2.1.0's setup.py asks for C++17; torch >= 2.10 headers need C++20
    local tmp archive=""
    tmp=$(mktemp -d)
    # the build runs without isolation, in this environment: its tools first
    $PIP install ninja psutil wheel "$SETUPTOOLS_SPEC"
    if [ -n "${SANET_WHEEL_DIR:-}" ] && [ -f "$SANET_WHEEL_DIR/mmcv-2.1.0.tar.gz" ]; then
        archive=$SANET_WHEEL_DIR/mmcv-2.1.0.tar.gz
        step "mmcv source: $archive"
    else
        (cd "$tmp" && $PIP download --no-deps --no-build-isolation --no-binary :all: mmcv==2.1.0)
        archive=$tmp/mmcv-2.1.0.tar.gz
    fi
    tar xzf "$archive" -C "$tmp"
    sed -i "s/'-std=c++17'/'-std=c++20'/" "$tmp/mmcv-2.1.0/setup.py"
    if [ "${SANET_MMCV_DRY_RUN:-0}" = 1 ]; then
        grep -c "std=c++20" "$tmp/mmcv-2.1.0/setup.py"
        step "dry run: source prepared in $tmp, not compiled"
        return 0
    fi
    if ! MMCV_WITH_OPS=1 FORCE_CUDA=${FORCE_CUDA:-0} MAX_JOBS=${MAX_JOBS:-$(nproc)} \
            $PIP install -v --no-deps --no-build-isolation "$tmp/mmcv-2.1.0" 2>&1 \
            | build_progress "$tmp/build.log"; then
        tail -n 40 "$tmp/build.log" >&2
        return 1
    fi
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
    if [ $installed = 0 ] && [ "${SANET_OFFLINE:-0}" != 1 ]; then
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
        step "building mmcv 2.1.0 with its CPU ops from source ($(nproc) cores; measured 9 to 64 minutes on 2 cores)"
        build_mmcv_from_source
        [ "${SANET_MMCV_DRY_RUN:-0}" = 1 ] && exit 0
    fi
    mmcv_ok || { echo "[setup] mmcv.ops does not import" >&2; exit 1; }
fi

# 4. the plugin itself, editable, with the extras asked (default: tests)
# (asked from / so that this folder is not on the path)
here=$PWD
modules='sanet_mmseg, mmseg, pytest'
[ "$EXTRAS" = tests ] && modules="$modules, mmpretrain, pytorch_grad_cam, onnxruntime, onnxsim, openvino, nncf, cityscapesscripts, matplotlib, tensorboard, jsonschema, gradio, playwright"
spec=.
[ -n "$EXTRAS" ] && spec=".[$EXTRAS]"
if (cd / && $PY -c "import $modules" 2>/dev/null) \
        && [ "$(cd / && $PY -c 'import sanet_mmseg, os; print(os.path.dirname(os.path.dirname(os.path.abspath(sanet_mmseg.__file__))))' 2>/dev/null)" = "$here" ]; then
    step "sanet_mmseg is installed from $PWD: kept"
else
    step "installing sanet_mmseg (editable, $spec) and its dependencies"
    $PIP install -e "$spec" pytest
fi
step "done"

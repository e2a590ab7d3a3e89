#!/usr/bin/env bash
# One-time set-up of sanet-mmseg in the active Python environment.
# Re-running it is fast (about 20 s) and changes nothing.
#
#   bash tools/setup_env.sh
#   SANET_WHEEL_DIR=/path/to/wheels bash tools/setup_env.sh
#   SANET_OFFLINE=1 SANET_WHEEL_DIR=/path/to/wheels bash tools/setup_env.sh
#   SANET_MMCV=full bash tools/setup_env.sh
#
# mmcv: SANet calls none of mmcv's compiled ops, so the default is
# mmcv-lite (pure Python, seconds to install; sanet_mmseg/mmcv_ext.py stands
# in for the ops MMSeg imports). A full mmcv (compiled ops) is kept where
# installed, and installed where SANET_WHEEL_DIR holds a matching wheel
# (mmcv-2.1.0-cp311-cp311-linux_x86_64.whl for torch 2.14.1) or where
# SANET_MMCV=full asks for it: then a wheel of SANET_WHEEL_DIR, OpenMMLab's
# prebuilt wheel for this torch, or a build from source (mmcv's source
# archive mmcv-2.1.0.tar.gz from SANET_WHEEL_DIR or PyPI: 9 to 64 minutes
# measured on 2 cores, docs/setup.md; the progress is shown).
# SANET_MMCV=lite installs mmcv-lite even over a full mmcv.
# SANET_OFFLINE=1: no index at all, every package from SANET_WHEEL_DIR
# (pip --no-index --find-links; docs/setup.md says how to fill it).
# SANET_EXTRAS: the extras of setup.py to install (default: tests, i.e.
# all of them; empty: the core only); pytest is installed in any case.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
PIP="$PY -m pip"
MMCV_RANGE='>=2.0.0rc4,<2.2.0'
MMCV_SPEC="mmcv$MMCV_RANGE"
LITE_SPEC="mmcv-lite$MMCV_RANGE"
MMCV=${SANET_MMCV:-}
case $MMCV in
    ''|lite|full) ;;
    *) echo "[setup] SANET_MMCV must be lite or full (got '$MMCV')" >&2; exit 1 ;;
esac
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

# 1. torch: keep an importable torch + torchvision (a user's CUDA or CPU build
# stays); where torchvision does not import, say why, and first try the
# torchvision that matches the torch there
TORCH_SPEC='torch==2.14.1 torchvision==0.29.1'
torch_error() {  # the last line of what importing them says; their status
    $PY -c 'import torch, torchvision' 2>&1 | tail -n 1
}
if err=$(torch_error); then
    step "torch $($PY -c 'import torch; print(torch.__version__)') is installed: kept"
elif tv=$($PY -c 'import torch; v = torch.__version__.split("+")[0].split("."); print(f"0.{int(v[1]) + 15}.{v[2]}")' 2>/dev/null); then
    found=$($PY -c 'import torch; print(torch.__version__)' 2>/dev/null)
    step "torch $found is installed, but torchvision does not import: $err"
    # a CPU build's torchvision comes from PyTorch's CPU index (PyPI's is
    # built against its CUDA torch and fails to load its ops beside it)
    index=()
    [[ $found == *+cpu ]] && [ "${SANET_OFFLINE:-0}" != 1 ] \
        && index=(--extra-index-url https://download.pytorch.org/whl/cpu)
    step "installing torchvision==$tv, the release for torch $found (torch kept)"
    # (--force-reinstall: pip takes the broken one of the same version for
    # installed; --no-deps: torch stays as it is)
    if $PIP install -q --force-reinstall --no-deps "${index[@]}" "torchvision==$tv" \
            && err=$(torch_error); then
        step "torch $found with torchvision $tv: ok"
    else
        step "torchvision $tv does not import beside torch $found ($err): replacing both with $TORCH_SPEC (PyPI's CUDA build, about 5.5 GB; runs on a CPU too)"
        $PIP install --force-reinstall $TORCH_SPEC
    fi
else
    step "torch does not import ($err): installing $TORCH_SPEC (PyPI's CUDA build, about 5.5 GB; runs on a CPU too; for the CPU build, install torch first: docs/setup.md)"
    $PIP install $TORCH_SPEC
fi

# 2. setuptools <81 keeps pkg_resources, which mim and mmengine's mmseg:: configs import
if $PY -c 'import pkg_resources, setuptools, sys; v = tuple(map(int, setuptools.__version__.split(".")[:2])); sys.exit(not ((77, 0) <= v < (81, 0)))' 2>/dev/null; then
    step "setuptools $($PY -c 'import setuptools; print(setuptools.__version__)'): ok"
else
    step "pinning setuptools>=77,<81"
    $PIP install "$SETUPTOOLS_SPEC"
fi

# 3. mmcv: lite (the default) or full; both install the package mmcv, so one
# is removed before the other goes in
mmcv_state() {  # full (compiled ops), lite (no ops) or none, in the range
    (cd / && $PY - <<'PY' 2>/dev/null) || echo none
import importlib.util, mmcv
from packaging.version import Version
assert Version('2.0.0rc4') <= Version(mmcv.__version__) < Version('2.2.0')
ext = importlib.util.find_spec('mmcv._ext')
print('full' if ext and not getattr(ext.loader, 'stand_in', False) else 'lite')
PY
}
build_progress() {
    # pip -v's compiler lines (indented by pip: "  [30/77] c++ ...") -> one
    # line per 10 ninja steps, and the time taken
    local start=$SECONDS n=0
    while IFS= read -r line; do
        echo "$line" >>"$1"
        if [[ $line =~ ^[[:space:]]*\[([0-9]+)/([0-9]+)\][[:space:]] ]]; then
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
    $PIP install -q ninja psutil wheel "$SETUPTOOLS_SPEC"
    if [ -n "${SANET_WHEEL_DIR:-}" ] && [ -f "$SANET_WHEEL_DIR/mmcv-2.1.0.tar.gz" ]; then
        archive=$SANET_WHEEL_DIR/mmcv-2.1.0.tar.gz
        step "mmcv source: $archive"
    else
        (cd "$tmp" && $PIP download -q --no-deps --no-build-isolation --no-binary :all: mmcv==2.1.0)
        archive=$tmp/mmcv-2.1.0.tar.gz
    fi
    tar xzf "$archive" -C "$tmp"
    sed -i "s/'-std=c++17'/'-std=c++20'/" "$tmp/mmcv-2.1.0/setup.py"
    if [ "${SANET_MMCV_DRY_RUN:-0}" = 1 ]; then
        grep -c "std=c++20" "$tmp/mmcv-2.1.0/setup.py"
        step "dry run: source prepared in $tmp, not compiled"
        return 0
    fi
    # the log is kept (its path printed at the end), in the build's folder
    if ! MMCV_WITH_OPS=1 FORCE_CUDA=${FORCE_CUDA:-0} MAX_JOBS=${MAX_JOBS:-$(nproc)} \
            $PIP install -v --no-deps --no-build-isolation "$tmp/mmcv-2.1.0" 2>&1 \
            | build_progress "$tmp/build.log"; then
        tail -n 40 "$tmp/build.log" >&2
        return 1
    fi
    rm -rf "$tmp/mmcv-2.1.0"
    $PIP install -q "$MMCV_SPEC"  # its dependencies (opencv, mmengine, ...)
}
remove_mmcv() {  # whichever of the two is installed
    $PIP uninstall -y -q mmcv mmcv-lite 2>/dev/null || true
}
install_full_mmcv() {
    # a wheel of SANET_WHEEL_DIR for this Python, OpenMMLab's prebuilt
    # wheel, or a build from source; returns non-zero when none works
    local tag whl log
    if [ -n "${SANET_WHEEL_DIR:-}" ] && [ -d "$SANET_WHEEL_DIR" ]; then
        tag=$($PY -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
        for whl in "$SANET_WHEEL_DIR"/mmcv-*-"$tag"-*.whl; do
            [ -e "$whl" ] || continue
            step "installing $whl"
            remove_mmcv
            if $PIP install -q --no-deps "$whl" && $PIP install -q "$MMCV_SPEC" \
                    && [ "$(mmcv_state)" = full ]; then
                return 0
            fi
            step "$whl does not work with this torch: uninstalled"
            remove_mmcv
        done
    fi
    if [ "${SANET_OFFLINE:-0}" != 1 ]; then
        step "looking for OpenMMLab's prebuilt mmcv for torch $($PY -c 'import torch; print(torch.__version__)')"
        # (with the setuptools pin: openxlab, which openmim pulls in, would
        # otherwise downgrade setuptools to 60, which cannot build mmcv)
        $PIP install -q openmim "$SETUPTOOLS_SPEC"
        # binary only, short timeouts: fails fast where there is none
        log=$(mktemp)
        if (remove_mmcv; $PY -m mim install "$MMCV_SPEC" --only-binary mmcv --timeout 20 --retries 1) >"$log" 2>&1 \
                && [ "$(mmcv_state)" = full ]; then
            rm -f "$log"
            return 0
        fi
        step "none found (offline, or none built for this torch and CUDA; pip's words in $log)"
        remove_mmcv
    fi
    step "building mmcv 2.1.0 with its CPU ops from source ($(nproc) cores; measured 9 to 64 minutes on 2 cores)"
    build_mmcv_from_source || return 1
    [ "${SANET_MMCV_DRY_RUN:-0}" = 1 ] && exit 0
    [ "$(mmcv_state)" = full ]
}
state=$(mmcv_state)
has_wheel=0
if [ -n "${SANET_WHEEL_DIR:-}" ] && compgen -G "$SANET_WHEEL_DIR/mmcv-*-$($PY -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')-*.whl" >/dev/null; then
    has_wheel=1
fi
if [ "$state" = full ] && [ "$MMCV" != lite ]; then
    step "mmcv $($PY -c 'import mmcv; print(mmcv.__version__)') with its compiled ops: kept"
elif [ "$MMCV" = full ] || { [ -z "$MMCV" ] && [ $has_wheel = 1 ]; }; then
    why="SANET_MMCV=full"
    [ "$MMCV" = full ] || why="a wheel in $SANET_WHEEL_DIR"
    step "mmcv with its compiled ops ($why)"
    install_full_mmcv || { echo "[setup] mmcv with its compiled ops could not be installed" >&2; exit 1; }
    step "mmcv $($PY -c 'import mmcv; print(mmcv.__version__)') with its compiled ops: installed"
elif [ "$state" = lite ]; then
    step "mmcv-lite $($PY -c 'import mmcv; print(mmcv.__version__)') (no compiled ops; SANet needs none): kept"
else
    step "installing $LITE_SPEC (pure Python: SANet needs none of mmcv's compiled ops; SANET_MMCV=full for them)"
    remove_mmcv
    $PIP install -q "$LITE_SPEC"
fi

# 4. the plugin itself, editable, with the extras asked (default: tests), and
# its .pth file, which installs mmcv._ext's stand-in at interpreter start
# (asked from / so that this folder is not on the path)
here=$PWD
modules='sanet_mmseg, mmseg, pytest'
[ "$EXTRAS" = tests ] && modules="$modules, mmpretrain, pytorch_grad_cam, onnxruntime, onnxsim, openvino, nncf, cityscapesscripts, matplotlib, tensorboard, jsonschema, gradio, playwright, xdist"
spec=.
[ -n "$EXTRAS" ] && spec=".[$EXTRAS]"
if (cd / && $PY -c "import $modules" 2>/dev/null) \
        && [ "$(cd / && $PY -c 'import sanet_mmseg, os; print(os.path.dirname(os.path.dirname(os.path.abspath(sanet_mmseg.__file__))))' 2>/dev/null)" = "$here" ] \
        && (cd / && $PY -c 'import sys; sys.exit("sanet_mmseg.mmcv_ext" not in sys.modules)'); then
    step "sanet_mmseg is installed from $PWD: kept"
else
    step "installing sanet_mmseg (editable, $spec) and its dependencies"
    $PIP install -e "$spec" pytest
fi
step "done"

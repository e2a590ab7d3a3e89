#!/usr/bin/env bash
# One-time set-up of sanet-mmseg in the active Python environment.
# Re-running it is fast (about 5 s) and changes nothing.
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
WANT=${SANET_MMCV:-}
case $WANT in
    ''|lite|full) ;;
    *) echo "[setup] SANET_MMCV must be lite or full (got '$WANT')" >&2; exit 1 ;;
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

# the state of every step, asked of one interpreter (from /, so that this
# folder is not on the path) and again after a step installs something:
# TORCH (the version where torch imports), TORCH_ERROR (the last line of
# what importing torch and torchvision says; empty: both import),
# SETUPTOOLS (its version, "bad" outside the range), MMCV (full, lite or
# none, in the range) and MMCV_VERSION, PLUGIN (1: sanet_mmseg imports from
# $here with the stand-in set up at start and every module of the extras
# is installed)
here=$PWD
modules=(sanet_mmseg mmseg pytest)
[ "$EXTRAS" = tests ] && modules+=(mmpretrain pytorch_grad_cam onnxruntime onnxsim openvino nncf cityscapesscripts matplotlib tensorboard jsonschema gradio playwright xdist)
stale=0  # something installed since the last probe
probe() {
    local state
    state=$(cd / && $PY - "$here" "${modules[@]}" 2>/dev/null <<'PY'
import importlib.util, shlex, sys, traceback
here, modules = sys.argv[1], sys.argv[2:]
state = dict(TORCH='', TORCH_ERROR='', SETUPTOOLS='bad', MMCV='none',
             MMCV_VERSION='', PLUGIN=0)
stand_in = 'sanet_mmseg.mmcv_ext' in sys.modules  # from the .pth, at start
def error(e):
    return traceback.format_exception_only(type(e), e)[-1].strip()
try:
    import torch
    state['TORCH'] = torch.__version__
    import torchvision  # noqa: F401
except BaseException as e:
    state['TORCH_ERROR'] = error(e)
try:
    import pkg_resources, setuptools  # noqa: F401
    v = tuple(map(int, setuptools.__version__.split('.')[:2]))
    if (77, 0) <= v < (81, 0):
        state['SETUPTOOLS'] = setuptools.__version__
except BaseException:
    pass
try:
    import mmcv
    from packaging.version import Version
    if Version('2.0.0rc4') <= Version(mmcv.__version__) < Version('2.2.0'):
        ext = importlib.util.find_spec('mmcv._ext')
        full = ext and not getattr(ext.loader, 'stand_in', False)
        state['MMCV'] = 'full' if full else 'lite'
        state['MMCV_VERSION'] = mmcv.__version__
except BaseException:
    pass
try:
    import os.path as osp
    import sanet_mmseg
    where = osp.dirname(osp.dirname(osp.abspath(sanet_mmseg.__file__)))
    state['PLUGIN'] = int(stand_in and where == here and all(
        importlib.util.find_spec(m) for m in modules))
except BaseException:
    pass
print(' '.join(f'{k}={shlex.quote(str(v))}' for k, v in state.items()))
PY
    ) || state="TORCH_ERROR='the probe failed'"
    TORCH='' TORCH_ERROR='' SETUPTOOLS=bad MMCV=none MMCV_VERSION='' PLUGIN=0
    eval "${state##*$'\n'}"  # its last line: what a module printed goes
    stale=0
}
probe

# 1. torch: keep an importable torch + torchvision (a user's CUDA or CPU build
# stays); where torchvision does not import, say why, and first try the
# torchvision that matches the torch there
TORCH_SPEC='torch==2.14.1 torchvision==0.29.1'
if [ -n "$TORCH" ] && [ -z "$TORCH_ERROR" ]; then
    step "torch $TORCH is installed: kept"
elif [ -n "$TORCH" ]; then
    found=$TORCH err=$TORCH_ERROR
    tv=$(v=${found%%+*}; IFS=. read -r _ minor patch _ <<<"$v"; echo "0.$((minor + 15)).$patch")
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
            && probe && [ -z "$TORCH_ERROR" ]; then
        step "torch $found with torchvision $tv: ok"
    else
        step "torchvision $tv does not import beside torch $found ($TORCH_ERROR): replacing both with $TORCH_SPEC (PyPI's CUDA build, about 5.5 GB; runs on a CPU too)"
        $PIP install --force-reinstall $TORCH_SPEC
        probe
    fi
else
    step "torch does not import ($TORCH_ERROR): installing $TORCH_SPEC (PyPI's CUDA build, about 5.5 GB; runs on a CPU too; for the CPU build, install torch first: docs/setup.md)"
    $PIP install $TORCH_SPEC
    probe
fi

# 2. setuptools <81 keeps pkg_resources, which mim and mmengine's mmseg:: configs import
if [ "$SETUPTOOLS" != bad ]; then
    step "setuptools $SETUPTOOLS: ok"
else
    step "pinning setuptools>=77,<81"
    $PIP install "$SETUPTOOLS_SPEC"
    stale=1
fi

# 3. mmcv: lite (the default) or full; both install the package mmcv, so one
# is removed before the other goes in
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
                    && probe && [ "$MMCV" = full ]; then
                return 0
            fi
            step "$whl does not work with this torch: uninstalled"
            remove_mmcv
        done
    fi
    if [ "${SANET_OFFLINE:-0}" != 1 ]; then
        step "looking for OpenMMLab's prebuilt mmcv for torch $TORCH"
        # (with the setuptools pin: openxlab, which openmim pulls in, would
        # otherwise downgrade setuptools to 60, which cannot build mmcv)
        $PIP install -q openmim "$SETUPTOOLS_SPEC"
        # binary only, short timeouts: fails fast where there is none
        log=$(mktemp)
        if (remove_mmcv; $PY -m mim install "$MMCV_SPEC" --only-binary mmcv --timeout 20 --retries 1) >"$log" 2>&1 \
                && probe && [ "$MMCV" = full ]; then
            rm -f "$log"
            return 0
        fi
        step "none found (offline, or none built for this torch and CUDA; pip's words in $log)"
        remove_mmcv
    fi
    step "building mmcv 2.1.0 with its CPU ops from source ($(nproc) cores; measured 9 to 64 minutes on 2 cores)"
    build_mmcv_from_source || return 1
    [ "${SANET_MMCV_DRY_RUN:-0}" = 1 ] && exit 0
    probe && [ "$MMCV" = full ]
}
has_wheel=0
if [ -n "${SANET_WHEEL_DIR:-}" ] && compgen -G "$SANET_WHEEL_DIR/mmcv-*-$($PY -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')-*.whl" >/dev/null; then
    has_wheel=1
fi
if [ "$MMCV" = full ] && [ "$WANT" != lite ]; then
    step "mmcv $MMCV_VERSION with its compiled ops: kept"
elif [ "$WANT" = full ] || { [ -z "$WANT" ] && [ $has_wheel = 1 ]; }; then
    why="SANET_MMCV=full"
    [ "$WANT" = full ] || why="a wheel in $SANET_WHEEL_DIR"
    step "mmcv with its compiled ops ($why)"
    install_full_mmcv || { echo "[setup] mmcv with its compiled ops could not be installed" >&2; exit 1; }
    step "mmcv $MMCV_VERSION with its compiled ops: installed"
elif [ "$MMCV" = lite ]; then
    step "mmcv-lite $MMCV_VERSION (no compiled ops; SANet needs none): kept"
else
    step "installing $LITE_SPEC (pure Python: SANet needs none of mmcv's compiled ops; SANET_MMCV=full for them)"
    remove_mmcv
    $PIP install -q "$LITE_SPEC"
    stale=1
fi

# 4. the plugin itself, editable, with the extras asked (default: tests), and
# its .pth file, which installs mmcv._ext's stand-in at interpreter start
# (the probe asks from / so that this folder is not on the path)
spec=.
[ -n "$EXTRAS" ] && spec=".[$EXTRAS]"
[ "$stale" = 1 ] && probe
if [ "$PLUGIN" = 1 ]; then
    step "sanet_mmseg is installed from $PWD: kept"
else
    step "installing sanet_mmseg (editable, $spec) and its dependencies"
    $PIP install -e "$spec" pytest
fi
step "done"

#!/usr/bin/env bash
# The main job on the embedded default: set up, generate the demo dataset,
# train SANet-S on it on the CPU (or GPU), evaluate it, and paint one
# prediction. Prints the mIoU reached.
# Measured on 2 CPU cores (docs/setup.md): the demo itself 6-8 minutes
# (33 minutes on a machine shared with other jobs); the first set-up adds
# about 2 minutes with a prebuilt mmcv wheel, but without one mmcv is
# compiled: 9 minutes measured, 64 on a loaded machine (progress shown).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
DATA=data/sanet_demo
WORK=work_dirs/sanet-s_demo
CONFIG=configs/sanet/sanet-s_demo.py
if [ ! -d "$DATA/leftImg8bit" ]; then
    python tools/dataset_converters/make_demo_dataset.py "$DATA"
fi
python tools/train.py "$CONFIG" --work-dir "$WORK"
CKPT="$WORK/$(basename "$(cat "$WORK/last_checkpoint")")"
python tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK" 2>&1 | tee "$WORK/test.log" | grep -E "^\|| mIoU" || true
IMG=$(ls "$DATA"/leftImg8bit/val/*/*.png | head -n 1)
python tools/image_demo.py "$IMG" "$CONFIG" "$CKPT" --out-file "$WORK/prediction.png"
echo "demo: $(grep -o 'mIoU: [0-9.]*' "$WORK/test.log" | tail -n 1) on the demo val split; checkpoint $CKPT; picture $WORK/prediction.png"

#!/usr/bin/env bash
# Full-width bnext_tiny on all of CIFAR-10 (JPEG q75, 32 px) on one GPU, four ways in one call:
#   fp32-workers     fp32 eager, augmentation in DataLoader workers (how results/gpu's first rows ran)
#   fp32-device      fp32 eager, training set on the GPU and augmented there in batches
#   bf16-cl          bf16 autocast + channels-last, data on the GPU
#   bf16-cl-compile  the same + torch.compile
# Each run trains EPOCHS epochs under a cap of SECONDS; img/s and top-1 per epoch go to OUT/comparison.md,
# the runs to OUT/fast.db and OUT/run-NAME.json, the logs to OUT/train-NAME.log.
#
#   benchmarks/gpu_cifar10.sh TAR_DIR [OUT] [EPOCHS] [SECONDS]
#
# Run it after `pip install -e .` (or with the repository on PYTHONPATH). TAR_DIR holds train.tar.gz and
# test.tar.gz (../shared/data/cifar10 here; on the device machine copy them into a git-ignored folder of
# the repo and name it in `carry`); they are extracted once into $BNEXTBENCH_CACHE/cifar10-jpeg (default
# ~/.cache/bnextbench), where the decoded images are cached too. Defaults: 3 epochs, 110 s per run, so
# that the four runs, decoding included, fit one 10-minute device command.
set -euo pipefail
TAR_DIR=${1:?usage: gpu_cifar10.sh TAR_DIR [OUT] [EPOCHS] [SECONDS]}
OUT=${2:-results/gpu}
EPOCHS=${3:-3}
CAP=${4:-110}
export BNEXTBENCH_CACHE=${BNEXTBENCH_CACHE:-$HOME/.cache/bnextbench}
DATA=$BNEXTBENCH_CACHE/cifar10-jpeg
mkdir -p "$OUT" "$DATA"
[ -d "$DATA/train" ] || tar -xzf "$TAR_DIR/train.tar.gz" -C "$DATA"
[ -d "$DATA/test" ] || tar -xzf "$TAR_DIR/test.tar.gz" -C "$DATA"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } | tee "$OUT/device.txt"
# Decode the JPEGs into the cache before any timed run.
python3 -c "from bnextbench.data import load_data; load_data('imagefolder:$DATA', 32)"

DB=$OUT/fast.db
CHECKPOINTS=$(mktemp -d)
rm -f "$DB"
NAMES=()
train() {
  local name=$1; shift
  NAMES+=("$name")
  timeout "$CAP" python3 -m bnextbench train bnext_tiny --data "imagefolder:$DATA" --resolution 32 \
    --epochs "$EPOCHS" --batch-size 256 --device cuda --db "$DB" --out "$CHECKPOINTS/$name" "$@" 2>&1 \
    | tee "$OUT/train-$name.log" || true
}
train fp32-workers --precision fp32 --data-in-workers
train fp32-device --precision fp32 --data-on-device
train bf16-cl --precision bf16 --channels-last --data-on-device
train bf16-cl-compile --precision bf16 --channels-last --data-on-device --compile
for id in "${!NAMES[@]}"; do
  python3 -m bnextbench runs --db "$DB" --run $((id + 1)) --format json > "$OUT/run-${NAMES[$id]}.json" || true
done
rm -rf "$CHECKPOINTS"

python3 - "$OUT" "${NAMES[@]}" <<'EOF' | tee "$OUT/comparison.md"
import json, sys
from pathlib import Path

out, names = Path(sys.argv[1]), sys.argv[2:]
print("| run | status | epochs | img/s per epoch | top-1 % per epoch |")
print("| --- | --- | ---: | --- | --- |")
for name in names:
    try:
        run = json.loads((out / f"run-{name}.json").read_text().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        print(f"| {name} | no record | | | |")
        continue
    epochs = run.get("epochs", [])
    speeds = ", ".join(f"{e['images_per_s']:.0f}" for e in epochs)
    top1 = ", ".join(f"{e['test_top1']:.2f}" for e in epochs)
    print(f"| {name} | {run['status']} | {len(epochs)} of {run['epochs_planned']} | {speeds} | {top1} |")
EOF

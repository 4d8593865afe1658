#!/usr/bin/env bash
# Full-width bnext_tiny on all of CIFAR-10 (JPEG q75) on a GPU, at most 8 minutes of training.
# Prints img/s and top-1 per epoch; everything it writes lands in OUT (default results/gpu).
#
#   benchmarks/gpu_cifar10.sh TAR_DIR [OUT] [EPOCHS] [SECONDS]
#
# Run it after `pip install -e .` (or with the repository on PYTHONPATH). TAR_DIR holds train.tar.gz
# and test.tar.gz (../shared/data/cifar10 here; on the device machine copy them into a git-ignored
# folder of the repo and name it in `carry`). SECONDS (default and at most 480) caps the training.
# BNEXTBENCH_CACHE, if set, keeps the decoded images for later runs.
set -euo pipefail
TAR_DIR=${1:?usage: gpu_cifar10.sh TAR_DIR [OUT] [EPOCHS] [SECONDS]}
OUT=${2:-results/gpu}
EPOCHS=${3:-15}
SECONDS_CAP=$(( ${4:-480} < 480 ? ${4:-480} : 480 ))
mkdir -p "$OUT"
DATA=${CIFAR10_DIR:-$(mktemp -d)}
[ -d "$DATA/train" ] || tar -xzf "$TAR_DIR/train.tar.gz" -C "$DATA"
[ -d "$DATA/test" ] || tar -xzf "$TAR_DIR/test.tar.gz" -C "$DATA"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } | tee "$OUT/device.txt"
export BNEXTBENCH_CACHE=${BNEXTBENCH_CACHE:-$DATA/cache}
timeout "$SECONDS_CAP" python3 -m bnextbench train bnext_tiny --data "imagefolder:$DATA" --epochs "$EPOCHS" \
  --batch-size 256 --device cuda --db "$OUT/gpu.db" --out "$OUT/checkpoint" 2>&1 | tee "$OUT/train.log" || true
python3 -m bnextbench runs --db "$OUT/gpu.db" --run 1 --format json > "$OUT/run.json" || true
rm -rf "$OUT/checkpoint"

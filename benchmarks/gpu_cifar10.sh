#!/usr/bin/env bash
# Full-width bnext_tiny on all of CIFAR-10 (JPEG q75) on a GPU, at most 8 minutes of training.
# Prints img/s and top-1 per epoch; everything it writes lands in OUT (default results/gpu).
#
#   benchmarks/gpu_cifar10.sh TAR_DIR [OUT] [EPOCHS]
#
# TAR_DIR holds train.tar.gz and test.tar.gz (../shared/data/cifar10 here; on the device machine
# copy them into a git-ignored folder of the repo and name it in `carry`).
set -euo pipefail
TAR_DIR=${1:?usage: gpu_cifar10.sh TAR_DIR [OUT] [EPOCHS]}
OUT=${2:-results/gpu}
EPOCHS=${3:-15}
mkdir -p "$OUT"
DATA=$(mktemp -d)
tar -xzf "$TAR_DIR/train.tar.gz" -C "$DATA"
tar -xzf "$TAR_DIR/test.tar.gz" -C "$DATA"
pip install -q -e . >"$OUT/pip.log" 2>&1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } | tee "$OUT/device.txt"
export BNEXTBENCH_CACHE="$DATA/cache"
timeout 480 bnextbench train bnext_tiny --data "imagefolder:$DATA" --epochs "$EPOCHS" --batch-size 256 \
  --device cuda --db "$OUT/gpu.db" --out "$OUT/checkpoint" --format json 2>&1 | tee "$OUT/train.log" || true
bnextbench runs --db "$OUT/gpu.db" --run 1 --format json > "$OUT/run.json" || true
rm -f "$OUT/checkpoint/last.pt"

#!/usr/bin/env bash
# Distillation against plain cross-entropy on real CIFAR-10 (JPEG q75), same epochs, data and seed.
#
#   benchmarks/kd_cifar10.sh CIFAR_DIR [OUT] [TRAIN_LIMIT] [EPOCHS] [TEACHER_EPOCHS]
#
# CIFAR_DIR holds train/ and test/ (extract ../shared/data/cifar10/*.tar.gz into it). A full-precision
# timm resnet18 teacher is trained on all training images with `bnextbench teacher train`; then
# bnext_tiny (width x0.25) is trained twice on the same class-balanced subset, with and without the
# teacher. Both runs land in OUT/kd.db; OUT/kd-comparison.json holds the two records.
set -euo pipefail
CIFAR=${1:?usage: kd_cifar10.sh CIFAR_DIR [OUT] [TRAIN_LIMIT] [EPOCHS]}
OUT=${2:-results/cifar10}
LIMIT=${3:-10000}
EPOCHS=${4:-3}
TEACHER_EPOCHS=${5:-3}
mkdir -p "$OUT"
DB="$OUT/kd.db"
TEACHER="$OUT/teacher-resnet18.pt"
bnextbench teacher train resnet18 --data "imagefolder:$CIFAR" --epochs "$TEACHER_EPOCHS" --batch-size 256 --seed 0 \
  --db "$DB" --out "$TEACHER" --format json | tail -1 > "$OUT/kd-teacher.json"
common=(bnext_tiny --width-mult 0.25 --data "imagefolder:$CIFAR" --train-limit "$LIMIT" --epochs "$EPOCHS"
        --batch-size 128 --lr 2e-3 --sign-at 0.5 --seed 0 --db "$DB" --format json)
bnextbench train "${common[@]}" --out "$OUT/ckpt-no-kd" | tail -1 > "$OUT/kd-student-ce.json"
bnextbench train "${common[@]}" --teacher "$TEACHER" --out "$OUT/ckpt-kd" | tail -1 > "$OUT/kd-student-kd.json"
python - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
records = {name: json.loads((out / f"kd-{name}.json").read_text()) for name in ("teacher", "student-ce", "student-kd")}
(out / "kd-comparison.json").write_text(json.dumps(records, indent=2) + "\n")
for name, record in records.items():
    print(f"{name:11s} top-1 {record['top1']:.2f} %  top-5 {record['top5']:.2f} %  run {record['run_id']}")
PY
rm -rf "$OUT/ckpt-no-kd" "$OUT/ckpt-kd" "$TEACHER"

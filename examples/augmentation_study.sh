#!/usr/bin/env bash
# The experiment the GC-GAN paper is about, on synthetic data small enough for 2 CPU cores: a gaze
# estimator trained on a labelled set, against the same estimator trained on that set plus GC-GAN
# samples, both evaluated on the same held-out people, over several estimator seeds.
#
#   bash examples/augmentation_study.sh                       # trains a small GC-GAN first (ITERS steps)
#   CKPT=run/checkpoints/0008000.pt LABELLED=db bash examples/augmentation_study.sh   # reuse a generator and its training DB
#
# Every number it prints comes from `gcgan gaze eval --json` on the held-out set, or from
# `gcgan gaze consistency --json` judged by the labelled-only estimator of the same seed (an
# estimator no training loss saw).
set -euo pipefail
GCGAN=${GCGAN:-gcgan}
WORK=${WORK:-runs/augmentation_study}
N_LABELLED=${N_LABELLED:-2000}  # the labelled set (20 strips per synthetic person)
N_TEST=${N_TEST:-400}           # held-out people (another seed: other identities)
ITERS=${ITERS:-3000}            # GC-GAN stage-1 steps when no CKPT is given
N_SAMPLES=${N_SAMPLES:-2000}    # generated, gaze-labelled strips
EPOCHS=${EPOCHS:-60}
LR=${LR:-0.003}                 # the estimators' peak learning rate
SEEDS=${SEEDS:-"0 1 2"}
DEVICE=${DEVICE:-cpu}

mkdir -p "$WORK"
if [ -z "${LABELLED:-}" ]; then
    LABELLED="$WORK/labelled"
    "$GCGAN" segment synthetic --n "$N_LABELLED" --size 64 --seed 1 --outdir "$WORK/labelled_prep"
    "$GCGAN" pack --data "$WORK/labelled_prep" --outdir "$LABELLED" --size 64 --overwrite
fi
"$GCGAN" segment synthetic --n "$N_TEST" --size 64 --seed 2 --outdir "$WORK/test_prep"
"$GCGAN" pack --data "$WORK/test_prep" --outdir "$WORK/test" --size 64 --overwrite

if [ -z "${CKPT:-}" ]; then
    rm -rf "$WORK/gan"
    "$GCGAN" train --data "$LABELLED" --outdir "$WORK/gan" --preset small --batch 8 --mirror \
        --iters "$ITERS" --log-every 100 --viz-every 500 --save-every 500 --device "$DEVICE"
    CKPT=$(ls "$WORK"/gan/checkpoints/*.pt | tail -n 1)
fi
"$GCGAN" sample "$CKPT" --outdir "$WORK/samples" --n "$N_SAMPLES" --overwrite --device "$DEVICE"

for SEED in $SEEDS; do
    "$GCGAN" gaze fit --data "$LABELLED" --out "$WORK/estimator_labelled_$SEED.pt" --epochs "$EPOCHS" --lr "$LR" --seed "$SEED" --overwrite --device "$DEVICE"
    "$GCGAN" gaze fit --data "$LABELLED" --data "$WORK/samples" --mix 1,1 --seed "$SEED" \
        --out "$WORK/estimator_augmented_$SEED.pt" --epochs "$EPOCHS" --lr "$LR" --overwrite --device "$DEVICE"
    for KIND in labelled augmented; do
        "$GCGAN" gaze eval --model "$WORK/estimator_${KIND}_$SEED.pt" --data "$WORK/test" --json --device "$DEVICE" > "$WORK/eval_${KIND}_$SEED.json"
    done
    "$GCGAN" gaze consistency --network "$CKPT" --model "$WORK/estimator_labelled_$SEED.pt" --n 500 --json --device "$DEVICE" > "$WORK/consistency_$SEED.json"
done

python3 - "$WORK" $SEEDS <<'PY'
import json, sys
import numpy as np
work, seeds = sys.argv[1], sys.argv[2:]
load = lambda name: json.load(open(f"{work}/{name}.json"))
rows = {
    "labelled only": [load(f"eval_labelled_{s}")["error_deg"]["mean"] for s in seeds],
    "labelled + GC-GAN samples": [load(f"eval_augmented_{s}")["error_deg"]["mean"] for s in seeds],
    "mean-gaze baseline (test)": [load(f"eval_labelled_{s}")["mean_gaze_baseline_deg"]["mean"] for s in seeds],
    "generator consistency": [load(f"consistency_{s}")["error_deg"]["mean"] for s in seeds],
    "  its mean-gaze baseline": [load(f"consistency_{s}")["mean_gaze_baseline_deg"]["mean"] for s in seeds],
}
print(f"held-out set: {load(f'eval_labelled_{seeds[0]}')['data']}; estimator seeds {', '.join(seeds)}")
print(f"{'':28s} {'mean':>7s} {'std':>6s}  per seed (deg)")
for name, values in rows.items():
    print(f"{name:28s} {np.mean(values):7.2f} {np.std(values):6.2f}  " + " ".join(f"{v:.2f}" for v in values))
ratio = np.array(rows["labelled + GC-GAN samples"]) / np.array(rows["labelled only"])
print(f"ratio augmented / labelled   {ratio.mean():7.3f} {ratio.std():6.3f}")
PY

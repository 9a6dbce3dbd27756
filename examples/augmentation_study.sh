#!/usr/bin/env bash
# The experiment the GC-GAN paper is about, on synthetic data small enough for 2 CPU cores
# (about 12 minutes): a gaze estimator trained on a small labelled set, against the same
# estimator trained on that set plus GC-GAN samples, both evaluated on the same held-out people.
#
#   bash examples/augmentation_study.sh            # WORK=runs/augmentation_study
#   ITERS=3000 N_SAMPLES=4000 bash examples/augmentation_study.sh
#
# Every number it prints comes from `gcgan gaze eval --json` on the held-out set.
set -euo pipefail
GCGAN=${GCGAN:-gcgan}
WORK=${WORK:-runs/augmentation_study}
N_LABELLED=${N_LABELLED:-300}   # the small labelled set (15 synthetic people)
N_TEST=${N_TEST:-400}           # held-out people (another seed: other identities)
ITERS=${ITERS:-1500}            # GC-GAN stage-1 steps (tiny model at 64 px)
N_SAMPLES=${N_SAMPLES:-2000}    # generated, gaze-labelled strips
EPOCHS=${EPOCHS:-15}
DEVICE=${DEVICE:-cpu}

mkdir -p "$WORK"
"$GCGAN" segment synthetic --n "$N_LABELLED" --size 64 --seed 1 --out "$WORK/labelled_prep"
"$GCGAN" pack "$WORK/labelled_prep" --out "$WORK/labelled" --size 64 --overwrite
"$GCGAN" segment synthetic --n "$N_TEST" --size 64 --seed 2 --out "$WORK/test_prep"
"$GCGAN" pack "$WORK/test_prep" --out "$WORK/test" --size 64 --overwrite

rm -rf "$WORK/gan"
"$GCGAN" train --dataset "$WORK/labelled" --checkpoint-dir "$WORK/gan" --preset tiny --size 64 \
    --iters "$ITERS" --log-every 100 --viz-every 500 --save-every 500 --device "$DEVICE"
CKPT=$(ls "$WORK"/gan/checkpoints/*.pt | tail -n 1)
"$GCGAN" sample "$CKPT" --outdir "$WORK/samples" --n "$N_SAMPLES" --overwrite --device "$DEVICE"

"$GCGAN" gaze fit --data "$WORK/labelled" --out "$WORK/estimator_labelled.pt" --epochs "$EPOCHS" --device "$DEVICE"
"$GCGAN" gaze fit --data "$WORK/labelled" --data "$WORK/samples" --mix 1,1 \
    --out "$WORK/estimator_augmented.pt" --epochs "$EPOCHS" --device "$DEVICE"

"$GCGAN" gaze eval --model "$WORK/estimator_labelled.pt" --data "$WORK/test" --json --device "$DEVICE" > "$WORK/eval_labelled.json"
"$GCGAN" gaze eval --model "$WORK/estimator_augmented.pt" --data "$WORK/test" --json --device "$DEVICE" > "$WORK/eval_augmented.json"
"$GCGAN" gaze consistency "$CKPT" --model "$WORK/estimator_labelled.pt" --n 500 --json --device "$DEVICE" > "$WORK/consistency.json"

python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
labelled, augmented, consistency = (json.load(open(f"{work}/{name}.json")) for name in ("eval_labelled", "eval_augmented", "consistency"))
a, b = labelled["error_deg"]["mean"], augmented["error_deg"]["mean"]
print(f"held-out set: {labelled['data']}")
print(f"mean-gaze baseline        {labelled['mean_gaze_baseline_deg']['mean']:6.2f} deg")
print(f"labelled only             {a:6.2f} deg (median {labelled['error_deg']['median']:.2f})")
print(f"labelled + GC-GAN samples {b:6.2f} deg (median {augmented['error_deg']['median']:.2f})")
print(f"ratio augmented / labelled {b / a:.3f}")
print(f"generator gaze consistency {consistency['error_deg']['mean']:6.2f} deg (conditioning vs estimate)")
PY

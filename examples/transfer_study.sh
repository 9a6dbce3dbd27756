#!/usr/bin/env bash
# FP-GAN on the synthetic two-domain data, judged by networks no loss saw.
#
#   bash examples/transfer_study.sh            # variants A and E, seed 0: about 20 minutes on 2 CPU cores
#   VARIANTS="A B C D E" SEEDS="0 1 2" STEPS=4000 bash examples/transfer_study.sh
#
# Variants (the same budget each): A CycleGAN only; B + self-regularisation (lambda_self 2, the
# reference's SIMPLISTIC); C + gaze consistency (lambda_gaze 30 rad^-2); D + landmark consistency
# (lambda_landmarks 15); E all three; F self-regularisation + the gaze loss against S's true gaze
# (--gaze-target label, which the original never used).
# Data: S = clean UnityEyes-like eyes with a wide gaze prior (train and test from other seeds);
# R = degraded MPII-like eyes of 15 persons with a narrow prior, p00-p11 train, p12-p14 test.
# Loss networks are fitted on S_train only; the evaluators on R_train (gaze, landmarks) and on
# S_train with another architecture and seed (R -> S), so no evaluator is a loss network.
# Writes OUT/summary.md (one row per variant: mean and range over seeds, with raw S and R itself as
# bounds) and OUT/VARIANT_sSEED/eval.json. Re-running skips what is done; an interrupted fit resumes.
set -euo pipefail
GCGAN=${GCGAN:-gcgan}
OUT=${OUT:-runs/transfer_study}
VARIANTS=${VARIANTS:-"A E"}
SEEDS=${SEEDS:-0}
STEPS=${STEPS:-2000}
PRESET=${PRESET:-tiny}
N_S=${N_S:-3000}
N_R_PERSON=${N_R_PERSON:-200}
EPOCHS=${EPOCHS:-15}            # gaze estimators
LM_EPOCHS=${LM_EPOCHS:-15}      # landmark networks
DOWNSTREAM=${DOWNSTREAM:-10}    # epochs of each downstream estimator (0: skip)
DEVICE=${DEVICE:-cpu}
mkdir -p "$OUT"
cd "$OUT"

step() { echo "== $(date +%H:%M:%S) $*"; }
have() { [ -e "$1" ]; }

step "data"
have s_train || $GCGAN transfer synth --outdir s_train --style s --n "$N_S" --seed 0 >/dev/null
have s_test || $GCGAN transfer synth --outdir s_test --style s --n 500 --seed 1 --twin >/dev/null
have s_val || $GCGAN transfer synth --outdir s_val --style s --n 300 --seed 3 >/dev/null
have r_train.h5 || $GCGAN transfer synth --outdir r_train.h5 --style r --format mpii --n $((12 * N_R_PERSON)) --persons 12 --seed 2 >/dev/null
have r_test.h5 || $GCGAN transfer synth --outdir r_test.h5 --style r --format mpii --n $((3 * N_R_PERSON)) --persons 3 --first-person 12 --seed 2 >/dev/null

step "loss networks, on S_train"
have g_s.pt || $GCGAN gaze fit --input eye --data s_train --out g_s.pt --arch small --seed 0 --epochs "$EPOCHS" --device "$DEVICE" | tail -n 9
have l_s.pt || $GCGAN transfer landmarks-fit --data s_train --val s_val --out l_s.pt --stride 2 --maps 16 --modules 1 --seed 0 \
    --epochs "$LM_EPOCHS" --device "$DEVICE" | tail -n 6

step "independent evaluators"
have e_r.pt || $GCGAN gaze fit --input eye --data r_train.h5 --out e_r.pt --arch gazenet-slim --seed 11 --epochs "$EPOCHS" --device "$DEVICE" | tail -n 9
have e_s2.pt || $GCGAN gaze fit --input eye --data s_train --out e_s2.pt --arch gazenet-slim --seed 12 --epochs "$EPOCHS" --device "$DEVICE" | tail -n 9
have l_r.pt || $GCGAN transfer landmarks-fit --data r_train.h5 --out l_r.pt --stride 2 --maps 24 --modules 1 --seed 13 \
    --epochs "$LM_EPOCHS" --device "$DEVICE" | tail -n 6

flags() {
    case "$1" in
        A) echo "--lambda-self 0" ;;
        B) echo "--lambda-self 2" ;;
        C) echo "--lambda-self 0 --lambda-gaze 30 --gaze-model g_s.pt" ;;
        D) echo "--lambda-self 0 --lambda-landmarks 15 --landmark-model l_s.pt" ;;
        E) echo "--lambda-self 2 --lambda-gaze 30 --gaze-model g_s.pt --lambda-landmarks 15 --landmark-model l_s.pt" ;;
        F) echo "--lambda-self 2 --lambda-gaze 30 --gaze-model g_s.pt --gaze-target label" ;;
        *) echo "unknown variant $1" >&2; exit 2 ;;
    esac
}

for seed in $SEEDS; do
    for variant in $VARIANTS; do
        run="${variant}_s${seed}"
        step "variant $variant, seed $seed"
        if [ ! -e "$run/done" ]; then
            resume=""
            [ -d "$run/checkpoints" ] && resume="--resume"
            # shellcheck disable=SC2046
            $GCGAN transfer fit --s s_train --r r_train.h5 --outdir "$run" --preset "$PRESET" --steps "$STEPS" --seed "$seed" \
                --log-every 100 --sample-every 500 --save-every 500 --device "$DEVICE" $(flags "$variant") $resume | tail -n 12
            touch "$run/done"
        fi
        have "$run/eval.json" || $GCGAN transfer eval --network "$run" --s-test s_test --r-test r_test.h5 --s-train s_train \
            --r-train r_train.h5 --gaze-r e_r.pt --gaze-s e_s2.pt --landmarks-r l_r.pt --twins s_test-twin \
            --downstream-epochs "$DOWNSTREAM" --seed "$seed" --out "$run/eval.json" --device "$DEVICE"
    done
done

step "summary"
python3 - "$VARIANTS" "$SEEDS" <<'EOF' | tee summary.md
import json, sys
import statistics as st
variants, seeds = sys.argv[1].split(), sys.argv[2].split()
NAMES = {"A": "CycleGAN only", "B": "+ self-reg 2", "C": "+ gaze 30", "D": "+ landmarks 15", "E": "all three",
         "F": "self-reg 2 + gaze 30 to the true gaze"}
METRICS = [  # (column, function of one eval.json)
    ("judge acc. on G(S), %", lambda r: r["realism"]["translated"]),
    ("Frechet to R, E_R features", lambda r: r["realism"]["frechet_e_r"]["translated"]),
    ("gaze err E_R on G(s), deg", lambda r: r["gaze"]["translated"]["mean"]),
    ("median", lambda r: r["gaze"]["translated"]["median"]),
    ("landmarks L_R on G(s), px", lambda r: r["landmarks"]["translated"]["mean_px"]),
    ("R->S: E_S' on F(r), deg", lambda r: r["r2s"]["translated"]["mean"]),
    ("downstream: trained on G(S), tested on R, deg", lambda r: r["downstream"]["translated_s_train"]["mean"] if "downstream" in r else float("nan")),
    ("change", lambda r: r["change"]["translated_vs_source"]),
    ("L1 to the R twin", lambda r: r["twins"]["translated_l1"]),
]
BOUNDS = [  # the same columns for raw S (no translation), from the first run
    lambda r: r["realism"]["raw_s"], lambda r: r["realism"]["frechet_e_r"]["raw_s"], lambda r: r["gaze"]["raw_s"]["mean"],
    lambda r: r["gaze"]["raw_s"]["median"], lambda r: r["landmarks"]["raw_s"]["mean_px"], lambda r: r["r2s"]["raw_r"]["mean"],
    lambda r: r["downstream"]["raw_s_train"]["mean"] if "downstream" in r else float("nan"), lambda r: 0.0, lambda r: r["twins"]["raw_l1"],
]
FLOORS = [  # R itself
    lambda r: 50.0, lambda r: r["realism"]["frechet_e_r"]["r_halves"], lambda r: r["gaze"]["r_test_floor"]["mean"],
    lambda r: r["gaze"]["r_test_floor"]["median"], lambda r: float("nan"), lambda r: float("nan"),
    lambda r: r["downstream"]["r_train"]["mean"] if "downstream" in r else float("nan"), lambda r: float("nan"), lambda r: 0.0,
]
def cell(values):
    values = [v for v in values if v == v]
    if not values:
        return "n/a"
    mean = st.mean(values)
    return f"{mean:.2f}" if len(values) == 1 else f"{mean:.2f} ({min(values):.2f}-{max(values):.2f})"
runs = {(v, s): json.load(open(f"{v}_s{s}/eval.json")) for v in variants for s in seeds}
print(f"{len(seeds)} seed(s) per variant: mean (min-max over seeds)\n")
print("| variant | " + " | ".join(name for name, _ in METRICS) + " |")
print("|---" * (len(METRICS) + 1) + "|")
first = runs[(variants[0], seeds[0])]
print("| raw S (no translation) | " + " | ".join(cell([f(first)]) for f in BOUNDS) + " |")
for v in variants:
    print(f"| {v}: {NAMES.get(v, v)} | " + " | ".join(cell([f(runs[(v, s)]) for s in seeds]) for _, f in METRICS) + " |")
print("| R itself (floor) | " + " | ".join(cell([f(first)]) for f in FLOORS) + " |")
EOF

#!/bin/sh
# As run: abl_noest went to 3500; abl_nomismatch and abl_nohead were stopped at 3000 (CPU time), the README compares all at 3000.
# Branches of the main run at step 2000, each with one conditioning term switched off, to step 3500.
G=../../.venv/bin/gcgan
export OMP_NUM_THREADS=1
$G train --resume --checkpoint-dir abl_noest --lambda-gaze 0 --iters 3500 --device cpu
$G train --resume --checkpoint-dir abl_nomismatch --d-gaze-mismatch 0 --iters 3500 --device cpu
$G train --resume --checkpoint-dir abl_nohead --lambda-gaze-head 0 --iters 3500 --device cpu

#!/usr/bin/env bash
# Fault sweep: provoke every bad input and fault of the robustness issue once and check that gcgan
# keeps its promise: a user mistake ends with exactly ONE `error:` line on stderr (exit 2), nothing
# half-written, nothing overwritten without --overwrite, no hang, and Ctrl-C / SIGTERM exit 130.
#
#   bash examples/fault_sweep.sh                      # WORK=runs/fault_sweep (removed and remade)
#   WORK=/tmp/sweep GCGAN=gcgan bash examples/fault_sweep.sh
#
# Runs as root (tmpfs mounts for the full-disk and read-only cases), about 3-5 minutes on 2 cores.
# Every gcgan command runs under `timeout 120` (60 where a worker is killed), so nothing can hang
# the sweep. Prints a table, then `N of M cases pass`; exits 0 only when every case passes.
set -u

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${GCGAN:-}" ]; then
    if [ -x "$REPO/.venv/bin/gcgan" ]; then GCGAN="$REPO/.venv/bin/gcgan"; else GCGAN=gcgan; fi
fi
if [ -z "${PY:-}" ]; then
    if [ -x "$REPO/.venv/bin/python" ]; then PY="$REPO/.venv/bin/python"; else PY=python3; fi
fi
WORK=${WORK:-runs/fault_sweep}
case "$WORK" in /*) ;; *) WORK="$PWD/$WORK" ;; esac
G=$GCGAN
CPU=(--device cpu)
TINY=(--preset tiny --workers 0 --batch 4 --viz-every 0 --device cpu)
T=120  # seconds any one command may run
START=$(date +%s)

# --- housekeeping: mounts and background processes are undone on any exit ---------------------
BG=()
unmount_under() {  # every mount below $1 (a leftover of an aborted sweep, or ours)
    local point
    for point in $(awk -v w="$1/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r); do
        umount "$point" 2>/dev/null || umount -l "$point" 2>/dev/null
    done
}
cleanup() {
    local pid
    for pid in "${BG[@]}"; do  # the command under `timeout` first, then `timeout` itself
        kill -9 $(cat /proc/"$pid"/task/*/children 2>/dev/null) "$pid" 2>/dev/null
    done
    unmount_under "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mount_tmpfs() {  # mount_tmpfs DIR OPTIONS
    mkdir -p "$1"
    mount -t tmpfs -o "$2" tmpfs "$1" 2>"$LOG/mount.err" && return 0
    echo "cannot mount a tmpfs at $1: $(cat "$LOG/mount.err")" >&2
    return 1
}
# not_run ID "description": a case whose tmpfs could not be mounted counts as a failure
not_run() {
    IDS+=("$1"); DESCS+=("$2"); RCS+=(-); EXPS+=(2); NLS+=(-); FIRSTS+=("(not run: no tmpfs)")
    VERDICTS+=(FAIL); NOTES+=("not run: cannot mount a tmpfs (run as root)")
    printf '%-5s %-4s exit %3s  %s
' "$1" FAIL - "$2"
}
unmount() { umount "$1" 2>/dev/null || umount -l "$1"; }

unmount_under "$WORK"
rm -rf "$WORK"
mkdir -p "$WORK/logs" "$WORK/c"
LOG=$WORK/logs
C=$WORK/c  # one folder per case below here

# --- a Python helper: fixtures in the real on-disk formats, and checks ---------------------------
HELP=$WORK/helper.py
cat >"$HELP" <<'PY'
import glob, json, math, os, shutil, sys, time
from pathlib import Path

import numpy as np


def lmdb_put(db, kind, index, data):
    import lmdb
    from gcgan_cli.data import gaze_db
    env = lmdb.open(str(db), subdir=True, lock=False)
    with env.begin(write=True) as txn:
        txn.put(gaze_db.key(kind, int(index)), bytes.fromhex(data))
    env.close()


def labels(db, mode):
    from gcgan_cli.data import gaze_db
    file = Path(db) / gaze_db.LABELS_FILE
    values = np.load(file)
    if mode == "short10":
        values = values[:10]
    else:  # a NaN in row 1
        values = values.copy()
        values[1, 0] = np.nan
    np.save(file, values.astype(np.float32), allow_pickle=False)


def noise_prep(root, count, size):
    """Incompressible strips: the DB is as big as its pixels."""
    from gcgan_cli.data.png import encode_png
    from gcgan_cli.data.prep_dir import strip_name
    root = Path(root)
    (root / "rgb").mkdir(parents=True)
    (root / "mask").mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(int(count)):
        pitch, yaw = rng.uniform(-0.5, 0.5, 2).tolist()
        name = strip_name(0, "00", i, pitch, yaw)
        (root / "rgb" / f"{name}.png").write_bytes(encode_png(rng.integers(0, 256, (int(size), int(size), 3), np.uint8)))
        (root / "mask" / f"{name}.png").write_bytes(encode_png(rng.integers(0, 7, (int(size), int(size)), np.uint8)))
        rows.append({"name": name, "pitch": pitch, "yaw": yaw})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def recode(prep, images, masks, image_ext, mask_ext):
    """The prep's pairs as IMAGE_EXT images and MASK_EXT masks (jpg: lossy)."""
    import cv2
    prep, images, masks = Path(prep), Path(images), Path(masks)
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    for path in sorted((prep / "rgb").glob("*.png")):
        cv2.imwrite(str(images / f"{path.stem}.{image_ext}"), cv2.imread(str(path)))
        cv2.imwrite(str(masks / f"{path.stem}.{mask_ext}"), cv2.imread(str(prep / "mask" / path.name), 0))


def face_rgb(shift=(0, 0), flip=False, size=224):
    import cv2
    from skimage import data
    dy, dx = shift
    face = data.astronaut()[20 + dy:230 + dy, 110 + dx:320 + dx]
    face = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(face[:, ::-1]) if flip else face


def ethx(folder):
    """An ETH-XGaze subject file whose rows 1-3 carry a NaN, an inf and degrees; and a folder named .h5."""
    import h5py
    folder = Path(folder)
    folder.mkdir(parents=True)
    rows = [(1, 10, -0.2, 0.1), (1, 11, math.nan, 0.1), (2, 12, 0.1, math.inf), (3, 13, 30.0, -45.0)]
    patch = face_rgb()[:, :, ::-1]
    with h5py.File(folder / "subject0000.h5", "w") as h5:
        h5.create_dataset("face_patch", data=np.stack([patch] * len(rows)), chunks=(1, 224, 224, 3))
        h5.create_dataset("face_gaze", data=np.array([[r[2], r[3]] for r in rows], np.float32))
        h5.create_dataset("frame_index", data=np.array([[r[1]] for r in rows], np.int32))
        h5.create_dataset("cam_index", data=np.array([[r[0]] for r in rows], np.int32))
        h5.create_dataset("face_head_pose", data=np.zeros((len(rows), 2), np.float32))


def celeba(root, mode):
    """CelebAMask-HQ with one photo: cut at 60 % (mode cut), or with a 7x3 px skin annotation (anno7x3)."""
    import cv2
    from skimage import data
    root = Path(root)
    (root / "CelebA-HQ-img").mkdir(parents=True)
    photo = cv2.resize(data.astronaut()[0:400, 50:450], (1024, 1024), interpolation=cv2.INTER_CUBIC)
    path = root / "CelebA-HQ-img" / "0.jpg"
    cv2.imwrite(str(path), photo[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    if mode == "cut":
        whole = path.read_bytes()
        path.write_bytes(whole[: len(whole) * 6 // 10])
    else:
        parts = root / "CelebAMask-HQ-mask-anno" / "0"
        parts.mkdir(parents=True)
        cv2.imwrite(str(parts / "00000_skin.png"), np.full((3, 7), 255, np.uint8))


def mpii(path, mode):
    """An MPIIFaceGaze-style .h5 (3 people x 6); mode vec3: p01's gaze as [N, 3] vectors."""
    import h5py
    rng = np.random.default_rng(1)
    with h5py.File(path, "w") as handle:
        for p in range(3):
            group = handle.create_group(f"p{p:02d}")
            group["image"] = rng.integers(0, 255, (6, 36, 60, 3), dtype=np.uint8)
            group["gaze"] = np.tile([0.0, 0.0, -1.0], (6, 1)) if (mode == "vec3" and p == 1) else rng.uniform(-0.5, 0.5, (6, 2))
            group["head"] = rng.uniform(-0.5, 0.5, (6, 2))


def unity(folder):
    """A UnityEyes folder of 3 samples, sample 2 with a zero look vector."""
    import cv2
    folder = Path(folder)
    folder.mkdir(parents=True)
    for i in range(1, 4):
        image = np.zeros((240, 320, 3), np.uint8)
        cv2.circle(image, (160, 120), 30, (255, 255, 255), -1)
        cv2.imwrite(str(folder / f"{i}.jpg"), image)
        margin = [f"({160 + 40 * math.cos(a):.2f}, {240 - (120 + 20 * math.sin(a)):.2f}, 0.0)"
                  for a in np.linspace(0, 2 * math.pi, 16, endpoint=False)]
        look = "(0, 0, 0, 0)" if i == 2 else f"({-0.1 * i}, 0.1, -1.0, 0.0)"
        record = {"eye_details": {"look_vec": look}, "interior_margin_2d": margin,
                  "caruncle_2d": ["(204.0, 120.0, 0.0)", "(206.0, 120.0, 0.0)"], "iris_2d": [],
                  "head_pose": "(0, 180, 0)"}
        (folder / f"{i}.json").write_text(json.dumps(record))


def tamper(ckpt, out):
    import torch
    record = torch.load(ckpt, weights_only=True)
    record["config"]["model"]["size"] = "eight"
    torch.save(record, out)


def nan_latent(latent, out):
    values = np.load(latent)
    values.flat[5] = np.nan
    np.save(out, values)


class Payload:
    """Unpickling this would run code: a weights_only load must refuse it."""


def unsafe(path):
    import torch
    torch.save({"Conv2d_1a_3x3.conv.weight": Payload()}, path)


def binary(path):
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)


def samples_bin(folder, prep):
    folder, prep = Path(folder), Path(prep)
    folder.mkdir(parents=True)
    name = sorted(p.stem for p in (prep / "rgb").glob("*.png"))[0]
    shutil.copy(prep / "rgb" / f"{name}.png", folder / "0.png")
    shutil.copy(prep / "mask" / f"{name}.png", folder / "0_mask.png")
    row = json.dumps({"image": "0.png", "mask": "0_mask.png", "pitch": 0.1, "yaw": 0.2}).encode()
    (folder / "samples.jsonl").write_bytes(row + b"\n\x89PNG\r\n\x1a\n\xff\xfe\x00\x01\n")


def killed_prep(src, dst):
    """A PREP_DIR as a killed segment run leaves it: one strip's image, without mask or manifest row."""
    shutil.copytree(src, dst)
    dst = Path(dst)
    rows = [json.loads(line) for line in (dst / "manifest.jsonl").read_text().splitlines()]
    name = rows[2]["name"]
    (dst / "mask" / f"{name}.png").unlink()
    (dst / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows if r["name"] != name))


def hold(folder, command, ready):
    from gcgan_cli.outputs import writer_lock
    with writer_lock(Path(folder), command):
        Path(ready).write_text(str(os.getpid()))
        time.sleep(90)


def workers(pid):
    """Pool workers (multiprocessing spawn children) anywhere below pid."""
    found, todo = [], [int(pid)]
    while todo:
        p = todo.pop()
        for f in glob.glob(f"/proc/{p}/task/*/children"):
            try:
                kids = [int(c) for c in Path(f).read_text().split()]
            except OSError:
                continue
            for c in kids:
                todo.append(c)
                try:
                    if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes():
                        found.append(c)
                except OSError:
                    pass
    print(" ".join(map(str, found)))


# --- checks: exit 0 when the on-disk state is what it should be, else print why and exit 1 ---


def fail(why):
    print(why)
    sys.exit(1)


def prep_whole(prep, expect="", mode="strict"):
    """Every manifest row has a decodable image and mask; no hidden temp file; (optionally) N rows;
    strict: no strip file without a manifest row either (rows-only allows them: a stopped run's
    last image, whose mask it did not get to write); rows: only the rows (a SIGKILLed worker may
    leave a temp file, which the next run removes)."""
    import cv2
    prep = Path(prep)
    rows = [json.loads(line) for line in (prep / "manifest.jsonl").read_text().splitlines() if line.strip()]
    if not rows:
        fail("manifest is empty")
    if expect and len(rows) != int(expect):
        fail(f"{len(rows)} manifest rows, expected {expect}")
    for r in rows:
        for sub in ("rgb", "mask"):
            if cv2.imread(str(prep / sub / f"{r['name']}.png"), cv2.IMREAD_UNCHANGED) is None:
                fail(f"{sub}/{r['name']}.png missing or unreadable")
    hidden = [p for p in prep.rglob(".*") if p.is_file()]
    if hidden and mode != "rows":
        fail(f"temp files left: {hidden[:3]}")
    for sub in ("rgb", "mask") if mode == "strict" else ():
        extra = len(list((prep / sub).glob("*.png"))) - len(rows)
        if extra:
            fail(f"{extra} {sub} file(s) without a manifest row")


def db_count(db, expect):
    from gcgan_cli.data import gaze_db
    count = gaze_db.read_meta(Path(db)).count
    if count != int(expect):
        fail(f"{count} records, expected {expect}")


def ethx_ok(prep):
    prep = Path(prep)
    report = json.loads((prep / "segment_report.json").read_text())
    reasons = {f["item"]: f["reason"] for f in report["failed"]}
    bad = [k for k in ("subject0000.h5 row 1", "subject0000.h5 row 2", "subject0000.h5 row 3") if k not in reasons]
    if bad:
        fail(f"rows not reported as failed: {bad}; report: {reasons}")
    manifest = (prep / "manifest.jsonl").read_text().lower()
    if "nan" in manifest or "inf" in manifest:
        fail("NaN/inf in manifest.jsonl")
    names = [p.name.lower() for p in (prep / "rgb").glob("*")]
    if any("nan" in n or "inf" in n for n in names):
        fail("NaN/inf in strip names")
    if len(manifest.splitlines()) != 1:
        fail(f"{len(manifest.splitlines())} manifest rows, expected 1")


def only_checkpoints(folder, *names):
    got = sorted(p.name for p in Path(folder).iterdir())
    if got != sorted(names):
        fail(f"{folder} holds {got}, expected {sorted(names)}")
    from gcgan_cli.checkpoint import load_checkpoint
    for n in names:
        load_checkpoint(Path(folder) / n)


def digest(folder):
    """sha256 of every file under folder, sorted by path (the segment report's counts and times included)."""
    import hashlib
    for p in sorted(Path(folder).rglob("*")):
        if p.is_file():
            print(hashlib.sha256(p.read_bytes()).hexdigest(), p.relative_to(folder))


if __name__ == "__main__":
    globals()[sys.argv[1].replace("-", "_")](*sys.argv[2:])
PY
H() { "$PY" "$HELP" "$@"; }

# --- recording -----------------------------------------------------------------------------------
IDS=() DESCS=() RCS=() EXPS=() NLS=() FIRSTS=() VERDICTS=() NOTES=()
CID="" EXP=0 DESC="" WORDS="" RC=0

# run_case ID EXPECTED_EXIT "description" "word|word" command...   (words must be in stderr line 1)
run_case() {
    CID=$1 EXP=$2 DESC=$3 WORDS=$4
    shift 4
    timeout "$T" "$@" >"$LOG/$CID.out" 2>"$LOG/$CID.err" </dev/null
    RC=$?
}

# record ['shell check' ...]: judge the last case; each check is eval'ed and must succeed.
record() {
    local err=$LOG/$CID.err nl first ok=1 note="" check word
    nl=$(grep -c '' "$err")
    first=$(head -n 1 "$err" | cut -c1-160)
    if [ "$RC" -ne "$EXP" ]; then ok=0; note="exit $RC, expected $EXP"; fi
    if [ "$EXP" -ne 0 ] && [ "$EXP" -ne 130 ]; then
        if [ "$nl" -ne 1 ]; then ok=0; note="${note:+$note; }$nl stderr lines"; fi
        if ! head -n 1 "$err" | grep -q '^error: ' || head -n 1 "$err" | grep -q '^error: error:'; then
            ok=0; note="${note:+$note; }line 1 is not one 'error: ' line"
        fi
    elif grep -q -e Traceback -e '^error:' "$err"; then
        ok=0; note="${note:+$note; }error/traceback on stderr"
    fi
    if [ -n "$WORDS" ]; then
        local IFS='|'
        for word in $WORDS; do
            if ! head -n 1 "$err" | grep -qF -- "$word"; then ok=0; note="${note:+$note; }no '$word'"; fi
        done
        unset IFS
    fi
    grep -q Traceback "$err" && { ok=0; note="${note:+$note; }traceback"; }
    for check in "$@"; do
        local why
        if ! why=$(eval "$check" 2>&1); then ok=0; note="${note:+$note; }check failed: $check${why:+ ($why)}"; fi
    done
    IDS+=("$CID"); DESCS+=("$DESC"); RCS+=("$RC"); EXPS+=("$EXP"); NLS+=("$nl"); FIRSTS+=("$first")
    if [ "$ok" -eq 1 ]; then VERDICTS+=(PASS); else VERDICTS+=(FAIL); fi
    NOTES+=("$note")
    printf '%-5s %-4s exit %3s  %s\n' "$CID" "${VERDICTS[-1]}" "$RC" "$DESC"
}

# absent PATH...: neither PATH nor its writer-lock file (.NAME.lock beside it) exists
absent() {
    local p lock
    for p in "$@"; do
        lock="$(dirname "$p")/.$(basename "$p").lock"
        [ ! -e "$p" ] || { echo "$p exists"; return 1; }
        [ ! -e "$lock" ] || { echo "$lock left behind"; return 1; }
    done
}
none_like() { local p; for p in "$1"*; do [ ! -e "$p" ] || { echo "$p exists"; return 1; }; done; }  # no PATH*
unchanged() { cmp -s "$1" "$2" || { echo "$2 changed"; return 1; }; }
empty_dir() { [ -z "$(ls -A "$1")" ] || { echo "$1 holds $(ls -A "$1" | head -3 | tr '\n' ' ')"; return 1; }; }
count_files() { local n; n=$(find "$1" -type f | wc -l); [ "$n" -eq "$2" ] || { echo "$1: $n files, expected $2"; return 1; }; }
no_word() { ! grep -qF -- "$2" "$LOG/$1.err" || { echo "stderr has '$2'"; return 1; }; }

# wait_for FILE [SECONDS]: until FILE exists and is non-empty
wait_for() { local end=$(( $(date +%s) + ${2:-60} )); while [ ! -s "$1" ]; do [ "$(date +%s)" -lt "$end" ] || return 1; sleep 0.05; done; }

# kill_worker PID: SIGKILL one pool worker below PID as soon as there is one (30 s at most)
kill_worker() {
    local end=$(( $(date +%s) + 30 )) w
    while [ "$(date +%s)" -lt "$end" ]; do
        w=$(H workers "$1" | awk '{print $1}')
        if [ -n "$w" ]; then kill -9 "$w" && { echo "killed worker $w" >>"$LOG/$CID.kill"; return 0; }; fi
        kill -0 "$1" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# child_of PID: the first child of PID (the gcgan process under `timeout`)
child_of() { cat /proc/"$1"/task/*/children 2>/dev/null | awk '{print $1; exit}'; }

# hold_lock FOLDER COMMAND: another process holding FOLDER's writer lock; sets HOLDER
hold_lock() {
    rm -f "$C/held"
    "$PY" "$HELP" hold "$1" "$2" "$C/held" >/dev/null 2>&1 &
    HOLDER=$!
    BG+=("$HOLDER")
    wait_for "$C/held" 30 || echo "lock holder did not start" >&2
}
release_lock() { kill -9 "$HOLDER" 2>/dev/null; wait "$HOLDER" 2>/dev/null; }

# --- inputs -------------------------------------------------------------------------------------
echo "== building inputs in $WORK"
setup() {
    echo "+ $*" >>"$LOG/setup.log"
    timeout "$T" "$@" >>"$LOG/setup.log" 2>&1 || { echo "setup step failed: $* (see $LOG/setup.log)"; exit 1; }
}
setup "$G" segment synthetic --n 40 --size 32 --outdir "$WORK/prep" -j 1
setup "$G" pack --data "$WORK/prep" --outdir "$WORK/db" --size 32 -j 1
setup "$G" pack --data "$WORK/prep" --outdir "$WORK/dbu" --size 32 -j 1 --unlabelled
setup "$G" train --data "$WORK/db" --outdir "$WORK/stage1" "${TINY[@]}" --iters 2
CKPT=$WORK/stage1/checkpoints/0000002.pt
setup "$G" gaze fit --data "$WORK/db" --out "$WORK/est.pt" --size 16 --epochs 1 "${CPU[@]}"
EST=$WORK/est.pt
setup "$G" sample --network "$CKPT" --outdir "$WORK/samples" --n 2 --save-latent "${CPU[@]}"
LATENT=$WORK/samples/000000_latent.npy
setup "$G" segment synthetic --n 3000 --size 32 --outdir "$WORK/big" -j 2  # long enough to kill a worker of
IMGS=("$WORK"/prep/rgb/*.png)
IMG1=${IMGS[0]} IMG2=${IMGS[1]}
echo "== inputs ready ($(( $(date +%s) - START )) s); cases:"

# --- 1. a truncated data.mdb: refused before any read (it was SIGBUS, exit 135) ------------------
mkdir -p "$C/1"
cp -r "$WORK/db" "$C/1/cut"
FULL=$(stat -c %s "$WORK/db/data.mdb")
truncate -s $(( FULL / 2 )) "$C/1/cut/data.mdb"
cp -r "$WORK/db" "$C/1/zero"
truncate -s 0 "$C/1/zero/data.mdb"

run_case 1a 2 "train on a DB whose data.mdb is cut in half" "data.mdb is $(( FULL / 2 )) bytes|cut short|pack it again" \
    "$G" train --data "$C/1/cut" --outdir "$C/1/run_a" "${TINY[@]}" --iters 1
record 'absent "$C/1/run_a"'
run_case 1b 2 "gaze fit on a cut DB" "cut short" \
    "$G" gaze fit --data "$C/1/cut" --out "$C/1/e.pt" --size 16 --epochs 1 "${CPU[@]}"
record 'absent "$C/1/e.pt"'
run_case 1c 2 "gaze eval on a cut DB" "cut short" \
    "$G" gaze eval --model "$EST" --data "$C/1/cut" --out "$C/1/plot.png" "${CPU[@]}"
record 'absent "$C/1/plot.png"'
run_case 1d 2 "inception on a cut DB" "$C/1/cut: data.mdb|cut short" \
    "$G" inception --data "$C/1/cut" --out "$C/1/stats.npz" "${CPU[@]}"
record 'absent "$C/1/stats.npz"'
run_case 1e 2 "train on a DB whose data.mdb is 0 bytes" "data.mdb is 0 bytes|cut short" \
    "$G" train --data "$C/1/zero" --outdir "$C/1/run_e" "${TINY[@]}" --iters 1
record 'absent "$C/1/run_e"' '[ "$(stat -c %s "$C/1/zero/data.mdb")" -eq 0 ]'

# --- 2. images and masks from one folder ------------------------------------------------------------
mkdir -p "$C/2"
cp -r "$WORK/prep" "$C/2/prep"
run_case 2a 2 "segment synthetic --rgb-dir X --mask-dir X" "--rgb-dir|--mask-dir|$C/2/both" \
    "$G" segment synthetic --n 16 --size 32 -j 1 --outdir "$C/2/out" --rgb-dir "$C/2/both" --mask-dir "$C/2/both"
record 'absent "$C/2/out" "$C/2/both"'
run_case 2b 2 "segment synthetic --rgb-dir OUT/mask" "--rgb-dir|$C/2/out2/mask" \
    "$G" segment synthetic --n 16 --size 32 -j 1 --outdir "$C/2/out2" --rgb-dir "$C/2/out2/mask"
record 'absent "$C/2/out2"'
run_case 2c 2 "pack --rgb-dir X --mask-dir X" "--rgb-dir and --mask-dir are the same folder" \
    "$G" pack --data "$C/2/prep" --rgb-dir "$C/2/prep/rgb" --mask-dir "$C/2/prep/rgb" --outdir "$C/2/db" --size 32 -j 1
record 'none_like "$C/2/db"'
ln -s "$C/2/prep/rgb" "$C/2/link"
run_case 2d 2 "pack --rgb-dir X --mask-dir LINK-TO-X" "same folder" \
    "$G" pack --data "$C/2/prep" --rgb-dir "$C/2/prep/rgb" --mask-dir "$C/2/link" --outdir "$C/2/db" --size 32 -j 1
record 'none_like "$C/2/db"'
run_case 2e 2 "pack --outdir inside the image folder" "--outdir $C/2/prep/rgb/db|outside its input folders" \
    "$G" pack --data "$C/2/prep" --outdir "$C/2/prep/rgb/db" --size 32 -j 1
record 'count_files "$C/2/prep/rgb" 40'

# --- 3. a killed worker ends the run (it hung forever) --------------------------------------------
mkdir -p "$C/3"
CID=3a
timeout 60 "$G" segment synthetic --n 2000 --size 32 -j 2 --outdir "$C/3/seg" >"$LOG/3a.out" 2>"$LOG/3a.err" </dev/null &
P=$!; BG+=("$P")
wait_for "$C/3/seg/manifest.jsonl" 60  # some strips are finished: they must be kept
kill_worker "$P" || echo "no worker found" >>"$LOG/3a.kill"
wait "$P"; RC=$?
EXP=2 DESC="segment -j 2, one worker killed with SIGKILL" WORDS="worker process died|fewer --workers"
record 'grep -q killed "$LOG/3a.kill"' 'H prep_whole "$C/3/seg" "" rows'
run_case 3b 0 "the same segment again completes the killed run" "" \
    "$G" segment synthetic --n 2000 --size 32 -j 1 --outdir "$C/3/seg"
record 'H prep_whole "$C/3/seg" 2000'

CID=3c
timeout 60 "$G" pack --data "$WORK/big" --outdir "$C/3/db" --size 256 -j 2 >"$LOG/3c.out" 2>"$LOG/3c.err" </dev/null &
P=$!; BG+=("$P")
kill_worker "$P" || echo "no worker found" >>"$LOG/3c.kill"
wait "$P"; RC=$?
EXP=2 DESC="pack -j 2, one worker killed with SIGKILL" WORDS="worker process died"
record 'grep -q killed "$LOG/3c.kill"' 'absent "$C/3/db"'
run_case 3d 0 "the same pack again completes the killed one" "" \
    "$G" pack --data "$WORK/big" --outdir "$C/3/db" --size 256 -j 2
record 'H db_count "$C/3/db" 3000' 'absent "$C/3/db.partial"'

# --- 4. lossy masks -------------------------------------------------------------------------------------
mkdir -p "$C/4"
H recode "$WORK/prep" "$C/4/jj/images" "$C/4/jj/masks" jpg jpg
H recode "$WORK/prep" "$C/4/jp/images" "$C/4/jp/masks" jpg png
run_case 4a 2 "pack --mask-dir with .jpg masks" "$C/4/jj/masks: 40 mask(s) in a lossy format|PNG or BMP" \
    "$G" pack --data "$C/4/jj" --rgb-dir "$C/4/jj/images" --mask-dir "$C/4/jj/masks" --outdir "$C/4/db_a" --size 32 -j 1
record 'none_like "$C/4/db_a"'
run_case 4b 0 "pack JPEG images with PNG masks (allowed)" "" \
    "$G" pack --data "$C/4/jp" --rgb-dir "$C/4/jp/images" --mask-dir "$C/4/jp/masks" --outdir "$C/4/db_b" --size 32 -j 1
record 'H db_count "$C/4/db_b" 40'

# --- 5. existing outputs are kept without --overwrite ----------------------------------------------
mkdir -p "$C/5/full"
for f in e.pt p.csv s.npz; do printf 'mine' >"$C/5/$f"; done
printf 'mine' >"$C/5/ref"
printf 'mine' >"$C/5/full/notes.txt"
run_case 5a 2 "gaze fit --out EXISTING" "--out $C/5/e.pt exists|--overwrite" \
    "$G" gaze fit --data "$WORK/db" --out "$C/5/e.pt" --size 16 --epochs 1 "${CPU[@]}"
record 'unchanged "$C/5/ref" "$C/5/e.pt"'
run_case 5b 2 "gaze predict --out EXISTING" "--out $C/5/p.csv exists|--overwrite" \
    "$G" gaze predict --model "$EST" "$IMG1" "$IMG2" --out "$C/5/p.csv" "${CPU[@]}"
record 'unchanged "$C/5/ref" "$C/5/p.csv"'
run_case 5c 2 "inception --out EXISTING" "--out $C/5/s.npz exists|--overwrite" \
    "$G" inception --data "$WORK/db" --out "$C/5/s.npz" "${CPU[@]}"
record 'unchanged "$C/5/ref" "$C/5/s.npz"'
cp -r "$WORK/db" "$C/5/db"
H digest "$C/5/db" >"$C/5/db.before"
run_case 5d 2 "pack --outdir EXISTING-DB" "--overwrite" \
    "$G" pack --data "$WORK/prep" --outdir "$C/5/db" --size 32 -j 1
record 'H digest "$C/5/db" | cmp -s - "$C/5/db.before"'
run_case 5e 2 "sample --outdir NON-EMPTY-FOLDER" "--outdir|not empty|--overwrite" \
    "$G" sample --network "$CKPT" --outdir "$C/5/full" --n 1 "${CPU[@]}"
record 'unchanged "$C/5/ref" "$C/5/full/notes.txt"' '[ "$(ls -A "$C/5/full")" = notes.txt ]'
run_case 5f 0 "gaze predict --out EXISTING --overwrite (allowed)" "" \
    "$G" gaze predict --model "$EST" "$IMG1" "$IMG2" --out "$C/5/p.csv" --overwrite "${CPU[@]}"
record '[ "$(head -n 1 "$C/5/p.csv" | tr -d "\r")" = image,pitch,yaw ]'

# --- 6. impossible gazes for sample ----------------------------------------------------------------
mkdir -p "$C/6"
run_case 6a 2 "sample --gaze nan,inf" "--gaze nan,inf|not finite" \
    "$G" sample --network "$CKPT" --outdir "$C/6/a/out" --n 2 --gaze nan,inf "${CPU[@]}"
record 'absent "$C/6/a"'
run_case 6b 2 "sample --gaze 10,10 (degrees as radians)" "--gaze 10,10|degrees|radians" \
    "$G" sample --network "$CKPT" --outdir "$C/6/b/out" --n 2 --gaze 10,10 "${CPU[@]}"
record 'absent "$C/6/b"'
run_case 6c 2 "sample --gaze-grid 100000" "--gaze-grid|64" \
    "$G" sample --network "$CKPT" --outdir "$C/6/c/out" --n 2 --gaze-grid 100000 "${CPU[@]}"
record 'absent "$C/6/c"'
run_case 6d 2 "sample --gaze 1.2,0 (beyond the training gazes)" "--gaze 1.2,0|--allow-extrapolation" \
    "$G" sample --network "$CKPT" --outdir "$C/6/d/out" --n 2 --gaze 1.2,0 "${CPU[@]}"
record 'absent "$C/6/d"'
run_case 6e 0 "sample --gaze 1.2,0 --allow-extrapolation (allowed)" "" \
    "$G" sample --network "$CKPT" --outdir "$C/6/e" --n 1 --gaze 1.2,0 --allow-extrapolation "${CPU[@]}"
record '[ -s "$C/6/e/samples.jsonl" ]'

# --- 7. a full disk: "disk full at PATH", exit 2, whole outputs kept --------------------------------
mkdir -p "$C/7"
if mount_tmpfs "$C/7/seg" size=1m; then
    run_case 7a 2 "segment onto a full 1 MiB tmpfs" "disk full at|$C/7/seg/prep|run the same command again" \
        "$G" segment synthetic --n 200 --size 128 -j 1 --outdir "$C/7/seg/prep"
    record 'H prep_whole "$C/7/seg/prep" "" rows-only'
    run_case 7b 2 "pack the PREP_DIR a disk-full segment left" "did not finish: run the same \`gcgan segment\` command again" \
        "$G" pack --data "$C/7/seg/prep" --outdir "$C/7/db_b" --size 32 -j 1
    record 'none_like "$C/7/db_b"'
    mount -o remount,size=16m "$C/7/seg"
    run_case 7c 0 "after freeing space the same segment completes" "" \
        "$G" segment synthetic --n 200 --size 128 -j 1 --outdir "$C/7/seg/prep"
    record 'H prep_whole "$C/7/seg/prep" 200'
    unmount "$C/7/seg"
else
    not_run 7a "segment onto a full 1 MiB tmpfs"; not_run 7b "pack the PREP_DIR a disk-full segment left"
    not_run 7c "after freeing space the same segment completes"
fi
H noise_prep "$C/7/noise" 200 64
if mount_tmpfs "$C/7/pack" size=1m; then
    run_case 7d 2 "pack a 3 MiB DB onto a 1 MiB tmpfs" "disk full at $C/7/pack|run the same command again" \
        "$G" pack --data "$C/7/noise" --outdir "$C/7/pack/db" --size 64 -j 1
    record 'absent "$C/7/pack/db"'
    unmount "$C/7/pack"
else
    not_run 7d "pack a 3 MiB DB onto a 1 MiB tmpfs"
fi
if mount_tmpfs "$C/7/train" size=1600k; then
    run_case 7e 2 "train --save-every 1 onto a tmpfs with room for 1 checkpoint" "disk full at $C/7/train/checkpoints" \
        "$G" train --data "$WORK/db" --outdir "$C/7/train" "${TINY[@]}" --iters 2 --save-every 1
    record 'H only_checkpoints "$C/7/train/checkpoints" 0000001.pt'
    unmount "$C/7/train"
else
    not_run 7e "train --save-every 1 onto a tmpfs with room for 1 checkpoint"
fi
if mount_tmpfs "$C/7/sample" size=64k; then
    run_case 7f 2 "sample --n 40 onto a 64 KiB tmpfs" "disk full|$C/7/sample/out" \
        "$G" sample --network "$CKPT" --outdir "$C/7/sample/out" --n 40 "${CPU[@]}"
    record 'empty_dir "$C/7/sample"'
    unmount "$C/7/sample"
else
    not_run 7f "sample --n 40 onto a 64 KiB tmpfs"
fi

# --- 8. ETH-XGaze rows with NaN / inf / degree gaze -----------------------------------------------
mkdir -p "$C/8"
H ethx "$C/8/h5"
run_case 8a 0 "segment ethx: rows with NaN, inf, degrees are skipped and reported" "" \
    "$G" segment ethx --data "$C/8/h5" --outdir "$C/8/prep" --size 32 -j 1 --cameras all
record 'H ethx_ok "$C/8/prep"' '[ ! -s "$LOG/8a.err" ]' 'grep -q skipped "$LOG/8a.out"'

# --- 9. a second writer stops at once ---------------------------------------------------------------
mkdir -p "$C/9"
timeout "$T" "$G" segment synthetic --n 10000 --size 64 -j 1 --outdir "$C/9/seg" >"$LOG/9a.first.out" 2>"$LOG/9a.first.err" </dev/null &
P=$!; BG+=("$P")
wait_for "$C/9/seg/manifest.jsonl" 60
run_case 9a 2 "a second segment into a folder another segment is writing" "another gcgan is writing $C/9/seg|gcgan segment" \
    "$G" segment synthetic --n 10000 --size 64 -j 1 --outdir "$C/9/seg"
RUNNING=no; kill -0 "$P" 2>/dev/null && RUNNING=yes
wait "$P"; FIRST=$?
record '[ "$RUNNING" = yes ] || { echo "the first segment had already ended"; false; }' \
    '[ "$FIRST" -eq 0 ] || { echo "the first segment exited $FIRST"; false; }' 'H prep_whole "$C/9/seg" 10000'

timeout "$T" "$G" pack --data "$WORK/big" --outdir "$C/9/db" --size 256 -j 1 >"$LOG/9b.first.out" 2>"$LOG/9b.first.err" </dev/null &
P=$!; BG+=("$P")
wait_for "$C/9/db.partial/data.mdb" 60
run_case 9b 2 "a second pack into an --outdir another pack is writing" "another gcgan is writing $C/9/db|gcgan pack" \
    "$G" pack --data "$WORK/big" --outdir "$C/9/db" --size 256 -j 1
RUNNING=no; kill -0 "$P" 2>/dev/null && RUNNING=yes
wait "$P"; FIRST=$?
record '[ "$RUNNING" = yes ] || { echo "the first pack had already ended"; false; }' '[ "$FIRST" -eq 0 ] || { echo "the first pack exited $FIRST"; false; }' 'H db_count "$C/9/db" 3000'

hold_lock "$C/9/db2" pack
run_case 9c 2 "pack while another process holds the lock" "another gcgan is writing $C/9/db2|pid $HOLDER" \
    "$G" pack --data "$WORK/prep" --outdir "$C/9/db2" --size 32 -j 1
record '[ ! -e "$C/9/db2" ] && [ ! -e "$C/9/db2.partial" ]'
release_lock
hold_lock "$C/9/run" train
run_case 9d 2 "train while another process holds the lock" "another gcgan is writing $C/9/run|pid $HOLDER" \
    "$G" train --data "$WORK/db" --outdir "$C/9/run" "${TINY[@]}" --iters 1
record '[ ! -e "$C/9/run" ]'
release_lock
hold_lock "$C/9/samples" sample
run_case 9e 2 "sample while another process holds the lock" "another gcgan is writing $C/9/samples|pid $HOLDER" \
    "$G" sample --network "$CKPT" --outdir "$C/9/samples" --n 1 "${CPU[@]}"
record '[ ! -e "$C/9/samples" ]'
release_lock

# --- 10. corrupt records, zero-byte checkpoint / estimator / PNG --------------------------------------
mkdir -p "$C/10"
cp -r "$WORK/db" "$C/10/db"
H lmdb_put "$C/10/db" gaze 7 616263  # b"abc"
: >"$C/10/empty.pt"
: >"$C/10/empty_est.pt"
run_case 10a 2 "train 20 steps on a DB with a 3-byte gaze record" "record 7's gaze is 3 bytes, expected 8|pack it again" \
    "$G" train --data "$C/10/db" --outdir "$C/10/run_a" "${TINY[@]}" --iters 20
record '[ -z "$(find "$C/10/run_a" -name "*.pt" 2>/dev/null)" ]'  # found mid-run: no checkpoint of it
run_case 10b 2 "gaze eval on a DB with a 3-byte gaze record" "$C/10/db|record 7's gaze is 3 bytes" \
    "$G" gaze eval --model "$EST" --data "$C/10/db" --out "$C/10/plot.png" "${CPU[@]}"
record 'absent "$C/10/plot.png"' '[ ! -s "$LOG/10b.out" ]'
run_case 10c 2 "gaze fit on a DB with a 3-byte gaze record" "record 7's gaze is 3 bytes" \
    "$G" gaze fit --data "$C/10/db" --out "$C/10/e.pt" --size 16 --epochs 1 "${CPU[@]}"
record 'absent "$C/10/e.pt"'
run_case 10d 2 "sample from a zero-byte checkpoint" "$C/10/empty.pt|is empty (0 bytes)" \
    "$G" sample --network "$C/10/empty.pt" --outdir "$C/10/out_d" --n 1 "${CPU[@]}"
record 'absent "$C/10/out_d"'
run_case 10e 2 "train --stage 2 --network ZERO-BYTE" "$C/10/empty.pt|is empty (0 bytes)" \
    "$G" train --stage 2 --data "$WORK/dbu" --network "$C/10/empty.pt" --outdir "$C/10/run_e" --workers 0 --iters 1 "${CPU[@]}"
record 'absent "$C/10/run_e"'
run_case 10f 2 "gaze eval --model ZERO-BYTE" "$C/10/empty_est.pt|empty" \
    "$G" gaze eval --model "$C/10/empty_est.pt" --data "$WORK/db" --out "$C/10/plot_f.png" "${CPU[@]}"
record 'absent "$C/10/plot_f.png"'
run_case 10g 2 "gaze predict --model ZERO-BYTE" "$C/10/empty_est.pt|empty" \
    "$G" gaze predict --model "$C/10/empty_est.pt" "$IMG1" "${CPU[@]}"
record '[ ! -s "$LOG/10g.out" ]'
cp -r "$WORK/prep" "$C/10/prep"
ZERO=$(ls "$C/10/prep/rgb"/*.png | sed -n 2p)
: >"$ZERO"
run_case 10h 2 "pack with a zero-byte PNG" "$ZERO: empty file (0 bytes)" \
    "$G" pack --data "$C/10/prep" --outdir "$C/10/db_h" --size 32 -j 1
record 'none_like "$C/10/db_h"'

# --- 11. gaze arrays of the wrong shape or count; options that fell back silently ------------------
mkdir -p "$C/11"
H mpii "$C/11/vec.h5" vec3
run_case 11a 2 "gaze fit on an MPIIFaceGaze .h5 whose gaze is [N, 3]" "--data|vec.h5:/p01/gaze|[N, 3]|pitch, yaw" \
    "$G" gaze fit --data "$C/11/vec.h5" --input eye --epochs 1 --out "$C/11/e.pt" "${CPU[@]}"
record 'absent "$C/11/e.pt"'
cp -r "$WORK/db" "$C/11/db10"
H labels "$C/11/db10" short10
run_case 11b 2 "train on a DB whose labels_gaze.npy has 10 rows for 40 records" "$C/11/db10/labels_gaze.npy|10|40" \
    "$G" train --data "$C/11/db10" --outdir "$C/11/run_b" "${TINY[@]}" --iters 1
record 'absent "$C/11/run_b"'
run_case 11c 2 "train --size 0" "--size 0: must be a power of two >= 32" \
    "$G" train --data "$WORK/db" --outdir "$C/11/run_c" "${TINY[@]}" --iters 1 --size 0
record 'absent "$C/11/run_c"'
run_case 11d 2 "train --seg-dim 0" "--seg-dim 0: must be >= 2" \
    "$G" train --data "$WORK/db" --outdir "$C/11/run_d" "${TINY[@]}" --iters 1 --seg-dim 0
record 'absent "$C/11/run_d"'
run_case 11e 2 "train --stage 2 --unbroken-class pupil" "--unbroken-class pupil|iris" \
    "$G" train --stage 2 --data "$WORK/dbu" --network "$CKPT" --outdir "$C/11/run_e" --workers 0 --iters 1 \
    --unbroken-class pupil "${CPU[@]}"
record 'absent "$C/11/run_e"'

# --- 12. more former exit-1 paths ---------------------------------------------------------------------
mkdir -p "$C/12"
printf 'mine' >"$C/12/file"
printf 'mine' >"$C/12/ref"
run_case 12a 2 "pack --outdir A-FILE" "--outdir $C/12/file: a file is in the way" \
    "$G" pack --data "$WORK/prep" --outdir "$C/12/file" --size 32 -j 1
record 'unchanged "$C/12/ref" "$C/12/file"'
run_case 12b 2 "pack --outdir A-FILE/db" "--outdir $C/12/file/db: $C/12/file is a file" \
    "$G" pack --data "$WORK/prep" --outdir "$C/12/file/db" --size 32 -j 1
record 'unchanged "$C/12/ref" "$C/12/file"'
run_case 12c 2 "train --outdir A-FILE" "--outdir $C/12/file|a file|give a folder path" \
    "$G" train --data "$WORK/db" --outdir "$C/12/file" "${TINY[@]}" --iters 1
record 'unchanged "$C/12/ref" "$C/12/file"'
run_case 12d 2 "sample --outdir A-FILE" "--outdir|file is in the way" \
    "$G" sample --network "$CKPT" --outdir "$C/12/file" --n 1 "${CPU[@]}"
record 'unchanged "$C/12/ref" "$C/12/file"'
run_case 12e 2 "segment synthetic --outdir A-FILE" "--out|$C/12/file|file is in the way" \
    "$G" segment synthetic --n 16 --size 32 -j 1 --outdir "$C/12/file"
record 'unchanged "$C/12/ref" "$C/12/file"'
run_case 12f 2 "gaze fit --out A-FOLDER" "--out|is a folder" \
    "$G" gaze fit --data "$WORK/db" --out "$C/12" --size 16 --epochs 1 "${CPU[@]}"
record '[ "$(ls "$C/12" | tr "\n" " ")" = "file ref " ]'
if mount_tmpfs "$C/12/ro" ro,size=1m; then
    run_case 12g 2 "pack --outdir READ-ONLY/db" "--outdir $C/12/ro: cannot write there|choose another folder" \
        "$G" pack --data "$WORK/prep" --outdir "$C/12/ro/db" --size 32 -j 1
    record 'empty_dir "$C/12/ro"'
    run_case 12h 2 "segment synthetic --outdir READ-ONLY/prep" "--out|$C/12/ro/prep|cannot create it" \
        "$G" segment synthetic --n 16 --size 32 -j 1 --outdir "$C/12/ro/prep"
    record 'empty_dir "$C/12/ro"'
    run_case 12i 2 "train --outdir READ-ONLY/run" "--outdir|$C/12/ro|cannot write there" \
        "$G" train --data "$WORK/db" --outdir "$C/12/ro/run" "${TINY[@]}" --iters 1
    record 'empty_dir "$C/12/ro"'
    run_case 12j 2 "gaze fit --out READ-ONLY/e.pt" "--out|$C/12/ro|Read-only file system" \
        "$G" gaze fit --data "$WORK/db" --out "$C/12/ro/e.pt" --size 16 --epochs 1 "${CPU[@]}"
    record 'empty_dir "$C/12/ro"'
    run_case 12k 2 "sample --outdir READ-ONLY/out" "--outdir|$C/12/ro|Read-only file system" \
        "$G" sample --network "$CKPT" --outdir "$C/12/ro/out" --n 1 "${CPU[@]}"
    record 'empty_dir "$C/12/ro"'
    unmount "$C/12/ro"
else
    for i in g:pack h:segment i:train j:"gaze fit" k:sample; do not_run "12${i%%:*}" "${i#*:} into a read-only folder"; done
fi
mkdir -p "$C/12/binprep"
H binary "$C/12/binprep/manifest.jsonl"
cp "$C/12/binprep/manifest.jsonl" "$C/12/binref"
run_case 12l 2 "segment synthetic --outdir FOLDER-WITH-BINARY-manifest.jsonl" "$C/12/binprep/manifest.jsonl|not a text manifest|move it away" \
    "$G" segment synthetic --n 16 --size 32 -j 1 --outdir "$C/12/binprep"
record 'unchanged "$C/12/binref" "$C/12/binprep/manifest.jsonl"' 'count_files "$C/12/binprep" 1'
H samples_bin "$C/12/binsamples" "$WORK/prep"
run_case 12m 2 "pack a samples folder with a binary samples.jsonl" "$C/12/binsamples/samples.jsonl:2: not UTF-8 text" \
    "$G" pack --data "$C/12/binsamples" --outdir "$C/12/db_m" --size 32 -j 1
record 'none_like "$C/12/db_m"'
printf 'dataset = "%s"\nbatch = "eight"\n' "$WORK/db" >"$C/12/run.toml"
run_case 12n 2 'train --config TOML with batch = "eight"' "run.toml|batch = 'eight' must be an integer" \
    "$G" train --config "$C/12/run.toml" --outdir "$C/12/run_n" "${TINY[@]}" --iters 1
record 'absent "$C/12/run_n"'
H nan_latent "$LATENT" "$C/12/nan.npy"
run_case 12o 2 "interpolate --latent WITH-NaN" "--latent|nan.npy|NaN" \
    "$G" interpolate --network "$CKPT" --latent "$C/12/nan.npy" --outdir "$C/12/new/out" --component nose --frames 2 "${CPU[@]}"
record 'absent "$C/12/new"'
H unity "$C/12/unity"
run_case 12p 2 "gaze fit on UnityEyes with a zero look vector" "--data|2.json|look_vec|no direction" \
    "$G" gaze fit --data "$C/12/unity" --input eye --epochs 1 --out "$C/12/e_p.pt" "${CPU[@]}"
record 'absent "$C/12/e_p.pt"'
H tamper "$CKPT" "$C/12/tampered.pt"
run_case 12q 2 "train --stage 2 from a checkpoint whose config says size = 'eight'" "checkpoint $C/12/tampered.pt|size = 'eight' must be an integer" \
    "$G" train --stage 2 --data "$WORK/dbu" --network "$C/12/tampered.pt" --outdir "$C/12/run_q" --workers 0 --iters 1 "${CPU[@]}"
record 'absent "$C/12/run_q"'
run_case 12r 2 "sample from a checkpoint with a tampered config" "$C/12/tampered.pt|size = 'eight'" \
    "$G" sample --network "$C/12/tampered.pt" --outdir "$C/12/out_r" --n 1 "${CPU[@]}"
record 'absent "$C/12/out_r"'

# --- 13. stale strips, broken photos and annotations ----------------------------------------------
mkdir -p "$C/13"
setup "$G" segment synthetic --n 16 --size 32 -j 1 --outdir "$C/13/prep"
H digest "$C/13/prep" >"$C/13/before"
run_case 13a 2 "re-run segment with another --size (no --overwrite)" "--outdir $C/13/prep|made with size 32; this run asks for size 64|--overwrite" \
    "$G" segment synthetic --n 16 --size 64 -j 1 --outdir "$C/13/prep"
record 'H digest "$C/13/prep" | cmp -s - "$C/13/before"'
H celeba "$C/13/celeba_cut" cut
run_case 13b 2 "segment celeba with a JPEG cut at 60 %" "nothing could be segmented (truncated image)" \
    "$G" segment celeba --data "$C/13/celeba_cut" --outdir "$C/13/prep_b" --size 32 -j 1
record '[ -z "$(find "$C/13/prep_b/rgb" "$C/13/prep_b/mask" -type f 2>/dev/null)" ]'
H celeba "$C/13/celeba_anno" anno7x3
run_case 13c 2 "segment celeba --use-annotations with a 7x3 px part mask" "00000_skin.png is 7x3 px|square" \
    "$G" segment celeba --data "$C/13/celeba_anno" --outdir "$C/13/prep_c" --size 32 --use-annotations -j 1
record '[ -z "$(find "$C/13/prep_c/rgb" -type f 2>/dev/null)" ]'

# --- 14. messages that blamed the wrong thing or said too much --------------------------------------
mkdir -p "$C/14"
run_case 14a 2 "gaze fit --val NOPE" "--val|nope|no such file" \
    "$G" gaze fit --data "$WORK/db" --val "$C/14/nope" --out "$C/14/e.pt" --size 16 --epochs 1 "${CPU[@]}"
record 'no_word 14a --data' 'absent "$C/14/e.pt"'
cp -r "$WORK/db" "$C/14/dbnan"
H labels "$C/14/dbnan" nan
run_case 14b 2 "train on a DB with a NaN in labels_gaze.npy" "labels_gaze.npy|row 1|not finite" \
    "$G" train --data "$C/14/dbnan" --outdir "$C/14/run_b" "${TINY[@]}" --iters 1
record 'absent "$C/14/run_b"'
mkdir -p "$C/14/h5/subject0000.h5"
run_case 14c 2 "segment ethx where the only .h5 is a folder" "a folder, not an HDF5 file|segment_report.json" \
    "$G" segment ethx --data "$C/14/h5" --outdir "$C/14/prep_c" --size 32 -j 1
record
H killed_prep "$WORK/prep" "$C/14/killed"
run_case 14d 2 "pack a PREP_DIR an interrupted segment left" "image(s) without a mask|did not finish: run the same \`gcgan segment\` command again" \
    "$G" pack --data "$C/14/killed" --outdir "$C/14/db_d" --size 32 -j 1
record 'none_like "$C/14/db_d"'
H unsafe "$C/14/unsafe.pth"
run_case 14e 2 "inception --inception-weights UNSAFE-PICKLE" "unsafe.pth|never unpickles code|pt_inception-2015-12-05-6726825d.pth|https://" \
    "$G" inception --data "$WORK/db" --out "$C/14/s.npz" --inception-weights "$C/14/unsafe.pth" "${CPU[@]}"
record 'no_word 14e weights_only' 'absent "$C/14/s.npz"'
: >"$C/14/empty.pth"
run_case 14f 2 "inception --inception-weights ZERO-BYTE" "empty.pth|not a readable torch weights file" \
    "$G" inception --data "$WORK/db" --out "$C/14/s.npz" --inception-weights "$C/14/empty.pth" "${CPU[@]}"
record 'no_word 14f weights_only' 'absent "$C/14/s.npz"'

# --- S. Ctrl-C and SIGTERM exit 130 -------------------------------------------------------------------
mkdir -p "$C/S"
# SIGTERM to train: it saves a checkpoint and exits 130
timeout "$T" "$G" train --data "$WORK/db" --outdir "$C/S/run" "${TINY[@]}" --iters 100000 --log-every 1 \
    >"$LOG/Sa.out" 2>"$LOG/Sa.err" </dev/null &
P=$!; BG+=("$P")
wait_for "$C/S/run/metrics.jsonl" 60
kill -TERM "$(child_of "$P")"
wait "$P"; RC=$?
CID=Sa EXP=130 DESC="SIGTERM to a running train" WORDS=""
record 'ls "$C/S/run/checkpoints/"*.pt >/dev/null'
# Ctrl-C (SIGINT) to segment: a background job ignores SIGINT unless it is reset to the default
timeout "$T" env --default-signal=INT "$G" segment synthetic --n 3000 --size 32 -j 1 --outdir "$C/S/seg" \
    >"$LOG/Sb.out" 2>"$LOG/Sb.err" </dev/null &
P=$!; BG+=("$P")
wait_for "$C/S/seg/manifest.jsonl" 60
kill -INT "$(child_of "$P")"
wait "$P"; RC=$?
CID=Sb EXP=130 DESC="Ctrl-C (SIGINT) to a running segment" WORDS=""
record 'H prep_whole "$C/S/seg" "" rows-only' 'grep -q "\"interrupted\": true" "$C/S/seg/segment_report.json"'
run_case Sc 0 "the same segment again completes the interrupted one" "" \
    "$G" segment synthetic --n 3000 --size 32 -j 1 --outdir "$C/S/seg"
record 'H prep_whole "$C/S/seg" 3000'
# Ctrl-C to pack: keeps what was committed in OUT.partial; the same command continues
timeout "$T" env --default-signal=INT "$G" pack --data "$WORK/big" --outdir "$C/S/db" --size 256 -j 1 \
    >"$LOG/Sd.out" 2>"$LOG/Sd.err" </dev/null &
P=$!; BG+=("$P")
wait_for "$C/S/db.partial/data.mdb" 60
sleep 0.3
kill -INT "$(child_of "$P")"
wait "$P"; RC=$?
CID=Sd EXP=130 DESC="Ctrl-C (SIGINT) to a running pack" WORDS=""
record 'absent "$C/S/db"'
run_case Se 0 "the same pack again continues from what was committed" "" \
    "$G" pack --data "$WORK/big" --outdir "$C/S/db" --size 256 -j 1
record 'H db_count "$C/S/db" 3000' 'grep -q interrupted "$LOG/Se.out"' 'absent "$C/S/db.partial"'

# --- the table (also in $WORK/table.txt) ------------------------------------------------------------
PASSED=0
for v in "${VERDICTS[@]}"; do [ "$v" = PASS ] && PASSED=$((PASSED + 1)); done
{
    echo
    printf '%-4s %-5s %-4s %-4s %-6s %-62s %s\n' ID EXIT WANT ERRL RESULT DESCRIPTION "FIRST STDERR LINE"
    for i in "${!IDS[@]}"; do
        printf '%-4s %-5s %-4s %-4s %-6s %-62s %s\n' "${IDS[$i]}" "${RCS[$i]}" "${EXPS[$i]}" "${NLS[$i]}" \
            "${VERDICTS[$i]}" "${DESCS[$i]:0:62}" "${FIRSTS[$i]}"
    done
    FAILED=0
    for i in "${!IDS[@]}"; do
        if [ "${VERDICTS[$i]}" != PASS ]; then
            [ "$FAILED" -eq 0 ] && echo && echo "failures (stderr of each in $LOG/ID.err):"
            FAILED=$((FAILED + 1))
            echo "  ${IDS[$i]}: ${NOTES[$i]}"
        fi
    done
    echo
    echo "wall time $(( $(date +%s) - START )) s"
    echo "$PASSED of ${#IDS[@]} cases pass"
} | tee "$WORK/table.txt"
[ "$PASSED" -eq "${#IDS[@]}" ]

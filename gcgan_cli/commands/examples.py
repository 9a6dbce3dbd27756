"""The `Examples` block under each command's --help: real command lines in the flag scheme, kept
in one table so a renamed option is changed in one place."""

from rich.markup import escape

EXAMPLES = {
    "segment ethx": [
        "gcgan segment ethx --data xgaze_224/train --outdir prep_eth",
        "gcgan segment ethx --data xgaze_224/train --outdir prep_eth --cameras all --subjects 0000,0003",
    ],
    "segment celeba": ["gcgan segment celeba --data CelebAMask-HQ --outdir prep_celeba --use-annotations"],
    "segment synthetic": [
        "gcgan segment synthetic --n 2000 --outdir runs/demo/prep",
        "gcgan segment synthetic --n 2000 --style wild --seed 1 --outdir prep_wild",
    ],
    "pack": [
        "gcgan pack --data runs/demo/prep --outdir runs/demo/db",
        "gcgan pack --data results --outdir generated_db --size 64",
    ],
    "unpack": ["gcgan unpack --data runs/demo/db --outdir db_as_folders"],
    "inception": ["gcgan inception --data runs/demo/db --out runs/demo/fid_stats.npz"],
    "fid": [
        "gcgan fid --network runs/demo/stage1/checkpoints/0000200.pt --ref runs/demo/fid_stats.npz -n 2000 --json",
        "gcgan fid --data results --ref runs/demo/db",
    ],
    "train": [
        "gcgan train --data runs/demo/db --outdir runs/demo/stage1 --preset small --batch 8 --mirror",
        "gcgan train --outdir runs/demo/stage1 --resume",
        "gcgan train --stage 2 --network runs/demo/stage1/checkpoints/0000200.pt --data celeba_db --outdir "
        "runs/demo/stage2",
    ],
    "sample": [
        "gcgan sample --network runs/demo/stage1/checkpoints/0000200.pt --outdir results --n 64",
        "gcgan sample --network model/ --outdir grid --n 64 --gaze-grid 8",
    ],
    "interpolate": [
        "gcgan interpolate --network model/ --latent results/000000_latent.npy --outdir anim "
        "--component nose --with-mask"
    ],
    "export": ["gcgan export --network runs/demo/stage1/checkpoints/0000200.pt --outdir model/"],
    "gaze fit": [
        "gcgan gaze fit --data runs/demo/db --out est.pt",
        "gcgan gaze fit --data eth_db --arch resnet18 --init resnet18.pth --out est_imagenet.pt",
    ],
    "gaze eval": ["gcgan gaze eval --model est.pt --data test_db --json --out eval.png"],
    "gaze predict": ["gcgan gaze predict --model est.pt img1.png img2.png --out gaze.csv"],
    "gaze consistency": ["gcgan gaze consistency --network model/ --model judge.pt --n 1000 --json"],
    "transfer synth": [
        "gcgan transfer synth --outdir s_train --style s --n 3000",
        "gcgan transfer synth --outdir r_train.h5 --style r --format mpii --n 2400 --persons 12",
    ],
    "transfer landmarks-fit": ["gcgan transfer landmarks-fit --data s_train --val s_val --out l_s.pt"],
    "transfer fit": ["gcgan transfer fit --s s_train --r r_train.h5 --outdir runs/fp --preset tiny --steps 2000"],
    "transfer run": ["gcgan transfer run --network runs/fp --data s_test --direction s2r --outdir s_test_in_r"],
    "transfer eval": [
        "gcgan transfer eval --network runs/fp --s-test s_test --r-test r_test.h5 --s-train s_train "
        "--r-train r_train.h5 --gaze-r e_r.pt"
    ],
    "quickstart": [
        "gcgan quickstart --outdir runs/quickstart",
        "gcgan quickstart --outdir runs/quickstart_gpu --minutes 12 --device cuda",
    ],
    "doctor": ["gcgan doctor", "gcgan doctor --device cuda"],
}


def epilog(command: str) -> str:
    """The help's closing block for `command` (its name as typed, e.g. "gaze fit")."""
    return "[bold]Examples[/bold]\n\n" + "\n\n".join(f"  {escape(line)}" for line in EXAMPLES[command])

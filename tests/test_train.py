"""`gcgan train` on `gcgan segment synthetic` + `gcgan pack` data with the tiny model: the loss
terms against hand-derived values, stage 1 and stage 2 end to end, resume equivalence, the
stage-2 freeze set, DDP on 2 gloo processes, divergence, interruption and option resolution."""

import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch

from gcgan_cli import cli
from gcgan_cli.checkpoint import load_checkpoint
from gcgan_cli.core.dataset import GazeMaskDataset
from gcgan_cli.core.metrics.fid import Stats
from gcgan_cli.core.model import Discriminator, Generator, ModelConfig, preset
from gcgan_cli.core.training import losses
from gcgan_cli.core.training.config import TrainConfig, resolve
from gcgan_cli.core.training.run_dir import read_metrics
from gcgan_cli.core.training.trainer import Hooks, Networks, Trainer, build_optimisers, stage2_frozen

TINY = ["--preset", "tiny", "--workers", "0", "--batch", "4"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    assert (
        cli.run(["segment", "synthetic", "--n", "40", "--size", "64", "--outdir", str(root / "prep"), "-j", "1"]) == 0
    )
    assert cli.run(["pack", "--data", str(root / "prep"), "--outdir", str(root / "db"), "--size", "32", "-j", "1"]) == 0
    assert (
        cli.run(
            [
                "pack",
                "--data",
                str(root / "prep"),
                "--outdir",
                str(root / "dbu"),
                "--size",
                "32",
                "-j",
                "1",
                "--unlabelled",
            ]
        )
        == 0
    )
    return root


@pytest.fixture(scope="module")
def stage1(data):
    run = data / "stage1"
    code = cli.run(
        [
            "train",
            "--data",
            data / "db",
            "--outdir",
            run,
            *TINY,
            "--iters",
            "24",
            "--log-every",
            "4",
            "--viz-every",
            "12",
            "--save-every",
            "12",
        ]
    )
    assert code == 0
    return run


def train(*args):
    return cli.run(["train", *[str(a) for a in args]])


# --- loss terms ---


def test_logistic_losses_match_softplus_by_hand():
    real, fake = torch.tensor([[2.0], [-1.0]]), torch.tensor([[0.5], [3.0]])
    softplus = lambda x: np.log1p(np.exp(x))
    expected = np.mean([softplus(0.5), softplus(3.0)]) + np.mean([softplus(-2.0), softplus(1.0)])
    assert losses.d_logistic(real, fake).item() == pytest.approx(expected, rel=1e-6)
    assert losses.g_nonsaturating(fake).item() == pytest.approx(np.mean([softplus(-0.5), softplus(-3.0)]), rel=1e-6)


def test_r1_of_a_linear_critic_is_its_squared_weight_norm():
    w_img, w_seg = torch.randn(3, 4, 4, requires_grad=True), torch.randn(2, 4, 4, requires_grad=True)
    image, seg = torch.randn(5, 3, 4, 4, requires_grad=True), torch.randn(5, 2, 4, 4, requires_grad=True)
    logits = (image * w_img).flatten(1).sum(1, keepdim=True) + (seg * w_seg).flatten(1).sum(1, keepdim=True)
    p_img, p_seg = losses.r1_penalties(logits, image, seg)
    assert p_img.item() == pytest.approx(w_img.pow(2).sum().item(), rel=1e-5)
    assert p_seg.item() == pytest.approx(w_seg.pow(2).sum().item(), rel=1e-5)
    assert p_img.requires_grad  # differentiable for the D update


def test_path_length_of_a_linear_generator():
    """image = A latent: J^T y has the closed form A^T y, so the length is computable by hand."""
    torch.manual_seed(0)
    rows, dim, hw = 3, 5, 4
    matrix = torch.randn(3 * hw * hw, rows * dim)
    latent = torch.randn(2, rows, dim, requires_grad=True)
    image = (latent.flatten(1) @ matrix.T).view(2, 3, hw, hw)
    torch.manual_seed(1)
    lengths = losses.path_lengths(image, latent)
    torch.manual_seed(1)
    y = torch.randn_like(image) / hw
    expected = (y.flatten(1) @ matrix).view(2, rows, dim).pow(2).sum(2).mean(1).sqrt()
    assert torch.allclose(lengths, expected, rtol=1e-5)
    penalty, new_mean = losses.path_penalty(lengths, torch.tensor(0.0))
    assert new_mean.item() == pytest.approx(0.01 * lengths.mean().item(), rel=1e-6)
    assert penalty.item() == pytest.approx((lengths - new_mean).pow(2).mean().item(), rel=1e-6)


def test_mask_consistency_pools_the_fine_logits():
    coarse, fine = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 16, 16)
    pooled = fine.numpy().reshape(2, 3, 4, 4, 4, 4).mean(axis=(3, 5))
    assert losses.mask_consistency(coarse, fine).item() == pytest.approx(
        ((coarse.numpy() - pooled) ** 2).mean(), rel=1e-5
    )


def test_broken_masks_count_class_pixels_above_the_fraction():
    seg = -torch.ones(3, 6, 10, 10)
    seg[0, 5, :2] = 1  # 20 % iris
    seg[1, 5, :1] = 1  # 10 %
    assert losses.broken_masks(seg, 5, 0.15).tolist() == [True, False, False]


def test_the_fused_adam_of_training_steps_as_the_per_parameter_loop():
    """build_optimisers' fused update against torch's reference loop (foreach off) on the tiny nets."""
    torch.manual_seed(0)
    tiny = preset("tiny")
    g, d = Generator(tiny), Discriminator(tiny, gaze=True)
    nets = Networks(g, d, g, None)
    g_optim, d_optim = build_optimisers(TrainConfig(), nets)
    assert g_optim.defaults["fused"] and d_optim.defaults["fused"]
    for optim in (g_optim, d_optim):
        params = optim.param_groups[0]["params"]
        twins = [p.detach().clone().requires_grad_(True) for p in params]
        loop = torch.optim.Adam(
            twins, **{k: optim.defaults[k] for k in ("lr", "betas", "eps")}, foreach=False, fused=False
        )
        for step in range(3):
            for p, q in zip(params, twins):
                p.grad = torch.randn_like(p) * (step + 1)
                q.grad = p.grad.clone()
            optim.step()
            loop.step()
        for p, q in zip(params, twins):
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-6)


# --- stage 1 ---


@pytest.mark.slow
def test_stage1_writes_checkpoints_samples_and_metrics(stage1):
    rows = read_metrics(stage1 / "metrics.jsonl")
    assert [r["step"] for r in rows] == [4, 8, 12, 16, 20, 24]
    for row in rows:
        for key in ("d", "g", "mask", "path", "path_length", "real_score", "fake_score", "img_per_s"):
            assert np.isfinite(row[key]), (key, row)
    assert "r1_img" in rows[0] and "r1_seg" in rows[0]  # R1 runs at iteration 0 (every 16)
    assert sorted(p.name for p in (stage1 / "checkpoints").iterdir()) == ["0000012.pt", "0000024.pt"]
    for step in (12, 24):
        grid = cv2.imread(str(stage1 / "samples" / f"{step:07d}.png"))
        assert grid is not None and grid.shape[0] > 96 and grid.shape[1] > 2 * 96
    config = json.loads((stage1 / "config.json").read_text())
    assert config["train"]["stage"] == 1 and config["model"]["size"] == 32 and config["total_batch"] == 4
    ckpt = load_checkpoint(stage1 / "checkpoints" / "0000024.pt")
    assert ckpt["step"] == 24 and ckpt["stage"] == 1 and ckpt["gaze_labels"].shape == (40, 2)
    assert ckpt["data"] == {"position": 96, "seed": 0, "world_size": 1, "batch": 4}
    assert ckpt["mean_path_length"].item() > 0
    differs = [not torch.equal(ckpt["g"][k], ckpt["g_ema"][k]) for k in ckpt["g"] if ckpt["g"][k].is_floating_point()]
    assert any(differs)  # G_ema trails G
    first = load_checkpoint(stage1 / "checkpoints" / "0000012.pt")
    assert not torch.equal(
        first["g"]["render_net.to_rgbs.0.conv.weight"], ckpt["g"]["render_net.to_rgbs.0.conv.weight"]
    )


@pytest.mark.slow
def test_resume_repeats_an_unbroken_run_step_for_step(data, tmp_path):
    common = [
        "--data",
        data / "db",
        *TINY,
        "--log-every",
        "1",
        "--viz-every",
        "0",
        "--save-every",
        "0",
        "--deterministic",
        "--d-reg-every",
        "3",
        "--g-reg-every",
        "2",
        "--mixing",
        "0.5",
    ]
    assert train(*common, "--outdir", tmp_path / "straight", "--iters", "8") == 0
    assert train(*common, "--outdir", tmp_path / "split", "--iters", "4") == 0
    assert train("--outdir", tmp_path / "split", "--resume", "--iters", "8") == 0
    timing = {"sec_per_step", "img_per_s"}
    straight, split = (read_metrics(tmp_path / name / "metrics.jsonl") for name in ("straight", "split"))
    assert [r["step"] for r in split] == list(range(1, 9))
    assert [{k: v for k, v in r.items() if k not in timing} for r in straight] == [
        {k: v for k, v in r.items() if k not in timing} for r in split
    ]
    a, b = (load_checkpoint(tmp_path / name / "checkpoints" / "0000008.pt") for name in ("straight", "split"))
    assert all(torch.equal(a["g_ema"][k], b["g_ema"][k]) for k in a["g_ema"])


@pytest.mark.slow
def test_d_gaze_mismatch_adds_its_term(data, tmp_path):
    assert (
        train(
            "--data",
            data / "db",
            "--outdir",
            tmp_path / "run",
            *TINY,
            "--iters",
            "2",
            "--log-every",
            "1",
            "--viz-every",
            "0",
            "--d-gaze-mismatch",
            "0.5",
        )
        == 0
    )
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert all("d_mismatch" in r and r["d_mismatch"] > 0 for r in rows)


@pytest.mark.slow
def test_fid_runs_with_stats_and_weights_and_is_skipped_with_one_warning_without(
    data, tmp_path, weights_file, run_cli, monkeypatch
):
    stats = tmp_path / "stats.npz"
    Stats(np.zeros(2048), np.eye(2048), 10, {}).save(stats)
    common = [
        "train",
        "--data",
        data / "db",
        *TINY,
        "--iters",
        "2",
        "--viz-every",
        "0",
        "--inception",
        stats,
        "--fid-every",
        "2",
        "--fid-n",
        "4",
    ]
    code, out, _ = run_cli(*common, "--outdir", tmp_path / "with", "--inception-weights", weights_file)
    assert code == 0
    fids = [r for r in read_metrics(tmp_path / "with" / "metrics.jsonl") if "fid4" in r]  # the name carries --fid-n
    assert len(fids) == 1 and fids[0]["step"] == 2 and np.isfinite(fids[0]["fid4"]) and fids[0]["fid4"] > 0
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))
    monkeypatch.delenv("GCGAN_INCEPTION_WEIGHTS", raising=False)
    code, out, _ = run_cli(*common, "--outdir", tmp_path / "without")
    assert code == 0 and out.count("FID is off") == 1
    assert (tmp_path / "without" / "checkpoints" / "0000002.pt").is_file()


# --- stage 2 ---


@pytest.mark.slow
def test_stage2_trains_the_spec_set_and_keeps_the_frozen_layers_bit_identical(data, stage1, tmp_path):
    source = stage1 / "checkpoints" / "0000024.pt"
    run = tmp_path / "stage2"
    assert (
        train(
            "--stage",
            "2",
            "--data",
            data / "dbu",
            "--network",
            source,
            "--outdir",
            run,
            "--workers",
            "0",
            "--iters",
            "8",
            "--log-every",
            "4",
            "--viz-every",
            "8",
        )
        == 0
    )
    before, after = load_checkpoint(source), load_checkpoint(run / "checkpoints" / "0000008.pt")
    model = ModelConfig.from_dict(after["config"]["model"])
    assert (
        after["stage"] == 2 and after["step"] == 8
    )  # stage 2 counts its own steps (the reference continued stage 1's)
    frozen = [k for k in before["g"] if stage2_frozen(k, model)]
    assert any(k.startswith("local_nets.") for k in frozen) and any(k.startswith("render_net.convs.1.") for k in frozen)
    assert not any(k.startswith("render_net.convs.2.") for k in frozen)  # tiny: convs 0-1 reach the 16 px fusion size
    for key in frozen:
        assert torch.equal(before["g"][key], after["g"][key]), key
    parameters = {name for name, _ in Generator(model).named_parameters()}
    trained = [k for k in before["g"] if k in parameters and k not in frozen]
    assert trained and all(not torch.equal(before["g"][k], after["g"][k]) for k in trained)
    assert all(torch.equal(before["g"][k], after["g_pretrained"][k]) for k in before["g"])
    assert "pos_embed.weights" in trained  # left trainable, as the reference does
    rows = read_metrics(run / "metrics.jsonl")
    assert all("pmask" in r and "swapped" in r and np.isfinite(r["d"]) for r in rows)
    assert "d.embed" not in " ".join(after["d"])  # a fresh unconditional D


def test_stage2_mask_pairing_swaps_only_broken_samples():
    iris, fraction = ModelConfig().class_names.index("iris"), TrainConfig.unbroken_fraction
    current, pretrained = torch.full((2, 6, 8, 8), -1.0), torch.full((2, 6, 8, 8), -1.0)
    pretrained[1, 5] = 1.0  # sample 1: the pretrained iris covers everything
    current[0, 5] = 1.0  # sample 0: the current iris does
    paired, swapped = losses.paired_masks(current, pretrained, iris, fraction, "pretrained")
    assert (
        swapped.tolist() == [False, True]
        and torch.equal(paired[1], current[1])
        and torch.equal(paired[0], pretrained[0])
    )
    paired, swapped = losses.paired_masks(current, pretrained, iris, fraction, "current")  # the reference's test
    assert swapped.tolist() == [True, False] and torch.equal(paired[0], current[0])


# --- distributed, divergence, interruption ---


@pytest.mark.slow
def test_ddp_on_two_gloo_processes_writes_one_checkpoint(data, tmp_path):
    run = tmp_path / "ddp"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gcgan_cli",
            "train",
            "--nproc",
            "2",
            "--data",
            str(data / "db"),
            "--outdir",
            str(run),
            *TINY,
            "--iters",
            "4",
            "--log-every",
            "2",
            "--viz-every",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["0000004.pt"]
    config = json.loads((run / "config.json").read_text())
    assert config["world_size"] == 2 and config["total_batch"] == 8
    ckpt = load_checkpoint(run / "checkpoints" / "0000004.pt")
    assert len(ckpt["rng"]) == 2 and ckpt["data"]["position"] == 32
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [2, 4]


@pytest.mark.slow
def test_a_nan_in_the_data_stops_the_run_and_keeps_the_last_good_checkpoint(data, tmp_path, run_cli, monkeypatch):
    original = GazeMaskDataset.__getitem__
    calls = {"n": 0}

    def poisoned(self, index):
        item = original(self, index)
        calls["n"] += 1
        if calls["n"] > 4 * 5:  # from the 6th batch on
            item["image"][:] = float("nan")
        return item

    monkeypatch.setattr(GazeMaskDataset, "__getitem__", poisoned)
    run = tmp_path / "nan"
    code, out, err = run_cli(
        "train",
        "--data",
        data / "db",
        "--outdir",
        run,
        *TINY,
        "--iters",
        "20",
        "--log-every",
        "2",
        "--save-every",
        "4",
        "--viz-every",
        "0",
    )
    assert code == 3
    assert "diverged" in err and "0000004.pt" in err and "Traceback" not in err
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["0000004.pt"]
    kept = load_checkpoint(run / "checkpoints" / "0000004.pt")
    assert all(torch.isfinite(v).all() for v in kept["g"].values())
    assert read_metrics(run / "metrics.jsonl")[-1]["event"] == "diverged"


@pytest.mark.slow
def test_sigint_saves_a_checkpoint_and_exits_130(data, tmp_path):
    run = tmp_path / "sigint"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gcgan_cli",
            "train",
            "--data",
            str(data / "db"),
            "--outdir",
            str(run),
            *TINY,
            "--iters",
            "100000",
            "--log-every",
            "1",
            "--viz-every",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "metrics.jsonl").is_file():
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-2000:]
    files = list((run / "checkpoints").iterdir())
    assert len(files) == 1 and "--resume" in out
    step = load_checkpoint(files[0])["step"]
    assert step >= 1 and files[0].name == f"{step:07d}.pt"


@pytest.mark.slow
def test_kill_9_never_leaves_a_broken_checkpoint_and_the_run_resumes(data, tmp_path):
    """Saving every step, a SIGKILL lands mid-save sooner or later: only whole files may remain."""
    run = tmp_path / "killed"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gcgan_cli",
            "train",
            "--data",
            str(data / "db"),
            "--outdir",
            str(run),
            *TINY,
            "--iters",
            "100000",
            "--save-every",
            "1",
            "--keep",
            "3",
            "--viz-every",
            "0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while (
        time.time() < deadline
        and len(list((run / "checkpoints").glob("*.pt")) if (run / "checkpoints").is_dir() else []) < 3
    ):
        time.sleep(0.05)
    time.sleep(0.37)
    process.kill()
    process.wait(timeout=60)
    files = sorted((run / "checkpoints").glob("*.pt"))
    assert 1 <= len(files) <= 3  # --keep 3
    steps = [load_checkpoint(f)["step"] for f in files]
    assert steps == [int(f.stem) for f in files]
    assert train("--outdir", run, "--resume", "--iters", steps[-1] + 2, "--save-every", "0") == 0
    assert load_checkpoint(run / "checkpoints" / f"{steps[-1] + 2:07d}.pt")["step"] == steps[-1] + 2
    assert not list((run / "checkpoints").glob(".*.tmp"))


@pytest.mark.slow
def test_trainer_stops_when_asked_and_resumes(data, tmp_path):
    config = resolve(
        {
            "dataset": str(data / "db"),
            "checkpoint_dir": str(tmp_path / "run"),
            "preset": "tiny",
            "workers": 0,
            "iters": 10,
            "log_every": 1,
            "viz_every": 0,
        }
    )
    steps = []
    hooks = Hooks(on_step=steps.append, should_stop=lambda: len(steps) >= 3)
    trainer = Trainer(config, hooks)
    result = trainer.train()
    trainer.close()
    assert result.interrupted and result.step == 3 and result.checkpoint.name == "0000003.pt"
    trainer = Trainer(config, Hooks(), resume=True)
    result = trainer.train()
    trainer.close()
    assert not result.interrupted and result.step == 10
    assert [r["step"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")] == list(range(1, 11))


# --- options ---


def test_options_resolve_defaults_toml_then_flags(data, tmp_path, run_cli):
    toml = tmp_path / "run.toml"
    toml.write_text(
        f'dataset = "{data / "db"}"\ncheckpoint-dir = "{tmp_path / "run"}"\npreset = "tiny"\nbatch = 8\nlr = 0.001\n'
    )
    code, out, _ = run_cli("train", "--config", toml, "--batch", "2", "--dry-run")
    assert code == 0
    resolved = json.loads(out)
    assert (
        resolved["batch"] == 2
        and resolved["lr"] == 0.001
        and resolved["preset"] == "tiny"
        and resolved["r1_seg"] is None
    )
    toml.write_text("bach = 8\n")
    code, _, err = run_cli("train", "--config", toml)
    assert code == 2 and "unknown option(s) bach" in err


@pytest.mark.slow
def test_user_mistakes_are_one_line_errors(data, stage1, tmp_path, run_cli):
    cases = [
        (["--data", data / "dbu", "--outdir", tmp_path / "a", *TINY], "no gaze labels"),
        (["--data", data / "db", "--outdir", stage1, *TINY], "pass --resume"),
        (
            ["--data", data / "db", "--outdir", tmp_path / "b", *TINY, "--precision", "bf16", "--device", "cpu"],
            "CUDA GPU",
        ),
        (["--data", data / "db", "--outdir", tmp_path / "c", "--stage", "2"], "needs --network"),
        (["--outdir", stage1, "--resume", "--batch", "8"], "--batch 4 -> 8"),
        (["--outdir", tmp_path / "none", "--resume"], "no config.json"),
        (["--data", tmp_path, "--outdir", tmp_path / "d", *TINY], str(tmp_path)),
        (
            ["--stage", "2", "--data", data / "dbu", "--outdir", tmp_path / "e", "--network", data / "db" / "data.mdb"],
            "data.mdb",
        ),
    ]
    for args, expected in cases:
        code, _, err = run_cli("train", *args)
        assert code == 2 and expected in err and "Traceback" not in err, (args, err)
        assert len(err.strip().splitlines()) <= 3, err


def test_the_stage2_freeze_set_at_ref256_leaves_the_reference_count_trainable():
    config = ModelConfig()
    g = Generator(config)
    trainable = sum(p.numel() for name, p in g.named_parameters() if not stage2_frozen(name, config))
    assert trainable == 5_512_872  # the reference's: mapping, pos_embed, render convs 4-7, every to_rgb/to_seg
    frozen_render = {
        ".".join(n.split(".")[:3])
        for n, _ in g.named_parameters()
        if stage2_frozen(n, config) and n.startswith("render")
    }
    assert frozen_render == {f"render_net.convs.{i}" for i in range(4)}


@pytest.mark.slow
def test_dry_run_shows_the_db_and_the_model_the_run_builds_and_writes_nothing(data, stage1, tmp_path, run_cli):
    run = tmp_path / "run"
    code, out, err = run_cli("train", "--data", data / "db", "--outdir", run, *TINY, "--dry-run")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["batch"] == 4 and shown["preset"] == "tiny"
    db = shown["db"]
    assert (db["path"], db["count"], db["size"], db["labelled"]) == (str(data / "db"), 40, 32, True)
    assert (
        db["class_names"][: len(shown["model"]["class_names"])] == shown["model"]["class_names"]
    )  # the tiny seg_dim's
    assert shown["model"] == json.loads((stage1 / "config.json").read_text())["model"]  # what training built
    model = ModelConfig.from_checkpoint(load_checkpoint(stage1 / "checkpoints" / "0000024.pt"), stage1)
    assert shown["g_params"] == sum(p.numel() for p in Generator(model).parameters()) > 0
    assert shown["d_params"] > 0
    assert not run.exists()
    for args, words in (
        (["--data", data / "db", "--preset", "tinyy"], "tinyy"),
        (["--data", tmp_path / "none"], f"--data {tmp_path / 'none'} does not exist"),
    ):
        code, _, err = run_cli("train", *args, "--outdir", run, "--dry-run")
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not run.exists()


def test_scaled_gaze_error_weighs_each_axis_by_its_spread():
    estimate, target = torch.tensor([[0.2, 0.0], [0.0, 0.4]]), torch.zeros(2, 2)
    # (0.2 / 0.5)^2 and (0.4 / 2)^2 over the four entries
    expected = ((0.2 / 0.5) ** 2 + (0.4 / 2.0) ** 2) / 4
    assert losses.scaled_gaze_error(estimate, target, torch.tensor([0.5, 2.0])).item() == pytest.approx(expected)


def test_the_code_in_docs_adding_a_loss_is_the_code_that_runs():
    """Each code block of docs/adding-a-loss.md is copied from the training modules: the worked example
    stays true when they change."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    doc = (root / "docs" / "adding-a-loss.md").read_text(encoding="utf-8")
    sources = "\n".join(
        (root / "gcgan_cli" / "core" / "training" / name).read_text(encoding="utf-8")
        for name in ("losses.py", "config.py", "phases.py")
    )
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    assert len(blocks) == 4
    for block in blocks:
        for piece in block.strip("\n").split("\n\n"):
            assert piece in sources, piece


def test_a_phase_sums_its_weighted_terms_times_its_interval_and_skips_zero_weights():
    from types import SimpleNamespace

    from gcgan_cli.core.training.phases import Passes, Phase, Term, phase_loss

    calls = []

    def passes(trainer, batch):
        calls.append("passes")
        return Passes(x=torch.tensor(2.0), anchor=torch.tensor(0.0))

    never = Term("never", lambda t, p: calls.append("never") or p.x, lambda t: 0.0)
    thrice = Term("thrice", lambda t, p: 3 * p.x, lambda t: 0.5)
    once = Term("once", lambda t, p: p.x, lambda t: 2.0)
    trainer = SimpleNamespace(config=SimpleNamespace(every=4))
    loss, values, _ = phase_loss(trainer, Phase("P", "g", passes, (never, thrice, once), interval="every"), None)
    assert loss.item() == (0.5 * 6 + 2 * 2) * 4 and list(values) == ["thrice", "once"] and "never" not in calls
    assert phase_loss(trainer, Phase("Q", "d", passes, (never,)), None) is None and calls == ["passes"]

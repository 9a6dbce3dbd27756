"""`gcgan transfer`: the loss terms (zero for an identity generator; frozen networks unchanged while
G learns through them), the learning-rate schedule, the `.ini` import and its traps, exact resume
(pool included), translation of every image once (a partial last batch too), a tiny fit and the
evaluation on the synthetic two-domain data, and clear errors."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gcgan_cli import cli
from gcgan_cli.checkpoint import load_checkpoint, save_checkpoint
from gcgan_cli.core.gaze.estimator import build, network_config, save_estimator
from gcgan_cli.core.gaze.sources import EyeOptions, open_source
from gcgan_cli.core.transfer import losses
from gcgan_cli.core.transfer.config import TransferConfig
from gcgan_cli.core.transfer.evaluate import feature_distance, realism_accuracy, train_realism
from gcgan_cli.core.transfer.ini import import_ini
from gcgan_cli.core.transfer.landmarks import ElgConfig, build_elg
from gcgan_cli.core.transfer.trainer import Hooks, TransferTrainer, linear_decay
from gcgan_cli.errors import TrainingDiverged

EYE = (1, 36, 60)


@pytest.fixture(scope="module")
def domains(tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer")
    assert (
        cli.run(
            [
                "transfer",
                "synth",
                "--outdir",
                str(root / "s"),
                "--style",
                "s",
                "--format",
                "unity",
                "--n",
                "40",
                "--seed",
                "0",
            ]
        )
        == 0
    )
    assert (
        cli.run(
            [
                "transfer",
                "synth",
                "--outdir",
                str(root / "r.h5"),
                "--style",
                "r",
                "--format",
                "mpii",
                "--n",
                "40",
                "--persons",
                "4",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    assert (
        cli.run(["transfer", "synth", "--outdir", str(root / "s_test"), "--style", "s", "--n", "24", "--seed", "5"])
        == 0
    )
    assert (
        cli.run(
            [
                "transfer",
                "synth",
                "--outdir",
                str(root / "r_test.h5"),
                "--style",
                "r",
                "--format",
                "mpii",
                "--n",
                "24",
                "--persons",
                "2",
                "--first-person",
                "4",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    return root


def _random_estimator(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = build("small", 0, shape=EYE)
    save_estimator(path, model, {**network_config("small", EYE), "mean_gaze": [0.0, 0.0]}, {})
    return path


def _random_landmarks(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    config = ElgConfig(maps=8, modules=1)
    save_checkpoint(
        path,
        {
            "kind": "gcgan-landmark-model",
            "config": {**config.__dict__, "input": list(EYE)},
            "model": build_elg(config).state_dict(),
            "report": {},
        },
    )
    return path


@pytest.fixture(scope="module")
def feature_nets(domains):
    return _random_estimator(domains / "gaze.pt", 0), _random_landmarks(domains / "lm.pt", 0)


def _config(domains, out, **overrides) -> TransferConfig:
    values = dict(
        s=str(domains / "s"),
        r=str(domains / "r.h5"),
        out=str(out),
        preset="tiny",
        batch=4,
        steps=6,
        log_every=2,
        sample_every=0,
        save_every=0,
        device="cpu",
        pool_size=6,
    )
    return TransferConfig(**{**values, **overrides}).validate()


# --- loss terms ---


def test_feature_losses_vanish_for_the_identity(feature_nets):
    gaze, landmarks = (
        losses.frozen_gaze(feature_nets[0], torch.device("cpu")),
        losses.frozen_landmarks(feature_nets[1], torch.device("cpu")),
    )
    x = torch.rand(3, *EYE) * 2 - 1
    assert float(losses.gaze_consistency(gaze, x, x)) == 0.0
    assert float(losses.landmark_consistency(landmarks, x, x, losses.landmark_scale("wh", 36, 60))) == 0.0
    assert float(losses.l1(x, x)) == 0.0
    assert float(losses.gaze_consistency(gaze, x, x.flip(-1))) > 0
    target = torch.tensor([[0.1, -0.2]]).expand(3, 2)  # --gaze-target label: against the true gaze instead
    assert float(losses.gaze_consistency(gaze, x, x, target)) == pytest.approx(
        float((gaze(x) - target).square().mean())
    )


@pytest.mark.slow
def test_frozen_networks_pass_gradients_but_do_not_change(domains, feature_nets, tmp_path):
    trainer = TransferTrainer(
        _config(
            domains,
            tmp_path / "run",
            lambda_gaze=30.0,
            lambda_landmarks=15.0,
            gaze_model=str(feature_nets[0]),
            landmark_model=str(feature_nets[1]),
        ),
        Hooks(),
        resume=False,
    )
    before = {
        name: {k: v.clone() for k, v in net.network.state_dict().items()}
        for name, net in (("g", trainer.gaze), ("l", trainer.landmarks))
    }
    g_before = [p.clone() for p in trainer.g.parameters()]
    terms = trainer.train_step()
    assert terms["gaze"] > 0 and terms["landmarks"] > 0
    for name, net in (("g", trainer.gaze), ("l", trainer.landmarks)):
        assert all(p.grad is None and not p.requires_grad for p in net.network.parameters())
        for key, value in net.network.state_dict().items():
            assert torch.equal(value, before[name][key]), key  # BN statistics too
    assert any(not torch.equal(a, b) for a, b in zip(g_before, trainer.g.parameters()))


def test_landmark_normalisers():
    assert losses.landmark_scale("wh", 36, 60).tolist() == [60, 36]
    assert losses.landmark_scale("legacy-hw", 36, 60).tolist() == [36, 60]
    assert losses.landmark_scale("legacy-max", 36, 60).tolist() == [60, 60]


@pytest.mark.slow
def test_learning_rate_is_constant_then_falls_to_zero(domains, tmp_path):
    factor = linear_decay(100)
    assert (factor(0), factor(49), factor(50), factor(75), factor(100)) == (1.0, 1.0, 1.0, 0.5, 0.0)
    trainer = TransferTrainer(_config(domains, tmp_path / "run", steps=4, lr=1e-3), Hooks(), resume=False)
    seen = []
    for _ in range(4):
        seen.append(trainer.opt_g.param_groups[0]["lr"])
        trainer.train_step()
    assert seen == pytest.approx([1e-3, 1e-3, 1e-3, 0.5e-3])
    assert trainer.opt_g.param_groups[0]["lr"] == pytest.approx(0.0) == trainer.opt_d.param_groups[0]["lr"]


# --- the .ini import ---


def test_ini_import_maps_keys_and_reports_traps(tmp_path):
    ini = tmp_path / "fpgan.ini"
    ini.write_text(
        "[DEFAULT]\nbatch_size = 8\nuse_lsgan = true\nlambda1 = 10\nlambda2 = 10\nlambda_identity = 2\n"
        "lambda_gaze = 0\nlambda_landmarks = 0\nlearning_rate = 2e-4\nn_steps = 150000\nnormalise_gaze = False\n"
        "S = ../data/UnityEyes/\nR = ../data/MPII.h5\nege_path = ../models/gazenet/\nimage_height = 36\nimage_width "
        "= 60\n"
        "[EGE]\nlambda_gaze = 30\nnormalise_gaze = True\n"
        "[LM_20190116-2305_lm_l15]\ngan_name = lm_l15\n"
        "[BAD]\nimage_height = 72\n[BN]\nnorm = batch\n"
    )
    options, warnings = import_ini(ini, "EGE")
    assert (
        options["lambda_gaze"] == 30
        and options["batch"] == 8
        and options["lambda_self"] == 2
        and options["steps"] == 150000
    )
    assert options["s"] == "../data/UnityEyes/" and options["lr"] == 2e-4
    assert any("lowercase booleans" in w for w in warnings)
    assert any("normalise_gaze" in w and "rad^-2" in w for w in warnings)
    assert any("ege_path" in w and "--gaze-model" in w for w in warnings)
    TransferConfig.from_dict({**options, "out": "x"}, "test")  # every imported key is an option
    _, lm_warnings = import_ini(ini, "LM_20190116-2305_lm_l15")
    assert any("translation-only" in w for w in lm_warnings)
    assert import_ini(ini, "BN")[0]["norm"] == "batch"
    with pytest.raises(Exception, match="36 x 60"):
        import_ini(ini, "BAD")
    with pytest.raises(Exception, match="no such section"):
        import_ini(ini, "NOPE")


# --- resume, translation, the CLI ---


def _weights(trainer) -> list[torch.Tensor]:
    return [p.detach().clone() for net in (trainer.g, trainer.f, trainer.d_r, trainer.d_s) for p in net.parameters()]


@pytest.mark.slow
@pytest.mark.parametrize("jitter", [False, True])
def test_resume_repeats_an_unbroken_run_exactly(domains, tmp_path, jitter):
    straight = TransferTrainer(_config(domains, tmp_path / "a", crop_jitter=jitter), Hooks(), resume=False)
    straight.train()
    hooks = Hooks()
    half = TransferTrainer(_config(domains, tmp_path / "b", crop_jitter=jitter), hooks, resume=False)
    hooks.should_stop = lambda: half.step >= 3  # as Ctrl-C would: the run saves and stops
    assert half.train().interrupted
    assert len(half.pools["r"]) == 6  # the pool filled, so its state matters
    resumed = TransferTrainer(_config(domains, tmp_path / "b", crop_jitter=jitter), Hooks(), resume=True)
    assert resumed.step == 3
    resumed.train()
    for a, b in zip(_weights(straight), _weights(resumed)):
        assert torch.equal(a, b)
    for name in ("r", "s"):
        assert all(torch.equal(a, b) for a, b in zip(straight.pools[name].images, resumed.pools[name].images))


@pytest.mark.slow
def test_fit_run_and_eval_through_the_cli(domains, feature_nets, tmp_path, run_cli):
    run = tmp_path / "run"
    code, out, err = run_cli(
        "transfer",
        "fit",
        "--s",
        domains / "s",
        "--r",
        domains / "r.h5",
        "--outdir",
        run,
        "--preset",
        "tiny",
        "--batch",
        "4",
        "--steps",
        "4",
        "--log-every",
        "2",
        "--sample-every",
        "2",
        "--device",
        "cpu",
        "--lambda-gaze",
        "30",
        "--gaze-model",
        feature_nets[0],
    )
    assert code == 0, err
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4] and all("gaze" in r and "d_r" in r for r in rows)
    assert (run / "samples" / "0000004.png").is_file()
    log = (run / "log.txt").read_text().splitlines()  # the start line, a status line per log, the summary
    assert log[0].startswith("gcgan transfer fit: S ") and "4/4 steps" in "\n".join(log)
    assert any(line.startswith("│ steps") and "4 of 4" in line for line in log)
    record = load_checkpoint(run / "checkpoints" / "0000004.pt")
    assert record["features"]["gaze"]["sha256"] and record["features"]["landmarks"] is None
    code, _, err = run_cli(
        "transfer", "fit", "--s", domains / "s", "--r", domains / "r.h5", "--outdir", run, "--preset", "tiny"
    )
    assert code == 2 and "--resume" in err

    # 40 images at batch 16: three batches, the last of 8
    outdir = tmp_path / "translated"
    code, out, err = run_cli(
        "transfer",
        "run",
        "--network",
        run,
        "--data",
        domains / "s",
        "--outdir",
        outdir,
        "--batch",
        "16",
        "--device",
        "cpu",
    )
    assert code == 0, err
    manifest = [json.loads(line) for line in (outdir / "manifest.jsonl").read_text().splitlines()]
    source = open_source(domains / "s", 0, EyeOptions())
    assert sorted(row["source_id"] for row in manifest) == sorted(source.ids)
    translated = open_source(outdir, 0, EyeOptions())
    assert translated.kind == "translated" and len(translated) == 40
    assert np.allclose(translated.gazes, source.gazes)
    again = tmp_path / "again"
    assert (
        run_cli(
            "transfer",
            "run",
            "--network",
            run,
            "--data",
            domains / "s",
            "--outdir",
            again,
            "--batch",
            "7",
            "--device",
            "cpu",
        )[0]
        == 0
    )
    for row in manifest[:5]:
        assert (outdir / row["file"]).read_bytes() == (again / row["file"]).read_bytes()  # any batch size, same output
    code, _, err = run_cli(
        "transfer", "run", "--network", run, "--data", domains / "s", "--outdir", outdir, "--device", "cpu"
    )
    assert code == 2 and "--overwrite" in err

    evaluator = _random_estimator(tmp_path / "e_r.pt", 5)
    code, out, err = run_cli(
        "gaze", "eval", "--model", evaluator, "--data", outdir, "--json"
    )  # a translated folder is a gaze source
    assert code == 0, err
    assert json.loads(out)["error_deg"]["count"] == 40
    held_out = (
        "--s-test",
        domains / "s_test",
        "--r-test",
        domains / "r_test.h5",
        "--s-train",
        domains / "s",
        "--r-train",
        domains / "r.h5",
    )
    code, out, err = run_cli(
        "transfer",
        "eval",
        "--network",
        run,
        *held_out,
        "--gaze-r",
        evaluator,
        "--landmarks-r",
        feature_nets[1],
        "--json",
        "--device",
        "cpu",
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["change"]["translated_vs_source"] > 0 and report["realism"]["frechet_e_r"]["n"] == 12
    assert report["gaze"]["translated"]["count"] == 24 and "loss_net_circular" in report and "landmarks" in report
    code, _, err = run_cli(
        "transfer", "eval", "--network", run, *held_out, "--gaze-r", feature_nets[0], "--device", "cpu"
    )
    assert code == 2 and "no loss saw" in err
    leaky = (
        "--s-test",
        domains / "s",
        "--r-test",
        domains / "r_test.h5",
        "--s-train",
        domains / "s_test",
        "--r-train",
        domains / "r.h5",
    )
    code, _, err = run_cli("transfer", "eval", "--network", run, *leaky, "--gaze-r", evaluator, "--device", "cpu")
    assert code == 2 and "--s-test" in err and "held-out" in err
    shared = (
        "--s-test",
        domains / "s_test",
        "--r-test",
        domains / "r_test.h5",
        "--s-train",
        domains / "s",
        "--r-train",
        domains / "r_test.h5",
    )
    code, _, err = run_cli("transfer", "eval", "--network", run, *shared, "--gaze-r", evaluator, "--device", "cpu")
    assert code == 2 and "--r-test" in err


@pytest.mark.slow
def test_a_nonfinite_loss_stops_the_run_without_saving(domains, tmp_path):
    trainer = TransferTrainer(_config(domains, tmp_path / "run", steps=4, log_every=2), Hooks(), resume=False)
    real_step = trainer.train_step
    trainer.train_step = lambda: (
        {**real_step(), "cycle": torch.tensor(float("nan"))} if trainer.step == 1 else real_step()
    )
    with pytest.raises(TrainingDiverged, match="cycle became non-finite by step 2"):
        trainer.train()
    assert trainer.run.checkpoint_files() == []


def test_realism_judge_and_frechet_distance_tell_domains_apart():
    torch.manual_seed(0)
    s, r = torch.randn(256, *EYE) * 0.1 - 0.5, torch.randn(256, *EYE) * 0.1 + 0.5
    judge = train_realism(s, r, torch.device("cpu"), epochs=1)
    assert realism_accuracy(judge, s[:64], r[64:128], torch.device("cpu")) > 95  # raw S is told apart
    assert abs(realism_accuracy(judge, r[:64], r[64:128], torch.device("cpu")) - 50) < 5  # R passes as R: chance
    a, b = np.random.default_rng(0).normal(size=(400, 4)), np.random.default_rng(1).normal(size=(400, 4))
    assert feature_distance(a, b) < 0.1 < feature_distance(a, b + 1.0)


def test_a_typed_config_file_is_checked(domains, tmp_path, run_cli):
    toml = tmp_path / "run.toml"
    toml.write_text('batch = "8"\n')
    code, _, err = run_cli(
        "transfer", "fit", "--s", domains / "s", "--r", domains / "r.h5", "--outdir", tmp_path / "x", "--config", toml
    )
    assert code == 2 and "batch = '8' must be an int" in err


@pytest.mark.slow
def test_a_resumed_run_keeps_its_learning_rate(domains, tmp_path, run_cli):
    base = (
        "transfer",
        "fit",
        "--s",
        domains / "s",
        "--r",
        domains / "r.h5",
        "--outdir",
        tmp_path / "run",
        "--preset",
        "tiny",
        "--batch",
        "4",
        "--device",
        "cpu",
        "--sample-every",
        "0",
    )
    assert run_cli(*base, "--steps", "2")[0] == 0
    code, _, err = run_cli(*base, "--steps", "4", "--lr", "1e-3", "--resume")
    assert code == 2 and "--lr" in err
    assert run_cli(*base, "--steps", "4", "--resume")[0] == 0
    assert (
        json.loads((tmp_path / "run" / "config.json").read_text())["transfer"]["steps"] == 4
    )  # the new length is kept


def test_bad_options_are_one_line_errors(domains, tmp_path, run_cli):
    base = (
        "transfer",
        "fit",
        "--s",
        domains / "s",
        "--r",
        domains / "r.h5",
        "--outdir",
        tmp_path / "x",
        "--preset",
        "tiny",
    )
    for extra, text in (
        (("--lambda-gaze", "5"), "--gaze-model"),
        (("--pool", "big"), "--pool"),
        (("--preset", "huge"), "--preset"),
        (("--batch", "0"), "--batch"),
    ):
        code, _, err = run_cli(*base, *extra)
        assert code == 2 and text in err and len(err.strip().splitlines()) == 1, err
    code, _, err = run_cli(
        "transfer",
        "fit",
        "--s",
        domains / "s",
        "--r",
        domains / "nope.h5",
        "--outdir",
        tmp_path / "y",
        "--preset",
        "tiny",
        "--steps",
        "1",
        "--device",
        "cpu",
    )
    assert code == 2 and "nope.h5" in err
    assert not (tmp_path / "y" / "checkpoints").exists()

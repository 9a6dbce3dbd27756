"""`gcgan transfer eval`: does translation keep the gaze, and does it translate at all?

An identity generator keeps the gaze perfectly, and the loss network judging its own output is
circular, so the primary numbers come from evaluators that no loss saw (trained on R, other seeds
and architectures than any loss network; a file whose SHA-256 matches a loss network is refused),
and every preservation number stands beside a realism number:

    realism      accuracy of an S-vs-R classifier (trained here on S_train vs R_train) telling
                 translated S_test from R_test: 100% = still synthetic, 50% = chance, i.e.
                 indistinguishable; raw S_test as the upper bound. And the Frechet distance in
                 E_R's penultimate features (no download needed) to a seeded half of R_test, with
                 every set cut to that half's size (the distance is biased by the sample count):
                 translated and raw S_test, and the other half of R_test (the floor). For R -> S the
                 judge's accuracy telling F(R_test) from R_test (100% = F's output reads as S)
    gaze         E_R's angular error on G(s) against s's true gaze, beside E_R on raw s (the domain
                 gap) and on R_test (the floor); gap closed = (raw - translated) / (raw - floor)
    loss net     the training gaze network's disagreement between s and G(s) (circular: reported, flagged)
    r2s          E_S' (trained on S) on F(r) against r's gaze, beside E_S' on raw r
    landmarks    L_R's landmarks on G(s) against s's true ones: mean px, NME (by the corner
                 distance), iris centre px; beside L_R on raw s
    change       mean |eq(G(s)) - eq(s)| in [-1, 1] units (0 = identity); cycle |F(G(s)) - s|
    twins        L1 between eq(G(s)) and eq(twin) (s re-rendered in R's style), beside eq(s) vs eq(twin)
    downstream   a fresh estimator trained on G(S_train) with S's labels, tested on R_test, beside
                 the same recipe trained on S_train and on R_train (optional: --downstream-epochs)

Translated images are quantised to uint8 and equalised before any network sees them, exactly as
when `gcgan transfer run` writes them and a reader loads them back.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from gcgan_cli.core.frozen import refuse_loss_network
from gcgan_cli.core.gaze.angles import angular_error
from gcgan_cli.core.gaze.estimator import SharedBiasLinear, load_estimator, predict
from gcgan_cli.core.gaze.fit import FitConfig, fit
from gcgan_cli.core.gaze.report import error_stats
from gcgan_cli.core.gaze.sources import GazeSource
from gcgan_cli.core.metrics.fid import frechet_distance
from gcgan_cli.core.synthesis import file_sha256
from gcgan_cli.core.transfer.landmarks import load_landmarks
from gcgan_cli.core.transfer.trainer import load_translator
from gcgan_cli.data.eye_patch import IRIS_CENTRE, equalise, from_unit, to_unit
from gcgan_cli.errors import UsageError

BATCH = 256
CORNERS = (0, 4)  # the lid landmarks at the two eye corners
REALISM_EPOCHS = 4
REALISM_SEED = 1234


def images_of(source: GazeSource) -> torch.Tensor:
    return torch.stack([source[i]["image"] for i in range(len(source))])


def landmarks_of(source: GazeSource) -> np.ndarray:
    return np.stack([source[i]["landmarks"].numpy() for i in range(len(source))])


def requantise(images: torch.Tensor) -> torch.Tensor:
    """[N, 1, H, W] in [-1, 1] -> uint8 -> equalised -> [-1, 1], as written and read back."""
    out = [to_unit(equalise(from_unit(image))) for image in images[:, 0].numpy()]
    return torch.from_numpy(np.stack(out))[:, None]


@torch.no_grad()
def run_generator(generator: nn.Module, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    return torch.cat(
        [generator(images[i : i + BATCH].to(device)).clamp(-1, 1).cpu() for i in range(0, len(images), BATCH)]
    )


class RealismClassifier(nn.Module):
    """A small S-vs-R judge: three stride-2 convolutions, global pooling, one logit."""

    def __init__(self):
        super().__init__()
        layers, cin = [], 1
        for cout in (16, 32, 64):
            layers += [nn.Conv2d(cin, cout, 3, 2, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]
            cin = cout
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[:, 0]


def train_realism(
    s_train: torch.Tensor, r_train: torch.Tensor, device: torch.device, epochs: int = REALISM_EPOCHS
) -> nn.Module:
    """Fit the judge on S (label 0) vs R (label 1), equal shares per batch."""
    generator = torch.Generator().manual_seed(REALISM_SEED)
    torch.manual_seed(REALISM_SEED)
    model = RealismClassifier().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    half = 32
    steps = epochs * max(len(s_train), len(r_train)) // half
    for _ in range(steps):
        s = s_train[torch.randint(len(s_train), (half,), generator=generator)]
        r = r_train[torch.randint(len(r_train), (half,), generator=generator)]
        x = torch.cat([s, r]).to(device)
        y = torch.cat([torch.zeros(half), torch.ones(half)]).to(device)
        loss = nn.functional.binary_cross_entropy_with_logits(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval()


@torch.no_grad()
def realism_accuracy(judge: nn.Module, candidate: torch.Tensor, real: torch.Tensor, device: torch.device) -> float:
    """Balanced accuracy of telling `candidate` (called S) from `real` (called R), in percent."""

    def said_real(x: torch.Tensor) -> np.ndarray:
        return np.concatenate([(judge(x[i : i + BATCH].to(device)) > 0).cpu().numpy() for i in range(0, len(x), BATCH)])

    return float(50.0 * ((~said_real(candidate)).mean() + said_real(real).mean()))


def penultimate(model: nn.Module, images: torch.Tensor) -> np.ndarray:
    """[N, K] float64: what the estimator's last dense layer reads."""
    last = [m for m in model.modules() if isinstance(m, (nn.Linear, SharedBiasLinear))][-1]
    grabbed: list[torch.Tensor] = []
    handle = last.register_forward_hook(lambda module, inputs, output: grabbed.append(inputs[0].detach().float().cpu()))
    try:
        predict(model, images)
    finally:
        handle.remove()
    return torch.cat(grabbed).numpy().astype(np.float64)


def feature_distance(a: np.ndarray, b: np.ndarray) -> float:
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def frechet_bounds(
    evaluator: nn.Module, translated: torch.Tensor, raw: torch.Tensor, real: torch.Tensor, seed: int
) -> dict:
    """Frechet distances in the evaluator's features to a seeded half of `real`, every set cut
    to that half's size: translated, raw, and the other half of `real` (the floor)."""
    order = np.random.default_rng(seed).permutation(len(real))
    half = min(len(real) // 2, len(raw))
    reference, other = penultimate(evaluator, real[order[:half]]), penultimate(evaluator, real[order[half : 2 * half]])
    pick = np.random.default_rng(seed + 1).permutation(len(raw))[:half]
    return {
        "translated": feature_distance(penultimate(evaluator, translated[pick]), reference),
        "raw_s": feature_distance(penultimate(evaluator, raw[pick]), reference),
        "r_halves": feature_distance(other, reference),
        "n": int(half),
    }


def gaze_errors(model: nn.Module, images: torch.Tensor, gazes: np.ndarray) -> np.ndarray:
    return angular_error(predict(model, images).numpy(), gazes)


def landmark_stats(model: nn.Module, images: torch.Tensor, true: np.ndarray, device: torch.device) -> dict:
    with torch.no_grad():
        found = torch.cat(
            [model(images[i : i + BATCH].to(device))[1].cpu() for i in range(0, len(images), BATCH)]
        ).numpy()
    error = np.linalg.norm(found - true, axis=-1)  # [N, 18] px
    corners = np.linalg.norm(true[:, CORNERS[0]] - true[:, CORNERS[1]], axis=-1)
    return {
        "mean_px": float(error.mean()),
        "nme": float((error.mean(axis=1) / np.maximum(corners, 1e-6)).mean()),
        "iris_centre_px": float(error[:, IRIS_CENTRE].mean()),
    }


def _gap_closed(raw: float, translated: float, floor: float) -> float | None:
    return (raw - translated) / (raw - floor) if raw - floor > 1e-9 else None


def _same(a, b) -> bool:
    return a is not None and b is not None and Path(a).resolve() == Path(b).resolve()


def check_splits(
    trained_on: dict, s_test: GazeSource, r_test: GazeSource, s_train: GazeSource, r_train: GazeSource
) -> None:
    """Refuse test data the translator or a fitted judge has seen: the test sets must be other
    files than the translator's domains and the training sets, and R_test's persons new."""
    for test, flag, seen in (
        (s_test, "--s-test", ((trained_on.get("s"), "the translator's --s"), (s_train.path, "--s-train"))),
        (r_test, "--r-test", ((trained_on.get("r"), "the translator's --r"), (r_train.path, "--r-train"))),
    ):
        for other, what in seen:
            if _same(test.path, other):
                raise UsageError(
                    f"{flag} {test.path} is {what}; evaluate on held-out data (e.g. `transfer synth` with another seed "
                    "or other persons)"
                )
    shared = sorted({p for p in r_test.subjects if p is not None} & {p for p in r_train.subjects if p is not None})
    if shared:
        raise UsageError(f"--r-test and --r-train share persons {', '.join(shared[:5])}; hold whole persons out")


class TensorSource(Dataset):
    """Images and gazes in memory, shaped like a gaze source for `gaze fit`."""

    kind = "tensor"

    def __init__(self, images: torch.Tensor, gazes: np.ndarray, name: str, subjects: list | None = None):
        self.images, self.gazes = images, np.asarray(gazes, np.float32)
        self.subjects = subjects or [None] * len(images)
        self.shape, self.path = tuple(images.shape[1:]), Path(name)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index], "gaze": torch.from_numpy(self.gazes[index]), "index": index}

    def describe(self) -> str:
        return f"{self.path} ({len(self)} samples)"


def downstream(
    train: TensorSource, test_images: torch.Tensor, test_gazes: np.ndarray, epochs: int, seed: int, device: torch.device
) -> dict:
    """Mean error on R_test of an estimator fitted on `train` with the eye recipe."""
    with tempfile.TemporaryDirectory() as folder:
        config = FitConfig(arch="small", size=0, epochs=epochs, batch=64, seed=seed)
        result = fit([train], [1.0], None, config, Path(folder) / "est.pt", device, {"sources": [train.describe()]})
        model, _ = load_estimator(Path(folder) / "est.pt", device)
    stats = error_stats(gaze_errors(model, test_images, test_gazes))
    return {**stats, "val_error": result.best_error}


def evaluate(
    checkpoint: Path,
    s_test: GazeSource,
    r_test: GazeSource,
    s_train: GazeSource,
    r_train: GazeSource,
    gaze_r: Path,
    device: torch.device,
    gaze_s: Path | None = None,
    landmarks_r: Path | None = None,
    twins: GazeSource | None = None,
    downstream_epochs: int = 0,
    seed: int = 0,
    on_stage: Callable[[str], None] = lambda stage: None,
) -> dict:
    g, info = load_translator(checkpoint, "s2r", device)
    f, _ = load_translator(checkpoint, "r2s", device)
    check_splits(info["config"], s_test, r_test, s_train, r_train)
    loss_nets = info["features"]
    for path, flag in ((gaze_r, "--gaze-r"), (gaze_s, "--gaze-s"), (landmarks_r, "--landmarks-r")):
        if path is not None:
            refuse_loss_network(
                Path(path), {f"{name} loss": record for name, record in (loss_nets or {}).items()}, flag, "translator"
            )
    on_stage("translating")
    s, r = images_of(s_test), images_of(r_test)
    fake_r_raw = run_generator(g, s, device)
    fake_r = requantise(fake_r_raw)
    cycled = run_generator(f, fake_r_raw, device)
    fake_s = requantise(run_generator(f, r, device))
    report: dict = {
        "checkpoint": info["path"],
        "step": info["step"],
        "counts": {"s_test": len(s), "r_test": len(r)},
        "config": {
            k: info["config"][k] for k in ("preset", "lambda_self", "lambda_gaze", "lambda_landmarks", "lambda_idt")
        },
    }

    on_stage("realism")
    s_train_images, r_train_images = images_of(s_train), images_of(r_train)
    judge = train_realism(s_train_images, r_train_images, device)
    report["realism"] = {
        "translated": realism_accuracy(judge, fake_r, r, device),
        "raw_s": realism_accuracy(judge, s, r, device),
        "chance": 50.0,
        "r2s_told_from_r": realism_accuracy(judge, fake_s, r, device),
    }

    on_stage("gaze")
    evaluator, _ = load_estimator(Path(gaze_r), device)
    report["realism"]["frechet_e_r"] = frechet_bounds(evaluator, fake_r, s, r, seed)
    raw = error_stats(gaze_errors(evaluator, s, s_test.gazes))
    translated = error_stats(gaze_errors(evaluator, fake_r, s_test.gazes))
    floor = error_stats(gaze_errors(evaluator, r, r_test.gazes))
    report["gaze"] = {
        "evaluator": str(gaze_r),
        "translated": translated,
        "raw_s": raw,
        "r_test_floor": floor,
        "gap_closed": _gap_closed(raw["mean"], translated["mean"], floor["mean"]),
    }
    loss_net = (loss_nets or {}).get("gaze")
    if loss_net and Path(loss_net["path"]).is_file() and file_sha256(Path(loss_net["path"])) == loss_net["sha256"]:
        model, _ = load_estimator(Path(loss_net["path"]), device)
        report["loss_net_circular"] = {
            "disagreement_deg": error_stats(angular_error(predict(model, s).numpy(), predict(model, fake_r).numpy()))
        }
    if gaze_s is not None:
        evaluator_s, _ = load_estimator(Path(gaze_s), device)
        report["r2s"] = {
            "evaluator": str(gaze_s),
            "translated": error_stats(gaze_errors(evaluator_s, fake_s, r_test.gazes)),
            "raw_r": error_stats(gaze_errors(evaluator_s, r, r_test.gazes)),
        }
    if landmarks_r is not None:
        on_stage("landmarks")
        true = landmarks_of(s_test)
        if not np.isfinite(true).all():
            raise UsageError(f"--landmarks-r needs S_test's true landmarks; {s_test.path} has none")
        net, _ = load_landmarks(Path(landmarks_r), device)
        report["landmarks"] = {
            "evaluator": str(landmarks_r),
            "translated": landmark_stats(net, fake_r, true, device),
            "raw_s": landmark_stats(net, s, true, device),
        }
    eq_s = requantise(s)
    report["change"] = {
        "translated_vs_source": float((fake_r - eq_s).abs().mean()),
        "cycle": float((cycled - s).abs().mean()),
    }
    if twins is not None:
        if twins.ids != s_test.ids:
            raise UsageError(
                f"--twins {twins.path}: its ids are not those of --s-test in the same order; render both with --twin"
            )
        twin = images_of(twins)
        report["twins"] = {
            "translated_l1": float((fake_r - twin).abs().mean()),
            "raw_l1": float((eq_s - twin).abs().mean()),
        }
    if downstream_epochs > 0:
        on_stage("downstream")
        fake_train = requantise(run_generator(g, s_train_images, device))
        rows = {
            "translated_s_train": TensorSource(fake_train, s_train.gazes, "G(S_train)"),
            "raw_s_train": TensorSource(s_train_images, s_train.gazes, "S_train"),
            "r_train": TensorSource(r_train_images, r_train.gazes, "R_train", list(r_train.subjects)),
        }
        report["downstream"] = {
            name: downstream(source, r, r_test.gazes, downstream_epochs, seed, device) for name, source in rows.items()
        }
    return report


def table_rows(report: dict) -> list[tuple[str, str]]:
    """(name, value) lines of the summary table."""
    real, frechet = report["realism"], report["realism"]["frechet_e_r"]
    rows = [
        (
            "realism (S-vs-R accuracy, 50% = chance)",
            f"translated {real['translated']:.1f}%  raw S {real['raw_s']:.1f}%",
        ),
        (
            f"realism (Frechet distance, E_R features, n {frechet['n']})",
            f"translated {frechet['translated']:.2f}  raw S {frechet['raw_s']:.2f}  R vs R {frechet['r_halves']:.2f}",
        ),
    ]
    gaze = report["gaze"]
    closed = gaze["gap_closed"]
    rows.append(
        (
            "gaze error, independent E_R (deg)",
            f"translated {gaze['translated']['mean']:.2f} (median {gaze['translated']['median']:.2f})  raw S "
            f"{gaze['raw_s']['mean']:.2f}  "
            f"R floor {gaze['r_test_floor']['mean']:.2f}"
            + (f"  gap closed {100 * closed:.0f}%" if closed is not None else ""),
        )
    )
    if "loss_net_circular" in report:
        rows.append(
            ("loss network s vs G(s) (circular)", f"{report['loss_net_circular']['disagreement_deg']['mean']:.2f} deg")
        )
    if "r2s" in report:
        rows.append(
            (
                "R->S gaze error, E_S' (deg)",
                f"translated {report['r2s']['translated']['mean']:.2f}  raw R {report['r2s']['raw_r']['mean']:.2f}",
            )
        )
    if "landmarks" in report:
        lm = report["landmarks"]
        rows.append(
            (
                "landmark error, independent L_R (px)",
                f"translated {lm['translated']['mean_px']:.2f} (iris {lm['translated']['iris_centre_px']:.2f})  "
                f"raw S {lm['raw_s']['mean_px']:.2f} (iris {lm['raw_s']['iris_centre_px']:.2f})",
            )
        )
    rows.append(
        (
            "change |eq(G(s)) - eq(s)|",
            f"{report['change']['translated_vs_source']:.3f}  (cycle {report['change']['cycle']:.3f})",
        )
    )
    if "twins" in report:
        rows.append(
            (
                "L1 to the R-style twin",
                f"translated {report['twins']['translated_l1']:.3f}  raw S {report['twins']['raw_l1']:.3f}",
            )
        )
    if "downstream" in report:
        d = report["downstream"]
        rows.append(
            (
                "downstream on R_test (deg)",
                f"trained on G(S) {d['translated_s_train']['mean']:.2f}  on S {d['raw_s_train']['mean']:.2f}  "
                f"on R {d['r_train']['mean']:.2f}",
            )
        )
    return rows

"""Import a section of the FP-GAN original's `.ini` files as `gcgan transfer fit` options.

The original read its files with `configparser` (values inherited from [DEFAULT], `%(key)s`
interpolation) and passed each value through a literal parser, keeping the raw string when that
failed. Its traps are reported as warnings, not copied:
- lowercase `true` / `false` stayed strings, and both were truthy (`use_lsgan = false` still meant
  LSGAN); here they are read as the booleans they were meant to be, with a warning;
- `normalise_gaze` never reached the GAN's gaze loss, whose units were those the frozen GazeNet
  was trained in; gcgan's estimators output radians, so lambda_gaze is in rad^-2;
- TensorFlow checkpoint paths (`ege_path`, `lm_path`, `checkpoint_folder`) cannot be loaded: pass
  `--gaze-model` / `--landmark-model` files made by gcgan;
- sections that lack `gan_name` or the `track_*` keys crashed the original; they import here;
- dated `lm_*` sections inherit lambda_landmarks = 0 from [DEFAULT]: they were translation-only.
"""

from __future__ import annotations

import ast
import configparser
from pathlib import Path
from typing import Any

from gcgan_cli.errors import UsageError

# ini key -> TransferConfig field
RENAMED = {
    "batch_size": "batch",
    "lambda1": "lambda_cycle_s",
    "lambda2": "lambda_cycle_r",
    "lambda_identity": "lambda_self",
    "lambda_gaze": "lambda_gaze",
    "lambda_landmarks": "lambda_landmarks",
    "learning_rate": "lr",
    "beta1": "beta1",
    "pool_size": "pool_size",
    "n_steps": "steps",
    "s": "s",
    "r": "r",
}
# Keys that carry no meaning for gcgan (reporting, TF export, paths of TF checkpoints).
IGNORED = {
    "batch_size_inference",
    "track_images",
    "track_histograms",
    "gan_name",
    "ege_name",
    "ege_norm",
    "model_name_s2r",
    "model_name_r2s",
    "path_model_s2r",
    "path_model_r2s",
    "path_refined_s2r",
    "path_refined_r2s",
    "checkpoints_dir",
    "lm_name",
}
TF_CHECKPOINTS = ("ege_path", "lm_path", "checkpoint_folder")
IMAGE_SIZE = {"image_height": 36, "image_width": 60}


def _literal(raw: str) -> Any:
    if raw == "":
        return None
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def import_ini(path: Path, section: str) -> tuple[dict[str, Any], list[str]]:
    """(TransferConfig options, warnings) from `section` of the `.ini` at `path`."""
    parser = configparser.ConfigParser(interpolation=configparser.BasicInterpolation())
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        raise UsageError(f"--from-ini {path}: no such file") from None
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise UsageError(f"--from-ini {path}: not an .ini file ({str(exc).splitlines()[0]})") from None
    if section != "DEFAULT" and not parser.has_section(section):
        known = ", ".join(["DEFAULT", *parser.sections()])
        raise UsageError(f"--section {section}: {path} has no such section; it has {known}")
    try:
        raw = dict(parser[section])
    except (configparser.InterpolationError, KeyError) as exc:
        raise UsageError(f"--from-ini {path} [{section}]: {str(exc).splitlines()[0]}") from None
    options: dict[str, Any] = {}
    warnings: list[str] = []
    for key, text in raw.items():
        value = _literal(text)
        if isinstance(value, str) and value.lower() in ("true", "false"):
            warnings.append(
                f"{key} = {text}: the original kept lowercase booleans as strings, both truthy; read as "
                f"{value.lower() == 'true'}"
            )
            value = value.lower() == "true"
        if key in RENAMED:
            if value is not None:
                options[RENAMED[key]] = value
        elif key == "use_lsgan":
            if value is not True:
                warnings.append(
                    f"use_lsgan = {text}: gcgan trains LSGAN only; the cross-entropy variant is not offered"
                )
        elif key == "norm":
            if value not in ("instance", "batch"):
                raise UsageError(f"--from-ini {path} [{section}]: norm = {text}; use instance or batch")
            options["norm"] = value
        elif key == "rgb":
            if value:
                raise UsageError(
                    f"--from-ini {path} [{section}]: rgb = {text}; gcgan translates grayscale eye patches only (the "
                    "final FP-GAN setting)"
                )
        elif key == "ngf":
            if value is not None and value != 64:
                warnings.append(f"ngf = {value}: use --preset reference (ngf 64) or tiny; other widths are not presets")
        elif key in IMAGE_SIZE:
            if value != IMAGE_SIZE[key]:
                raise UsageError(f"--from-ini {path} [{section}]: {key} = {text}; gcgan's eye patches are 36 x 60")
        elif key == "normalise_gaze":
            if value:
                warnings.append(
                    "normalise_gaze = True never reached the original GAN's gaze loss; gcgan's lambda_gaze is in rad^-2"
                )
        elif key == "filter_gaze":
            if value:
                warnings.append("filter_gaze = True: not imported; filter the sources before training")
        elif key in TF_CHECKPOINTS:
            if value:
                flag = {
                    "ege_path": "--gaze-model",
                    "lm_path": "--landmark-model",
                    "checkpoint_folder": "--resume with --out",
                }[key]
                warnings.append(f"{key} = {text}: a TensorFlow checkpoint cannot be loaded; use {flag}")
        elif key not in IGNORED:
            warnings.append(f"{key} = {text}: unknown to gcgan, ignored")
    if options.get("lambda_landmarks", 0) == 0 and section.lower().startswith("lm"):
        warnings.append(f"[{section}] inherits lambda_landmarks = 0: in the original it was a translation-only section")
    return options, warnings

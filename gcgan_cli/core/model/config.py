"""One configuration for the GC-GAN generator and discriminators, stored in every checkpoint.

Every size the reference hard-codes (latent 512, 8 mapping layers, 10 local layers of which 2
take the shared base codes, gaze on classes 2 and 5, a 64-d gaze embedding) is a field here, so
a checkpoint rebuilds its model from `ModelConfig.from_dict(ckpt["config"]["model"])` alone.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from gcgan_cli.errors import CheckpointError, GcganError, UsageError

REFERENCE_CLASSES = ("background", "skin", "eye", "eyebrow", "nose", "iris")
D_CONDITIONINGS = ("concat", "projection")
# Fields added after the first checkpoints were written: a stored config may lack them, and their
# defaults are what those checkpoints had (raw radians, concat conditioning, no gaze head).
ADDED_LATER = ("gaze_mean", "gaze_std", "d_conditioning", "d_gaze_head")


@dataclass(frozen=True)
class ModelConfig:
    size: int = 256
    class_names: tuple[str, ...] = REFERENCE_CLASSES  # seg_dim = len(class_names); class 0 is the background
    gaze_classes: tuple[str, ...] = ("eye", "iris")  # local generators that see the gaze
    style_dim: int = 512  # z and w
    n_mlp: int = 8
    lr_mlp: float = 0.01
    gaze_dim: int = 64  # gaze embedding width (generator and gaze discriminator)
    local_layers: int = 10
    base_layers: int = 2  # leading local layers driven by the shared base codes (and not by gaze)
    depth_layers: int = 6  # the depth head reads the features after this many layers
    local_channels: int = 64
    coarse_channels: int = 512  # features each local generator emits
    coarse_size: int = 64  # fusion resolution
    min_feat_size: int = 16  # render-net start resolution
    channel_multiplier: int = 2
    channel_base: int = 16384  # render-net / D width at resolution r: min(max_channels, base * multiplier / r)
    max_channels: int = 512
    residual_refine: bool = True  # add the coarse mask into the render net's segmentation at coarse_size
    detach_texture: bool = False
    # G and D embed (gaze - gaze_mean) / gaze_std, (pitch, yaw): the label set's statistics, so
    # that pitch (about half yaw's spread) is embedded as strongly. (0, 0) / (1, 1) = raw radians.
    gaze_mean: tuple[float, float] = (0.0, 0.0)
    gaze_std: tuple[float, float] = (1.0, 1.0)
    # How D is conditioned on the gaze: "concat" (the embedding joins the features before the
    # first linear layer) or "projection" (the embedding's inner product with D's hidden features).
    d_conditioning: str = "concat"
    # A (pitch, yaw) regression head on D's features (AC-GAN style); 0 = none, else its width.
    d_gaze_head: int = 0

    @property
    def seg_dim(self) -> int:
        return len(self.class_names)

    @property
    def gaze_ids(self) -> tuple[int, ...]:
        return tuple(self.class_names.index(name) for name in self.gaze_classes)

    @property
    def n_latent(self) -> int:
        """Rows of the compact W+: the base codes, then (shape, texture) per class."""
        return self.base_layers + 2 * self.seg_dim

    @property
    def n_latent_expand(self) -> int:
        """Rows of the expanded W+: one per local layer of every class."""
        return self.seg_dim * self.local_layers

    def channels(self, resolution: int) -> int:
        return min(self.max_channels, self.channel_base * self.channel_multiplier // resolution)

    def validate(self, where: str = "model config", error: type[GcganError] = UsageError) -> ModelConfig:
        problems = []
        for name in ("size", "coarse_size", "min_feat_size"):
            value = getattr(self, name)
            if value < 4 or value & (value - 1):
                problems.append(f"{name} {value} is not a power of two >= 4")
        if not problems and not self.min_feat_size < self.coarse_size <= self.size // 2:
            problems.append(
                f"need min_feat_size < coarse_size <= size/2 (the render net starts below the fusion grid), "
                f"got {self.min_feat_size}, {self.coarse_size}, {self.size}"
            )
        for name in (
            "style_dim",
            "n_mlp",
            "gaze_dim",
            "local_channels",
            "coarse_channels",
            "channel_multiplier",
            "channel_base",
            "max_channels",
        ):
            if getattr(self, name) < 1:
                problems.append(f"{name} {getattr(self, name)} must be >= 1")
        if not problems and self.channels(self.size) < 1:
            problems.append(
                f"channel_base x channel_multiplier ({self.channel_base * self.channel_multiplier}) gives no "
                "channels at "
                f"{self.size} px; raise channel_base to at least {self.size // self.channel_multiplier}"
            )
        if (
            len(self.gaze_mean) != 2
            or len(self.gaze_std) != 2
            or not all(math.isfinite(v) for v in self.gaze_mean)
            or not all(math.isfinite(v) and v > 0 for v in self.gaze_std)
        ):
            problems.append(
                f"gaze_mean and gaze_std are finite (pitch, yaw) pairs, std > 0; got {self.gaze_mean}, {self.gaze_std}"
            )
        if self.d_conditioning not in D_CONDITIONINGS:
            problems.append(f"d_conditioning {self.d_conditioning!r}: choose one of {', '.join(D_CONDITIONINGS)}")
        if self.d_gaze_head < 0:
            problems.append(f"d_gaze_head {self.d_gaze_head} must be >= 0 (0 = no head)")
        if self.seg_dim < 2 or len(set(self.class_names)) != self.seg_dim:
            problems.append(f"class_names must be 2 or more distinct names, got {list(self.class_names)}")
        unknown = [c for c in self.gaze_classes if c not in self.class_names]
        if unknown:
            problems.append(f"gaze_classes {unknown} are not among class_names {list(self.class_names)}")
        if self.class_names and self.class_names[0] in self.gaze_classes:
            problems.append("the background (class 0) cannot be a gaze class")
        if not 0 <= self.base_layers < self.depth_layers <= self.local_layers:
            problems.append(
                f"need 0 <= base_layers < depth_layers <= local_layers, got {self.base_layers}, {self.depth_layers}, "
                f"{self.local_layers}"
            )
        if not problems and self.n_latent == self.n_latent_expand:
            problems.append(f"compact and expanded W+ would both have {self.n_latent} rows; change local_layers")
        if problems:
            raise error(f"{where}: " + "; ".join(problems))
        return self

    def to_dict(self) -> dict:
        record = asdict(self)
        for name in ("class_names", "gaze_classes", "gaze_mean", "gaze_std"):
            record[name] = list(getattr(self, name))
        return record

    @classmethod
    def from_dict(cls, record: dict, where: str = "model config", error: type[GcganError] = UsageError) -> ModelConfig:
        """The config a checkpoint stored; `where` names it in the `error` raised for a missing,
        unknown or wrong-typed field (an edited file is refused before a model is built from it)."""
        if not isinstance(record, dict):
            raise error(f"{where}: expected a table of model settings, got {type(record).__name__}")
        known = {f.name for f in fields(cls)}
        for problem, names in (("unknown", set(record) - known), ("missing", known - set(record) - set(ADDED_LATER))):
            if names:
                raise error(f"{where}: {problem} field(s) {', '.join(sorted(names))}")
        values = checked_options(cls, dict(record), where, error)
        for name in ("class_names", "gaze_classes", "gaze_mean", "gaze_std"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values).validate(where, error)

    @classmethod
    def from_checkpoint(cls, record: dict, path) -> ModelConfig:
        """The model config stored in a `gcgan train` checkpoint read from `path`; an edited one is
        a CheckpointError naming the file and the field."""
        from gcgan_cli.checkpoint import NEXT_STEP  # here: gcgan_cli.checkpoint imports torch, this module does not

        config = record.get("config")
        if not isinstance(config, dict) or "model" not in config:
            raise CheckpointError(f"checkpoint {path}: its config has no 'model' entry; {NEXT_STEP}")
        return cls.from_dict(config["model"], f"checkpoint {path}: model config", CheckpointError)

    def resolution_levels(self) -> list[int]:
        """Input resolutions of the render-net levels: min_feat_size, 2x, ... size/2."""
        return [self.min_feat_size * 2**i for i in range(int(math.log2(self.size // self.min_feat_size)))]


def option_flag(name: str) -> str:
    return name.replace("_", "-")


_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}
_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}
_LIST_WORDS = {"int": "a list of integers", "float": "a list of numbers", "str": "a list of strings"}


def _fits(value: Any, kind: str) -> bool:
    """Whether `value` has the annotated type `kind` ("int", "float", "tuple[str, ...]"; bool is no
    int here, an int is a float); kinds without a check pass."""
    if kind.startswith("tuple["):
        return isinstance(value, (list, tuple)) and all(_fits(item, _element(kind)) for item in value)
    allowed = _TYPES.get(kind)
    return allowed is None or (isinstance(value, allowed) and (bool in allowed or not isinstance(value, bool)))


def _element(kind: str) -> str:
    """The element type of a tuple annotation: "tuple[str, ...]" -> "str"."""
    return kind[len("tuple[") : -1].split(",")[0].strip()


def checked_options(
    schema: type, record: dict[str, Any], where: str, error: type[GcganError] = UsageError
) -> dict[str, Any]:
    """`record` if every key is a field of the dataclass `schema` and every value has the field's
    type (`batch = "8"` in a TOML file is a one-line error, not a failure later); ints are taken
    where floats are expected."""
    known = {f.name: f.type for f in fields(schema)}
    unknown = sorted(set(record) - set(known))
    if unknown:
        raise error(f"{where}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    for name, value in record.items():
        kinds = [k.strip() for k in str(known[name]).split("|")]
        if value is None and "None" in kinds:
            continue
        if not any(_fits(value, kind) for kind in kinds if kind != "None"):
            wanted = " or ".join(
                _LIST_WORDS.get(_element(k), "a list") if k.startswith("tuple[") else _WORDS.get(k, k)
                for k in kinds
                if k != "None"
            )
            raise error(f"{where}: {option_flag(name)} = {value!r} must be {wanted}")
    return record


PRESETS = {
    # The reference README's run: --size 256 --seg_dim 6 --residual_refine, every other default.
    "ref256": ModelConfig(),
    # Small enough for CPU tests: well under a second per forward + backward.
    "tiny": ModelConfig(
        size=32,
        style_dim=32,
        n_mlp=2,
        gaze_dim=8,
        local_layers=4,
        base_layers=1,
        depth_layers=2,
        local_channels=8,
        coarse_channels=16,
        coarse_size=16,
        min_feat_size=8,
        channel_multiplier=1,
        channel_base=256,
        max_channels=16,
    ),
    # 64 px on a laptop CPU: 442k G / 699k D parameters, 64 channels down to 8 px, 32 at 64 px, a
    # 32-cell fusion grid (an iris spans about 2.5 cells), three gaze-modulated layers before the depth head.
    "small": ModelConfig(
        size=64,
        style_dim=128,
        n_mlp=2,
        gaze_dim=32,
        local_layers=6,
        base_layers=1,
        depth_layers=4,
        local_channels=32,
        coarse_channels=64,
        coarse_size=32,
        min_feat_size=8,
        channel_multiplier=1,
        channel_base=2048,
        max_channels=64,
        d_gaze_head=64,
    ),
}


def preset(name: str, **overrides) -> ModelConfig:
    if name not in PRESETS:
        raise UsageError(f"--preset {name!r}: choose one of {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides).validate()

"""Single-eye renders in two domains, S (UnityEyes-like) and R (MPIIFaceGaze-like), with exact labels.

Each sample is a raw UnityEyes-style frame: the eyeball centre is the frame centre, its radius is
UnityEyes' 71.7593 px, and the iris centre sits at c + R (-cos p sin y, -sin p), the point the reader's
iris-centre landmark formula gives, so gaze and landmarks are exact by construction (positive yaw moves
the iris image-left, positive pitch moves it up). Two lid curves join the inner corner (caruncle side,
image-left) and the outer corner; the upper lid rides up and down with the pitch, so lid landmarks
carry gaze too. The lids occlude the iris: shapes are drawn as masks at SUPERSAMPLE x and
area-averaged, so every raw pixel gets the exact coverage of each part.

S is clean and sharp with a wide gaze prior. R adds what histogram equalisation cannot undo (it
removes any monotonic tone change, so gamma, contrast or tint alone would be invisible): a low-frequency
illumination field, 1/f skin texture, lower sclera/iris contrast, a lash shadow over the iris top, a
glint tied to the light instead of the gaze, and a camera (resolution loss, defocus, Poisson-Gaussian
noise, JPEG) that acts at the patch's scale. R has persons p00..p14 with their own eye shape, lid
opening, iris size and tone and a small gaze offset, and a narrow MPII-like gaze prior.

Everything is a function of (seed, subject, sample) alone: a person's identity depends on (seed,
person), a sample on (seed, person, k), so sets rendered in pieces (train p00-p11, test p12-p14)
agree with one rendered whole. Without persons, each sample is its own identity, keyed by its index.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import h5py
import numpy as np

from gcgan_cli.data import eye_patch
from gcgan_cli.data.atomic import remove_path, replace_path, temp_path
from gcgan_cli.data.synthetic import GazePrior, sample_gaze
from gcgan_cli.errors import UsageError

CANVAS = (400, 300)  # raw frame, width x height; the jittered crop stays inside it
CENTRE = np.array([CANVAS[0] / 2, CANVAS[1] / 2])
R = eye_patch.EYEBALL_RADIUS
SUPERSAMPLE = 4  # masks are drawn at 4 x 4 sub-pixels per raw pixel
UNITY_QUALITY = 95  # the JPEG quality of the raw frames in the unity format
STYLES = ("s", "r")
FORMATS = ("unity", "mpii")
DEFAULT_PERSONS = {"s": None, "r": 15}

GAZE = {
    "s": GazePrior(0.0, 0.3, (-0.7, 0.7), 0.0, 0.45, (-0.9, 0.9)),  # wide, UnityEyes-like
    "r": GazePrior(-0.1, 0.12, (-0.5, 0.3), 0.0, 0.18, (-0.6, 0.6)),  # narrow, MPIIFaceGaze-like
}
HEAD = {
    "s": GazePrior(0.0, 0.25, (-0.6, 0.6), 0.0, 0.3, (-0.8, 0.8)),
    "r": GazePrior(-0.05, 0.08, (-0.3, 0.2), 0.0, 0.12, (-0.35, 0.35)),
}
PERSON_GAZE_OFFSET = 0.03  # std of a person's (pitch, yaw) offset, radians

# A subject's eye: uniform ranges in eyeball radii.
EYE_SPAN = (1.02, 1.18)  # half the corner-to-corner distance
EYE_DROP = (-0.04, 0.08)  # the opening's centre below the eyeball centre
LID_UPPER = (0.38, 0.68)  # lid openings above / below the corner line at pitch 0
LID_LOWER = (0.26, 0.48)
UPPER_SKEW = (-0.3, 0.1)  # where a lid peaks: negative toward the inner corner
LOWER_SKEW = (-0.1, 0.3)
IRIS_RADIUS = (0.40, 0.48)
ROLL_STD = 0.05  # tilt of the corner line, radians
SKIN_JITTER, IRIS_JITTER = 4.0, 8.0  # colour std around the palette, grey levels
# Per sample, the lids sit a little differently over the eyeball (roll in radians, shift in radii).
FRAMING_ROLL_STD, FRAMING_SHIFT_STD = 0.03, 0.03
CARUNCLE_AT, CARUNCLE_SIZE = 0.1, (0.09, 0.05)  # from the inner corner, fractions of the half span

# R's per-sample look and camera (uniform ranges).
R_LIGHT = (0.2, 0.5)  # side-light gradient across the frame
R_VIGNETTE = (0.1, 0.35)
R_TEXTURE = (0.03, 0.07)  # 1/f skin texture, relative std
R_LASH = (0.3, 0.55)  # depth of the lash shadow right below the upper lid
R_LASH_WIDTH = (0.12, 0.22)  # eyeball radii
R_RESOLUTION = (0.3, 0.6)  # the camera's resolution, fraction of the patch's
R_DEFOCUS = (0.5, 1.5)  # Gaussian sigma, patch px
R_GAIN = (0.3, 1.0)  # shot-noise variance per grey level
R_READ_NOISE = (1.5, 4.0)  # grey levels
R_JPEG = (40, 80)  # quality
ILLUMINATION_GRID = 8  # the light field is computed this many times coarser, then smoothed up

# Lid geometry in eyeball radii. The upper lid follows the eye: its opening above the corner line
# grows by UPPER_FOLLOW sin(pitch); the lower lid moves the other way, less.
UPPER_FOLLOW = 0.6
LOWER_FOLLOW = 0.15
LID_MIN = 0.04
LID_SAMPLES = 48  # points per lid on the drawn outline
MARGIN_PER_LID = 9  # UnityEyes' 16 margin points: 9 on the upper lid (both corners), 7 on the lower
IRIS_POINTS = 32
CARUNCLE_POINTS = 7
CREASE_GAP = 0.28  # lid crease above the upper lid
CREASE_REACH = 0.8  # the crease spans this fraction of the corner-to-corner distance
PUPIL_RATIO = (0.32, 0.48)  # pupil radius / iris radius
IRIS_STREAKS = 23  # radial iris fibres


@dataclass(frozen=True)
class Identity:
    """A subject's eye, in eyeball radii (span: half the corner-to-corner distance)."""

    span: float
    roll: float
    drop: float  # eye opening centre below the eyeball centre
    upper: float  # lid openings above / below the corner line at pitch 0
    lower: float
    upper_skew: float
    lower_skew: float
    iris: float  # iris radius
    gaze_offset: tuple[float, float]


@dataclass(frozen=True)
class Look:
    """A subject's colours (BGR) in one style."""

    skin: np.ndarray
    sclera: np.ndarray
    iris: np.ndarray
    caruncle: np.ndarray


# Colours (BGR) and textures.
SKIN = {"s": ((150, 170, 205), (120, 145, 190), (85, 110, 160)), "r": ((120, 140, 175), (95, 115, 150), (70, 88, 120))}
SCLERA = {"s": (225, 230, 235), "r": (168, 175, 182)}
IRIS = {
    "s": ((40, 70, 105), (30, 45, 70), (150, 120, 80), (90, 120, 95)),
    "r": ((60, 78, 100), (52, 62, 78), (125, 110, 90), (90, 105, 95)),
}  # R: lower contrast against its darker sclera
CARUNCLE = {"s": (150, 150, 215), "r": (130, 132, 165)}
PUPIL = 18.0
GLINT = 250.0
GLINT_RADIUS = 0.06  # eyeball radii
GLINT_ON_IRIS = (-0.13, -0.13)  # S: the glint rides with the iris, at this offset from its centre
GLINT_FROM_LIGHT = 0.45  # R: the glint stays at this offset from the eyeball centre, toward the light
IRIS_CENTRE_TONE = 0.65  # iris brightness at its centre relative to its rim, before the limbal ring
IRIS_FIBRE_DEPTH = 0.12
LIMBUS_START, LIMBUS_DEPTH = 0.78, 0.55  # the dark limbal ring
SCLERA_CORNER_SHADE = 0.18  # sclera darkening toward the corners
LASH_LINE = {"s": 3, "r": 5}  # raw px
LASH_DARKNESS = 0.65
CREASE_LINE, CREASE_DARKNESS = 3, 0.3
SKIN_FIELD_SEED = 7  # the fixed 1/f field every R frame reads a window of


@dataclass(frozen=True)
class Geometry:
    """Everything the two styles share for one sample, in raw pixels."""

    gaze: tuple[float, float]
    head: tuple[float, float]
    person: str | None
    identity: Identity
    upper: np.ndarray  # [LID_SAMPLES, 2] inner -> outer corner
    lower: np.ndarray
    margin: (
        np.ndarray
    )  # [16, 2] UnityEyes interior_margin_2d: 0 inner corner, 1-7 upper lid, 8 outer corner, 9-15 lower lid
    caruncle: np.ndarray  # [CARUNCLE_POINTS, 2]
    iris: np.ndarray  # [32, 2] the limbus
    iris_centre: np.ndarray
    iris_axes: tuple[float, float]  # semi-axes along / across the gaze offset
    iris_angle: float  # of the gaze offset, degrees
    pupil: float  # pupil / iris radius
    crease: np.ndarray


@dataclass(frozen=True)
class EyeRender:
    image: np.ndarray  # [CANVAS[1], CANVAS[0], 3] BGR uint8, the raw frame
    gaze: tuple[float, float]  # (pitch, yaw) radians
    head: tuple[float, float]
    person: str | None  # "pXX", or None for a one-sample identity
    style: str
    margin: np.ndarray  # [16, 2] raw pixels, y down
    caruncle: np.ndarray
    iris: np.ndarray  # [32, 2]
    landmarks: np.ndarray  # [18, 2] float32 patch pixels (the jitter-free crop)

    @property
    def look_vec(self) -> tuple[float, float, float]:
        return eye_patch.look_vector(*self.gaze)

    @property
    def crop(self) -> np.ndarray:
        return eye_patch.crop_matrix(self.margin, self.caruncle)

    def patch(self) -> np.ndarray:
        """The jitter-free 60 x 36 BGR patch, as the UnityEyes reader crops it."""
        return eye_patch.crop(self.image, self.crop)


# --- random streams ---

_IDENTITY, _GEOMETRY, _LOOK, _SAMPLE_LOOK = 0, 1, 2, 3  # stream ids: what a draw is for


def _subject_key(person: str | None, index: int) -> tuple[int, int]:
    return (0, _person_number(person)) if person is not None else (1, index)


def _person_number(person: str) -> int:
    if len(person) < 2 or person[0] != "p" or not person[1:].isdigit():
        raise UsageError(f"person {person!r}: expected pNN, e.g. p03")
    return int(person[1:])


@lru_cache(maxsize=256)
def identity(seed: int, subject: tuple[int, int]) -> Identity:
    """A subject's eye shape and gaze offset; persons get an offset, one-sample identities none."""
    rng = np.random.default_rng((seed, _IDENTITY, *subject))
    offset = tuple(float(v) for v in rng.normal(0, PERSON_GAZE_OFFSET, 2)) if subject[0] == 0 else (0.0, 0.0)
    return Identity(
        span=rng.uniform(*EYE_SPAN),
        roll=rng.normal(0, ROLL_STD),
        drop=rng.uniform(*EYE_DROP),
        upper=rng.uniform(*LID_UPPER),
        lower=rng.uniform(*LID_LOWER),
        upper_skew=rng.uniform(*UPPER_SKEW),
        lower_skew=rng.uniform(*LOWER_SKEW),
        iris=rng.uniform(*IRIS_RADIUS),
        gaze_offset=offset,
    )


@lru_cache(maxsize=256)
def look(seed: int, subject: tuple[int, int], style: str) -> Look:
    rng = np.random.default_rng((seed, _LOOK, STYLES.index(style), *subject))
    skins = np.array(SKIN[style], np.float32)
    i = rng.integers(len(skins) - 1)
    skin = skins[i] + rng.uniform() * (skins[i + 1] - skins[i]) + rng.normal(0, SKIN_JITTER, 3)
    iris = np.array(IRIS[style][rng.integers(len(IRIS[style]))], np.float32) + rng.normal(0, IRIS_JITTER, 3)
    return Look(
        skin=np.clip(skin, 0, 255).astype(np.float32),
        sclera=np.array(SCLERA[style], np.float32),
        iris=np.clip(iris, 0, 255).astype(np.float32),
        caruncle=np.array(CARUNCLE[style], np.float32),
    )


# --- geometry ---


def _lid(
    ident: Identity, head_yaw: float, height: float, skew: float, sign: float, frame: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """Points of one lid at parameters t in [-1, 1] (inner -> outer corner); sign -1 for the upper lid."""
    origin, along, down = frame
    half = ident.span * R * math.cos(head_yaw)
    bulge = sign * height * R * (1 - t**2) * (1 + skew * t)
    return origin + (half * t)[:, None] * along + bulge[:, None] * down


def geometry(seed: int, index: int, style: str, person: str | None = None) -> Geometry:
    """Sample `index` of the subject (a person's k-th sample, or a one-sample identity) in `style`'s priors."""
    subject = _subject_key(person, index)
    ident = identity(seed, subject)
    rng = np.random.default_rng((seed, _GEOMETRY, STYLES.index(style), *subject, index if person is not None else 0))
    pitch, yaw = sample_gaze(rng, GAZE[style])
    pitch, yaw = pitch + ident.gaze_offset[0], yaw + ident.gaze_offset[1]
    head = sample_gaze(rng, HEAD[style])
    roll = ident.roll + rng.normal(0, FRAMING_ROLL_STD)
    shift = rng.normal(0, FRAMING_SHIFT_STD, 2) * R
    along, down = np.array([math.cos(roll), math.sin(roll)]), np.array([-math.sin(roll), math.cos(roll)])
    frame = np.stack([CENTRE + ident.drop * R * down + shift, along, down])
    lift = math.sin(pitch)
    upper_h, lower_h = max(ident.upper + UPPER_FOLLOW * lift, LID_MIN), max(ident.lower - LOWER_FOLLOW * lift, LID_MIN)
    t = np.linspace(-1.0, 1.0, LID_SAMPLES)
    upper = _lid(ident, head[1], upper_h, ident.upper_skew, -1.0, frame, t)
    lower = _lid(ident, head[1], lower_h, ident.lower_skew, 1.0, frame, t)
    t_margin = np.linspace(-1.0, 1.0, MARGIN_PER_LID)
    margin_upper = _lid(ident, head[1], upper_h, ident.upper_skew, -1.0, frame, t_margin)
    margin_lower = _lid(ident, head[1], lower_h, ident.lower_skew, 1.0, frame, t_margin[-2:0:-1])
    margin = np.concatenate([margin_upper, margin_lower])
    crease = _lid(ident, head[1], upper_h + CREASE_GAP, ident.upper_skew, -1.0, frame, t * CREASE_REACH)

    inner, half = margin[0], ident.span * R * math.cos(head[1])
    angles = np.linspace(0, 2 * np.pi, CARUNCLE_POINTS, endpoint=False)
    blob = np.stack([CARUNCLE_SIZE[0] * half * np.cos(angles), CARUNCLE_SIZE[1] * half * np.sin(angles)], axis=1)
    caruncle = inner + CARUNCLE_AT * half * along + blob @ np.stack([along, down])

    direction = np.array([-math.cos(pitch) * math.sin(yaw), -math.sin(pitch)])
    iris_centre = CENTRE + R * direction
    length = float(np.hypot(*direction))
    unit = direction / length if length > 1e-9 else np.array([1.0, 0.0])
    radius = ident.iris * R
    axes = (radius * math.cos(pitch) * math.cos(yaw), radius)
    phi = np.linspace(0, 2 * np.pi, IRIS_POINTS, endpoint=False)
    across = np.array([-unit[1], unit[0]])
    iris = iris_centre + (axes[0] * np.cos(phi))[:, None] * unit + (axes[1] * np.sin(phi))[:, None] * across
    return Geometry(
        gaze=(pitch, yaw),
        head=head,
        person=person,
        identity=ident,
        upper=upper,
        lower=lower,
        margin=margin,
        caruncle=caruncle,
        iris=iris,
        iris_centre=iris_centre,
        iris_axes=axes,
        iris_angle=math.degrees(math.atan2(unit[1], unit[0])),
        pupil=rng.uniform(*PUPIL_RATIO),
        crease=crease,
    )


# --- painting ---


@lru_cache(maxsize=1)
def _skin_field() -> np.ndarray:
    """A fixed unit-std 1/f noise field twice the canvas; each R frame reads a random window of it."""
    h, w = 2 * CANVAS[1], 2 * CANVAS[0]
    spectrum = np.fft.rfft2(np.random.default_rng(SKIN_FIELD_SEED).standard_normal((h, w)))
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :]
    spectrum /= np.maximum(np.hypot(fx, fy), 1.0 / max(h, w))
    field = np.fft.irfft2(spectrum, s=(h, w))
    return ((field - field.mean()) / field.std()).astype(np.float32)


def _fixed(points: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Raw points -> int32 vertices at SUPERSAMPLE x with 4 fractional bits (pixel centres at integers)."""
    return np.round(((points - origin) * SUPERSAMPLE + (SUPERSAMPLE - 1) / 2) * 16).astype(np.int32)


def _ellipse_mask(shape, centre, axes, angle, origin) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    c = tuple(int(v) for v in _fixed(np.asarray(centre)[None], origin)[0])
    a = (max(round(axes[0] * SUPERSAMPLE * 16), 1), max(round(axes[1] * SUPERSAMPLE * 16), 1))
    cv2.ellipse(mask, c, a, angle, 0, 360, 255, -1, cv2.LINE_8, 4)
    return mask


def _coverage(mask: np.ndarray) -> np.ndarray:
    """Supersampled 0/255 mask -> float32 fraction of each raw pixel."""
    h, w = mask.shape[0] // SUPERSAMPLE, mask.shape[1] // SUPERSAMPLE
    return cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


@dataclass(frozen=True)
class _Appearance:
    """Per-sample draws of the style (R only except the glint)."""

    light: tuple[float, float, float]  # illumination: gradient strength, direction, vignette
    texture: float
    texture_at: tuple[int, int]
    lash: float  # shadow depth below the upper lid
    lash_width: float  # eyeball radii
    glint: np.ndarray  # offset: from the iris centre (S) or the eyeball centre (R), eyeball radii
    camera: tuple[float, float, float, float, int] | None  # resolution, defocus, gain, read noise, JPEG quality


def _appearance(rng: np.random.Generator, style: str) -> _Appearance:
    if style == "s":
        return _Appearance((0.0, 0.0, 0.0), 0.0, (0, 0), 0.0, 0.0, np.array(GLINT_ON_IRIS), None)
    light_angle = rng.uniform(0, 2 * np.pi)
    return _Appearance(
        light=(rng.uniform(*R_LIGHT), light_angle, rng.uniform(*R_VIGNETTE)),
        texture=rng.uniform(*R_TEXTURE),
        texture_at=(int(rng.integers(0, CANVAS[1])), int(rng.integers(0, CANVAS[0]))),
        lash=rng.uniform(*R_LASH),
        lash_width=rng.uniform(*R_LASH_WIDTH),
        glint=GLINT_FROM_LIGHT * np.array([math.cos(light_angle), math.sin(light_angle)]),  # toward the lit side
        camera=(
            rng.uniform(*R_RESOLUTION),
            rng.uniform(*R_DEFOCUS),
            rng.uniform(*R_GAIN),
            rng.uniform(*R_READ_NOISE),
            int(rng.integers(R_JPEG[0], R_JPEG[1] + 1)),
        ),
    )


def _illumination(app: _Appearance) -> np.ndarray:
    """Low-frequency light field [H, W]: a side gradient and a vignette, computed coarse and smoothed up."""
    strength, angle, vignette = app.light
    xs = np.linspace(-1, 1, CANVAS[0] // ILLUMINATION_GRID, dtype=np.float32)[None, :]
    ys = np.linspace(-1, 1, CANVAS[1] // ILLUMINATION_GRID, dtype=np.float32)[:, None]
    # xs, ys span 2: the gradient changes the light by `strength` edge to edge, the vignette dims the corners
    coarse = 1.0 + strength / 2 * (math.cos(angle) * xs + math.sin(angle) * ys) - vignette / 2 * (xs**2 + ys**2)
    return cv2.resize(coarse, CANVAS, interpolation=cv2.INTER_LINEAR)


def _box(points: np.ndarray, pad: int) -> tuple[np.ndarray, np.ndarray]:
    lo = np.maximum(np.floor(points.min(axis=0)).astype(int) - pad, 0)
    return lo, np.maximum(np.minimum(np.ceil(points.max(axis=0)).astype(int) + pad + 1, CANVAS), lo)


def _masks(geo: Geometry, app: _Appearance, style: str, lo: np.ndarray, hi: np.ndarray) -> dict[str, np.ndarray]:
    """Coverage [h, w] of each part over the box, from masks drawn at SUPERSAMPLE x. Parts are
    exclusive where they overlap: glint over iris over caruncle, all inside the lid opening."""
    size = hi - lo
    big = (size[1] * SUPERSAMPLE, size[0] * SUPERSAMPLE)
    opening = np.zeros(big, np.uint8)
    cv2.fillPoly(opening, [_fixed(np.concatenate([geo.upper, geo.lower[::-1]]), lo)], 255, cv2.LINE_8, 4)
    iris = _ellipse_mask(big, geo.iris_centre, geo.iris_axes, geo.iris_angle, lo) & opening
    pupil_axes = (geo.iris_axes[0] * geo.pupil, geo.iris_axes[1] * geo.pupil)
    pupil = _ellipse_mask(big, geo.iris_centre, pupil_axes, geo.iris_angle, lo) & iris
    caruncle = np.zeros(big, np.uint8)
    cv2.fillConvexPoly(caruncle, _fixed(geo.caruncle, lo), 255, cv2.LINE_8, 4)
    caruncle &= opening & ~iris
    glint_centre = (geo.iris_centre if style == "s" else CENTRE) + app.glint * R
    glint = _ellipse_mask(big, glint_centre, (GLINT_RADIUS * R, GLINT_RADIUS * R), 0.0, lo) & opening
    parts = {"open": opening, "iris": iris, "pupil": pupil, "caruncle": caruncle, "glint": glint}
    return {name: _coverage(mask) for name, mask in parts.items()}


def _paint(geo: Geometry, colours: Look, app: _Appearance, style: str) -> np.ndarray:
    """The scene, BGR [H, W, 3]: uint8 for S, float32 for R (its camera comes next)."""
    if style == "s":  # flat skin under even light
        light = None
        canvas = np.empty((CANVAS[1], CANVAS[0], 3), np.uint8)
        canvas[...] = np.rint(colours.skin).astype(np.uint8)
    else:
        light = _illumination(app)
        y, x = app.texture_at
        canvas = (light * (1.0 + app.texture * _skin_field()[y : y + CANVAS[1], x : x + CANVAS[0]]))[
            ..., None
        ] * colours.skin
    lo, hi = _box(np.concatenate([geo.upper, geo.lower, geo.crease]), 4)  # everything drawn lies in here
    region = canvas[lo[1] : hi[1], lo[0] : hi[0]].astype(np.float32)
    elo, ehi = _box(np.concatenate([geo.upper, geo.lower]), 1)  # the lid opening
    cov = _masks(geo, app, style, elo, ehi)
    eye_region = region[elo[1] - lo[1] : ehi[1] - lo[1], elo[0] - lo[0] : ehi[0] - lo[0]]

    xs = np.arange(elo[0], ehi[0], dtype=np.float32)[None, :]
    ys = np.arange(elo[1], ehi[1], dtype=np.float32)[:, None]
    dx, dy = xs - geo.iris_centre[0], ys - geo.iris_centre[1]
    rad = math.radians(geo.iris_angle)
    along, across = dx * math.cos(rad) + dy * math.sin(rad), dy * math.cos(rad) - dx * math.sin(rad)
    rho = np.sqrt((along / max(geo.iris_axes[0], 1e-3)) ** 2 + (across / geo.iris_axes[1]) ** 2)
    fibres = 1.0 + IRIS_FIBRE_DEPTH * np.cos(IRIS_STREAKS * np.arctan2(across, along))
    ring = 1.0 - LIMBUS_DEPTH * np.clip((rho - LIMBUS_START) / (1.0 - LIMBUS_START), 0, 1)
    iris_tone = (IRIS_CENTRE_TONE + (1.0 - IRIS_CENTRE_TONE) * np.minimum(rho, 1.0)) * fibres * ring
    corner = 1.0 - SCLERA_CORNER_SHADE * ((xs - CENTRE[0]) / (geo.identity.span * R)) ** 2
    # Each part's weight times its colour; the weights of a pixel sum to 1.
    weights = np.stack(
        [
            1.0 - cov["open"],
            (cov["open"] - cov["iris"] - cov["caruncle"]) * corner,
            (cov["iris"] - cov["pupil"]) * iris_tone,
            cov["pupil"],
            cov["caruncle"],
        ],
        axis=-1,
    )
    parts = np.stack([colours.sclera, colours.iris, np.full(3, PUPIL, np.float32), colours.caruncle])
    eye = weights[..., 1:] @ parts
    if light is not None:
        eye *= light[elo[1] : ehi[1], elo[0] : ehi[0], None]
    if app.lash:
        lid_y = np.interp(xs[0], geo.upper[:, 0], geo.upper[:, 1]).astype(np.float32)
        eye *= (1.0 - app.lash * np.clip(1.0 - (ys - lid_y) / (app.lash_width * R), 0, 1))[..., None]
    eye_region *= weights[..., :1]
    eye_region += eye
    eye_region += cov["glint"][..., None] * (GLINT - eye_region)
    # The lash line along the upper lid and the lid crease above it: anti-aliased darkening.
    size = hi - lo
    ink = np.zeros((size[1], size[0]), np.uint8)
    cv2.polylines(ink, [np.round((geo.upper - lo) * 16).astype(np.int32)], False, 255, LASH_LINE[style], cv2.LINE_AA, 4)
    crease = np.zeros_like(ink)
    cv2.polylines(crease, [np.round((geo.crease - lo) * 16).astype(np.int32)], False, 255, CREASE_LINE, cv2.LINE_AA, 4)
    region *= (1.0 - (LASH_DARKNESS / 255) * ink - (CREASE_DARKNESS / 255) * crease)[..., None]
    canvas[lo[1] : hi[1], lo[0] : hi[0]] = (
        np.clip(region, 0, 255) if light is not None else np.clip(np.rint(region), 0, 255)
    )
    return canvas


def _camera(image: np.ndarray, settings, raw_per_patch: float, rng: np.random.Generator) -> np.ndarray:
    """R's camera at the patch's scale: the eye imaged at a fraction of the patch resolution,
    defocus, Poisson-Gaussian noise and JPEG, then brought back up to the raw frame."""
    resolution, defocus, gain, read, quality = settings
    mid = (round(CANVAS[0] / raw_per_patch), round(CANVAS[1] / raw_per_patch))
    low = cv2.resize(image, (round(mid[0] * resolution), round(mid[1] * resolution)), interpolation=cv2.INTER_AREA)
    patch = cv2.GaussianBlur(cv2.resize(low, mid, interpolation=cv2.INTER_CUBIC), (0, 0), defocus)
    level = np.clip(patch.mean(axis=2, keepdims=True), 0, 255)
    patch = patch + np.sqrt(gain * level + read**2) * rng.standard_normal(level.shape, dtype=np.float32)
    jpeg = cv2.imencode(".jpg", np.clip(patch, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
    return cv2.resize(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), CANVAS, interpolation=cv2.INTER_CUBIC)


def render_eye(
    seed: int, index: int, style: str, person: str | None = None, geometry_from: str | None = None
) -> EyeRender:
    """Sample `index` (a person's k-th sample when `person` is "pXX", else a one-sample identity) in
    `style`. `geometry_from` names the style whose geometry (gaze, head, lids, iris, framing) to draw:
    the other style gives the twin, the same eye re-rendered in this style's look."""
    for name in (style, geometry_from or style):
        if name not in STYLES:
            raise UsageError(f"--style {name}: expected one of {', '.join(STYLES)}")
    geo = geometry(seed, index, geometry_from or style, person)
    subject = _subject_key(person, index)
    rng = np.random.default_rng((seed, _SAMPLE_LOOK, STYLES.index(style), *subject, index if person is not None else 0))
    app = _appearance(rng, style)
    image = _paint(geo, look(seed, subject, style), app, style)
    matrix = eye_patch.crop_matrix(geo.margin, geo.caruncle)
    if app.camera is not None:
        image = _camera(image, app.camera, 1.0 / matrix[0, 0], rng)
    look_vec = eye_patch.look_vector(*geo.gaze)
    marks = eye_patch.landmarks(matrix, geo.margin, geo.iris, look_vec, CANVAS)
    return EyeRender(
        image=image,
        gaze=geo.gaze,
        head=geo.head,
        person=person,
        style=style,
        margin=geo.margin,
        caruncle=geo.caruncle,
        iris=geo.iris,
        landmarks=marks,
    )


# --- writing sets ---


def _unity_points(points: np.ndarray) -> list[str]:
    """Raw points -> UnityEyes strings "(x, y, z)" with the origin at the bottom-left."""
    return [f"({x!r}, {CANVAS[1] - y!r}, 0.0)" for x, y in points.tolist()]


def unity_record(render: EyeRender) -> dict:
    """The UnityEyes JSON of a render, plus `gcgan_person` when it belongs to a person."""
    record = {
        "eye_details": {"look_vec": "({!r}, {!r}, {!r}, 0.0)".format(*render.look_vec)},
        "head_pose": "({!r}, {!r}, {!r})".format(*eye_patch.head_to_unity(*render.head)),
        "interior_margin_2d": _unity_points(render.margin),
        "caruncle_2d": _unity_points(render.caruncle),
        "iris_2d": _unity_points(render.iris),
    }
    if render.person is not None:
        record["gcgan_person"] = render.person
    return record


def _plan(n: int, persons: int | None, first_person: int) -> list[tuple[str | None, int, int]]:
    """(person, k, global index) per sample: sample i goes to person K + i mod P as its (i div P)-th."""
    if persons is None:
        return [(None, i, i) for i in range(n)]
    return [(f"p{first_person + i % persons:02d}", i // persons, i) for i in range(n)]


def write_set(
    out: Path,
    style: str,
    fmt: str,
    n: int,
    seed: int = 0,
    persons: int | None = None,
    first_person: int = 0,
    twin: bool = False,
    overwrite: bool = False,
    on_item: Callable[[], None] = lambda: None,
) -> dict:
    """Render n samples to `out` in `fmt` ("unity": a folder of N.jpg + N.json; "mpii": one .h5 of
    /pXX/{image, gaze, head, landmarks}). persons=None takes the style's default: one identity per
    sample for S, p00..p14 for R. twin=True also writes `<out>-twin` (`<stem>-twin.h5`): the same ids,
    labels and geometry in the other style. Files appear under temp names and are renamed when done;
    an existing set is replaced only with overwrite=True. on_item is called once per image written."""
    if style not in STYLES:
        raise UsageError(f"--style {style}: expected one of {', '.join(STYLES)}")
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    if n < 1:
        raise UsageError(f"--n {n}: must be at least 1")
    persons = DEFAULT_PERSONS[style] if persons is None else persons
    if persons is not None and (persons < 1 or first_person < 0 or first_person + persons > 100):
        raise UsageError(f"--persons {persons} from p{first_person:02d}: persons must lie in p00..p99")
    if fmt == "mpii" and persons is None:
        raise UsageError("--format mpii stores samples by person (/pXX groups); pass --persons N")
    out = Path(out)
    if fmt == "mpii" and out.suffix not in (".h5", ".hdf5"):
        raise UsageError(f"{out}: an mpii set is one .h5 file; name it OUT.h5")
    twin_out = (
        (out.with_name(f"{out.stem}-twin{out.suffix}") if fmt == "mpii" else out.with_name(f"{out.name}-twin"))
        if twin
        else None
    )
    for path in (out, twin_out):
        if not overwrite and path is not None and path.exists() and (path.is_file() or any(path.iterdir())):
            raise UsageError(f"{path} already exists; pass --overwrite to replace it, or choose a new path")
    out.parent.mkdir(parents=True, exist_ok=True)
    plan = _plan(n, persons, first_person)
    other = STYLES[1 - STYLES.index(style)]
    targets = [(out, style)] + ([(twin_out, other)] if twin else [])
    temps = [temp_path(path) for path, _ in targets]
    try:
        if fmt == "unity":
            _write_unity(temps, targets, plan, seed, style, on_item)
        else:
            _write_mpii(temps, targets, plan, seed, style, on_item)
        for temp, (path, _) in zip(temps, targets):
            replace_path(temp, path)
    finally:
        for temp in temps:
            remove_path(temp)
    return {
        "out": str(out),
        "twin": str(twin_out) if twin else None,
        "format": fmt,
        "style": style,
        "n": n,
        "seed": seed,
        "persons": sorted({p for p, _, _ in plan if p is not None}) or None,
    }


def _renders(plan, seed: int, geometry_style: str, targets):
    for person, k, i in plan:
        yield i, [render_eye(seed, k, look_style, person, geometry_from=geometry_style) for _, look_style in targets]


def _write_unity(temps, targets, plan, seed, style, on_item) -> None:
    for temp in temps:
        temp.mkdir()
    for i, renders in _renders(plan, seed, style, targets):
        for temp, render in zip(temps, renders):
            jpeg = cv2.imencode(".jpg", render.image, [cv2.IMWRITE_JPEG_QUALITY, UNITY_QUALITY])[1]
            (temp / f"{i + 1}.jpg").write_bytes(jpeg.tobytes())
            (temp / f"{i + 1}.json").write_text(json.dumps(unity_record(render), indent=1))
            on_item()


def _write_mpii(temps, targets, plan, seed, style, on_item) -> None:
    columns = [{} for _ in targets]  # per set: person -> (patches, gazes, heads, landmarks)
    for _, renders in _renders(plan, seed, style, targets):
        for table, render in zip(columns, renders):
            rows = table.setdefault(render.person, ([], [], [], []))
            for column, value in zip(rows, (render.patch(), render.gaze, render.head, render.landmarks)):
                column.append(value)
            on_item()
    for temp, table in zip(temps, columns):
        with h5py.File(temp, "w") as handle:
            for person in sorted(table):
                group = handle.create_group(person)
                dtypes = (np.uint8, np.float32, np.float32, np.float32)
                for name, values, dtype in zip(("image", "gaze", "head", "landmarks"), table[person], dtypes):
                    group.create_dataset(name, data=np.asarray(values, dtype=dtype), track_times=False)

"""Procedural eye-region strips with exact part masks and known gaze: data that needs no download.

Each strip has the layout of a FaceMesh strip (`eye_crop.band_rows`, classes of `masks`): skin
inside a face oval, two brows, a nose wedge, two almond eyes, and an iris in each eye that moves
with the gaze the way ETH-XGaze's gaze arrow does: right in the image for negative yaw, up for
positive pitch. The gaze shows the way it does in real eyes, so that it survives a 64 px strip:
the iris travels as on a sphere (0.38 eye widths x sin(angle)), it is foreshortened to an
ellipse whose minor axis lies along its displacement, and the lids follow the pitch (the upper
lid rises when looking up and drops over the iris when looking down; the lower lid follows a
little). Shapes are drawn once into the mask, lids occluding the iris; every pixel's colour then
comes from the texture of its mask class, so image and mask agree by construction.

Identity (skin tone, eye shape and opening, brows, nose, iris colour, face oval) is drawn per
subject, so a subject's strips differ only in gaze, lighting and sensor effects; everything is a
function of (seed, index) alone, independent of the worker that renders it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from gcgan_cli.data import masks
from gcgan_cli.data.eye_crop import band_rows


@dataclass(frozen=True)
class GazePrior:
    """Truncated normal (pitch, yaw) in radians."""

    pitch_mean: float
    pitch_std: float
    pitch_range: tuple[float, float]
    yaw_mean: float
    yaw_std: float
    yaw_range: tuple[float, float]


# ETH-XGaze training labels (the reference's committed label set of 14,464 strips): pitch mean -0.141 std 0.239
# in [-0.7026, 0.3953], yaw mean -0.049 std 0.571 in [-1.5062, 1.4829].
ETHX_GAZE = GazePrior(-0.141, 0.239, (-0.7026, 0.3953), -0.049, 0.571, (-1.5062, 1.4829))
# Portrait photos mostly look near the camera.
PORTRAIT_GAZE = GazePrior(-0.05, 0.15, (-0.5, 0.35), 0.0, 0.3, (-0.9, 0.9))


@dataclass(frozen=True)
class Style:
    """The look of a domain. Colours are RGB; lengths are fractions of the strip size."""

    description: str
    gaze: GazePrior
    skin_tones: tuple[tuple[int, int, int], ...]  # identities blend two neighbours
    backgrounds: tuple[tuple[int, int, int], ...]
    light: tuple[float, float]  # strength of the lighting gradient across the face
    blur: tuple[float, float]  # Gaussian sigma, pixels at 256
    noise: tuple[float, float]  # sensor noise std, 0..255 scale
    contrast: float
    saturation: float


STYLES: dict[str, Style] = {
    "studio": Style(
        description="ETH-XGaze-like: even studio light, neutral palette, sharp",
        gaze=ETHX_GAZE,
        skin_tones=((236, 200, 178), (214, 168, 138), (176, 128, 96), (122, 84, 60), (84, 58, 44)),
        backgrounds=((40, 40, 44), (70, 70, 74), (96, 96, 100)),
        light=(0.05, 0.25),
        blur=(0.0, 0.6),
        noise=(1.0, 4.0),
        contrast=1.0,
        saturation=1.0,
    ),
    "wild": Style(
        description="CelebA-like stand-in for the unlabelled domain: warm palette, strong side light, soft focus, "
        "high contrast",
        gaze=PORTRAIT_GAZE,
        skin_tones=((250, 212, 184), (232, 176, 140), (198, 136, 98), (150, 96, 66)),
        backgrounds=((120, 60, 40), (40, 80, 120), (160, 140, 90), (30, 30, 30)),
        light=(0.25, 0.55),
        blur=(0.8, 1.6),
        noise=(0.5, 2.0),
        contrast=1.25,
        saturation=1.3,
    ),
}
DEFAULT_STYLE = "studio"

BROW_COLOURS = ((40, 28, 20), (70, 48, 30), (110, 80, 50), (20, 18, 16), (150, 120, 80))
IRIS_COLOURS = ((80, 50, 25), (50, 32, 18), (70, 110, 150), (90, 120, 70), (120, 90, 50))
SCLERA = (232, 226, 220)
PUPIL = (18, 16, 16)
GLINT = (245, 245, 245)
# Texture ids beyond the classes: parts of the iris class with their own colour.
_PUPIL, _RING, _GLINT = len(masks.CLASS_NAMES), len(masks.CLASS_NAMES) + 1, len(masks.CLASS_NAMES) + 2


@dataclass(frozen=True)
class Identity:
    """Per-subject shape and colour; lengths are fractions of the strip size."""

    eye_width: float
    eye_spacing: float  # distance between eye centres
    eye_height: float  # vertical position of the eye centres
    lid_upper: float  # opening above / below the corner line, fractions of the eye width
    lid_lower: float
    tilt: float  # outer corner raised by this fraction of the eye width
    iris_radius: float  # fraction of the eye width
    brow_gap: float
    brow_thickness: float
    brow_arch: float
    brow_density: float
    nose_top: float
    nose_top_width: float
    nose_bottom_width: float
    face_width: float  # semi-axes of the face oval
    face_height: float
    skin: np.ndarray
    brow: np.ndarray
    iris: np.ndarray
    background: np.ndarray


@dataclass(frozen=True)
class SyntheticStrip:
    rgb: np.ndarray  # [S, S, 3] uint8
    mask: np.ndarray  # [S, S] uint8 class ids
    pitch: float
    yaw: float
    subject: int
    iris_centres: np.ndarray  # [2, 2] (x, y) pixels, the subject's right eye first


def _pick_colour(rng: np.random.Generator, palette, jitter: float) -> np.ndarray:
    return np.clip(np.array(palette[rng.integers(len(palette))], np.float32) + rng.normal(0, jitter, 3), 0, 255)


@lru_cache(maxsize=256)
def identity(seed: int, subject: int, style_name: str) -> Identity:
    """The subject's face, a function of (seed, subject, style_name) only."""
    style = STYLES[style_name]
    rng = np.random.default_rng((seed, 0, subject))
    tones = np.array(style.skin_tones, dtype=np.float32)
    i = rng.integers(len(tones) - 1)
    skin = tones[i] + rng.uniform() * (tones[i + 1] - tones[i]) + rng.normal(0, 4, 3)
    return Identity(
        eye_width=rng.uniform(0.185, 0.21),
        eye_spacing=rng.uniform(0.40, 0.46),
        eye_height=rng.uniform(0.49, 0.53),
        lid_upper=rng.uniform(0.20, 0.34),
        lid_lower=rng.uniform(0.12, 0.20),
        tilt=rng.uniform(-0.03, 0.07),
        iris_radius=rng.uniform(0.20, 0.24),
        brow_gap=rng.uniform(0.075, 0.11),
        brow_thickness=rng.uniform(0.022, 0.05),
        brow_arch=rng.uniform(0.008, 0.035),
        brow_density=rng.uniform(0.6, 0.95),
        nose_top=rng.uniform(0.50, 0.56),
        nose_top_width=rng.uniform(0.04, 0.07),
        nose_bottom_width=rng.uniform(0.13, 0.19),
        face_width=rng.uniform(0.42, 0.50),
        face_height=rng.uniform(0.58, 0.72),
        skin=np.clip(skin, 0, 255).astype(np.float32),
        brow=_pick_colour(rng, BROW_COLOURS, 6),
        iris=_pick_colour(rng, IRIS_COLOURS, 10),
        background=_pick_colour(rng, style.backgrounds, 12),
    )


def sample_gaze(rng: np.random.Generator, prior: GazePrior) -> tuple[float, float]:
    """(pitch, yaw) from the truncated normal prior (rejection sampling)."""

    def draw(mean, std, bounds):
        for _ in range(64):
            value = rng.normal(mean, std)
            if bounds[0] <= value <= bounds[1]:
                return float(value)
        return float(np.clip(mean, *bounds))

    return draw(prior.pitch_mean, prior.pitch_std, prior.pitch_range), draw(
        prior.yaw_mean, prior.yaw_std, prior.yaw_range
    )


def _image_rng(seed: int, index: int, style: Style) -> tuple[np.random.Generator, tuple[float, float]]:
    """The per-image random stream, whose first draws are the gaze; render's stages draw the rest in turn."""
    rng = np.random.default_rng((seed, 1, index))
    return rng, sample_gaze(rng, style.gaze)


def gaze_of(seed: int, index: int, style_name: str = DEFAULT_STYLE) -> tuple[float, float]:
    """The (pitch, yaw) that `render(seed, index, style_name=style_name)` will draw, without rendering."""
    return _image_rng(seed, index, STYLES[style_name])[1]


# Iris travel per unit sin(angle), in eye widths: an eyeball radius of about 12 mm behind a
# palpebral fissure of about 30 mm.
IRIS_TRAVEL = 0.38
# Lid openings (fractions of the eye width) change by these times sin(pitch): the upper lid rides
# with the eye, the lower lid much less; an opening never closes below LID_MIN.
UPPER_LID_FOLLOW = 0.26
LOWER_LID_FOLLOW = 0.07
LID_MIN = 0.04


def iris_offset(pitch: float, yaw: float, eye_width: float) -> tuple[float, float]:
    """Iris displacement (dx, dy) from the eye centre, in the direction of the gaze arrow."""
    return -IRIS_TRAVEL * eye_width * np.sin(yaw) * np.cos(pitch), -IRIS_TRAVEL * eye_width * np.sin(pitch)


def lid_openings(pitch: float, ident: Identity) -> tuple[float, float]:
    """(upper, lower) lid openings above / below the corner line at this pitch, eye widths."""
    lift = float(np.sin(pitch))
    return max(ident.lid_upper + UPPER_LID_FOLLOW * lift, LID_MIN), max(
        ident.lid_lower - LOWER_LID_FOLLOW * lift, LID_MIN
    )


def iris_axes(pitch: float, yaw: float) -> tuple[np.ndarray, float]:
    """(unit direction of the iris displacement in the image, cosine of the gaze's angle to the
    camera axis): a disk turned by that angle is seen as an ellipse shortened along the direction."""
    direction = np.array([-np.sin(yaw) * np.cos(pitch), -np.sin(pitch)], np.float32)
    length = float(np.hypot(*direction))
    unit = direction / length if length > 1e-6 else np.array([1.0, 0.0], np.float32)
    return unit, float(np.cos(pitch) * np.cos(yaw))


_T13 = np.linspace(-1.0, 1.0, 13, dtype=np.float32)
_T9 = np.linspace(-1.0, 1.0, 9, dtype=np.float32)
FACE_CENTRE = np.array([0.5, 0.72], np.float32)  # of the face oval, in strip fractions
NOSE_BOTTOM = 0.8  # row of the nose wedge's bottom edge, strip fractions
_OUTWARD = np.array([[-1.0], [1.0]], np.float32)  # image-left eye, image-right eye
# Brows: this many eye widths long, shifted toward the nose by BROW_INWARD of their length, and
# thinner at the outer end by BROW_TAPER of their thickness.
BROW_LENGTH = 1.25
BROW_INWARD = 0.08
BROW_TAPER = 0.45

# Framing: each image zooms the strip by a uniform factor in FRAMING_ZOOM and shifts its centre by
# a normal offset of FRAMING_SHIFT_STD strip sizes in x and in y.
FRAMING_ZOOM = (0.97, 1.03)
FRAMING_SHIFT_STD = 0.008
EXPOSURE_STD = 0.04  # of the overall brightness factor, about 1
NOISE_REFERENCE = 128  # a style's noise std is in 0..255 units at a pixel of this brightness
GRADE_PIVOT = 128  # contrast stretches colours away from this grey
RING_SHADE = 0.45  # the limbal ring is the iris colour times this
BLUR_REFERENCE_SIZE = 256  # a style's blur sigma is in pixels at this strip size
MIN_BLUR_SIGMA = 0.25  # a smaller sigma leaves the strip unblurred
# The nose: flanks at NOSE_FLANK of their colour, rising by up to NOSE_RIDGE_GAIN along its middle.
NOSE_FLANK = 0.9
NOSE_RIDGE_GAIN = 0.16
# Eye details, in iris radii from the iris centre (elliptical, so 1.0 is the limbus).
PUPIL_RADIUS = 0.42
RING_RADIUS = 0.85  # the limbal ring lies between this and the limbus
GLINT_OFFSET = 0.35  # the catch light sits this far up and left of the centre ...
GLINT_RADIUS = 0.16  # ... with this radius
EYE_BOX_MARGIN = 3  # pixels around the eye outlines that the eye box adds
MIN_FORESHORTENING = 0.2  # the iris ellipse is never thinner than this times its width
SCLERA_CORNER_SHADE = 0.3  # the sclera darkens by this much at the eye corners
IRIS_RAMP = (0.7, 0.45)  # the iris brightens outward: factor first + second x radius
LASH_WIDTH_STEP = 128  # lash lines are one pixel wide per this many pixels of strip size
_LASH = np.array([35.0, 25.0, 22.0], np.float32)[:, None, None]  # lash colour, RGB


def _eye_contours(centres: np.ndarray, width: float, ident: Identity, pitch: float) -> np.ndarray:
    """Almond outlines [2, 24, 2] of both eyes at this pitch, upper lid first (13 points, corner
    to corner). Two parabolic lids between the corners (convex); the outer corner is raised by
    tilt x width.
    """
    t = _T13[None, :]
    x = np.broadcast_to(t * width / 2, (2, 13))
    lift = -ident.tilt * width * t * _OUTWARD / 2
    lids = 1 - t**2
    upper, lower = lid_openings(pitch, ident)
    top = np.stack([x, lift - upper * width * lids], axis=2)
    bottom = np.stack([x, lift + lower * width * lids], axis=2)[:, -2:0:-1]
    return np.concatenate([top, bottom], axis=1) + centres[:, None, :]


def _brow_points(centres: np.ndarray, ident: Identity, scale: float) -> np.ndarray:
    """Thick arched bands above both eyes, as points [2, 18, 2]; their hulls are the brows."""
    width = ident.eye_width * BROW_LENGTH * scale
    t = _T9[None, :]
    x = centres[:, :1] + t * width / 2 - _OUTWARD * BROW_INWARD * width  # reaching toward the nose
    base = centres[:, 1:] - ident.brow_gap * scale - ident.brow_arch * scale * (1 - t**2)
    half = ident.brow_thickness * scale * (1.0 - BROW_TAPER * t * _OUTWARD) / 2  # thicker at the inner end
    return np.concatenate([np.stack([x, base - half], 2), np.stack([x, base + half], 2)], axis=1)


@dataclass(frozen=True)
class Outline:
    """A subject's part outlines in strip fractions, before the per-image framing jitter."""

    eyes: np.ndarray  # [2, 2] eye centres, image-left eye first
    brows: np.ndarray  # [2, 18, 2] points whose hulls are the brows
    nose: np.ndarray  # [4, 2] wedge: top left, top right, bottom right, bottom left


@lru_cache(maxsize=256)
def outline(seed: int, subject: int, style_name: str) -> Outline:
    ident = identity(seed, subject, style_name)
    half_spacing = ident.eye_spacing / 2
    eyes = np.array([[0.5 - half_spacing, ident.eye_height], [0.5 + half_spacing, ident.eye_height]], np.float32)
    top, bottom = ident.nose_top_width / 2, ident.nose_bottom_width / 2
    nose = [
        [0.5 - top, ident.nose_top],
        [0.5 + top, ident.nose_top],
        [0.5 + bottom, NOSE_BOTTOM],
        [0.5 - bottom, NOSE_BOTTOM],
    ]
    return Outline(eyes=eyes, brows=_brow_points(eyes, ident, 1.0), nose=np.array(nose, np.float32))


def _fill_convex(canvas: np.ndarray, polygon: np.ndarray, value: int) -> None:
    """OpenCV's convex fill from 1/16-px vertices (pixel i spans [i, i+1)). Its edge rule takes a
    little more than the pixel-centre rule of `masks.fill_hull`, which does not matter here: a
    synthetic part *is* what gets painted, and the image is coloured from the mask afterwards."""
    fixed = np.round((polygon.reshape(-1, 2) - 0.5) * 16).astype(np.int32)
    cv2.fillConvexPoly(canvas, fixed, int(value), cv2.LINE_8, 4)


def _fill_ellipse(canvas: np.ndarray, centre: np.ndarray, axes: tuple[float, float], value: int) -> None:
    """The axis-aligned face oval, with the same 1/16-px convention as `_fill_convex`."""
    c = (round((float(centre[0]) - 0.5) * 16), round((float(centre[1]) - 0.5) * 16))
    cv2.ellipse(canvas, c, (round(axes[0] * 16), round(axes[1] * 16)), 0, 0, 360, int(value), -1, cv2.LINE_8, 4)


NOISE_FIELD_SEED = 2024  # one fixed field for every strip and worker


@lru_cache(maxsize=8)
def _noise_field(size: int) -> np.ndarray:
    """A fixed [2S, 2S] field of unit Gaussian noise; each strip reads a random window of it."""
    return np.random.default_rng(NOISE_FIELD_SEED).standard_normal((2 * size, 2 * size), dtype=np.float32)


@lru_cache(maxsize=8)
def _columns(size: int) -> np.ndarray:
    return (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1


def render(
    seed: int,
    index: int,
    size: int = 256,
    style_name: str = DEFAULT_STYLE,
    per_subject: int = 20,
    gaze: tuple[float, float] | None = None,
) -> SyntheticStrip:
    """Strip number `index` of the dataset `seed`; subject = index // per_subject.

    `gaze` (pitch, yaw) in radians replaces the drawn gaze, all else unchanged (gaze sweeps).
    The stages take their draws from the image's random stream in turn, so their order is fixed:
    geometry (framing), lighting, sensor noise, camera blur; mask painting and colour draw nothing.
    """
    style = STYLES[style_name]
    subject = index // per_subject
    ident = identity(seed, subject, style_name)
    rng, (pitch, yaw) = _image_rng(seed, index, style)
    if gaze is not None:
        pitch, yaw = float(gaze[0]), float(gaze[1])
    parts = _place_parts(rng, outline(seed, subject, style_name), ident, size, pitch, yaw)
    mask, texture, eye_area = _paint_mask(parts, size)
    shade = _lighting(rng, style, size)
    _add_sensor_noise(shade, rng, style, size)
    image = _colour(texture, _palette(ident, style), shade)
    top = band_rows(size)[0]
    _shade_nose(image, texture, top, parts)
    eye_area.detail(image, texture, top, parts.eye_w, size)
    rgb = np.zeros((size, size, 3), np.uint8)
    rgb[top : top + len(texture)] = _camera_blur(image, rng, style, size)
    return SyntheticStrip(rgb, mask, pitch, yaw, subject, parts.iris_centres)


@dataclass(frozen=True)
class _Parts:
    """One image's parts in pixels: the subject's outline framed by the image's jitter, posed at its gaze."""

    face_centre: np.ndarray  # [2]
    face_axes: tuple[float, float]  # semi-axes of the face oval
    brows: np.ndarray  # [2, 18, 2] points whose hulls are the brows
    nose: np.ndarray  # [4, 2] wedge: top left, top right, bottom right, bottom left
    nose_half_bottom: float  # half the wedge's bottom width
    eyes: np.ndarray  # [2, 2] eye centres, image-left eye first
    contours: np.ndarray  # [2, 24, 2] eye outlines, upper lid first
    eye_w: float
    iris_centres: np.ndarray  # [2, 2]
    iris_r: float
    iris_dir: np.ndarray  # unit direction of the iris displacement
    foreshortening: float  # the iris ellipse's minor / major axis

    @property
    def nose_x(self) -> float:
        return float(self.nose[:, 0].mean())

    @property
    def nose_top(self) -> float:
        return float(self.nose[0, 1])


def _place_parts(
    rng: np.random.Generator, shapes: Outline, ident: Identity, size: int, pitch: float, yaw: float
) -> _Parts:
    """Geometry: frame the outline (zoom and shift about the strip centre), then pose lids and irises."""
    zoom, shift_x, shift_y = rng.uniform(*FRAMING_ZOOM), *rng.normal(0, FRAMING_SHIFT_STD, 2)
    scale = size * zoom  # strip fractions -> pixels, about the jittered strip centre
    origin = np.array([size / 2 + shift_x * size, size / 2 + shift_y * size], np.float32) - 0.5 * scale
    eye_w = ident.eye_width * scale
    eyes = origin + shapes.eyes * scale
    iris_dir, foreshortening = iris_axes(pitch, yaw)
    return _Parts(
        face_centre=origin + FACE_CENTRE * scale,
        face_axes=(ident.face_width * scale, ident.face_height * scale),
        brows=origin + shapes.brows * scale,
        nose=origin + shapes.nose * scale,
        nose_half_bottom=ident.nose_bottom_width * scale / 2,
        eyes=eyes,
        contours=origin + _eye_contours(shapes.eyes, ident.eye_width, ident, pitch) * scale,
        eye_w=eye_w,
        iris_centres=eyes + np.array(iris_offset(pitch, yaw, eye_w), np.float32),
        iris_r=ident.iris_radius * eye_w,
        iris_dir=iris_dir,
        foreshortening=foreshortening,
    )


def _paint_mask(parts: _Parts, size: int) -> tuple[np.ndarray, np.ndarray, _EyeArea]:
    """Mask painting, in the order of masks.PAINT_ORDER (the strip shows no mouth), lids occluding
    the iris. Returns the mask [S, S], the band's texture ids (the classes, plus pupil, limbal ring
    and catch light inside the iris) and the eye box that later adds the eye details."""
    mask = np.zeros((size, size), np.uint8)
    _fill_ellipse(mask, parts.face_centre, parts.face_axes, masks.SKIN)
    for brow in parts.brows:
        _fill_convex(mask, cv2.convexHull(brow), masks.EYEBROW)
    _fill_convex(mask, parts.nose, masks.NOSE)
    eye_area = _EyeArea(parts, size)
    eye_area.paint(mask)
    masks.blank_bands(mask)
    top, bottom = band_rows(size)
    texture = mask[top:bottom].copy()
    eye_area.paint_iris_texture(texture, top)
    return mask, texture, eye_area


def _lighting(rng: np.random.Generator, style: Style, size: int) -> np.ndarray:
    """Lighting: the gain [band rows, S] that multiplies every colour, an exposure factor times a
    linear gradient across the face in a random direction."""
    top, bottom = band_rows(size)
    theta, light = rng.uniform(0, 2 * np.pi), rng.uniform(*style.light)
    exposure = 1.0 + rng.normal(0, EXPOSURE_STD)
    xs = _columns(size)  # -1..1 across the strip, so the gain changes by `light` from side to side
    return exposure + 0.5 * light * (np.cos(theta) * xs[None, :] + np.sin(theta) * xs[top:bottom, None])


def _add_sensor_noise(shade: np.ndarray, rng: np.random.Generator, style: Style, size: int) -> None:
    """Sensor noise, added to the gain, so multiplicative: brighter pixels get more, as with shot
    noise. A random window of the fixed noise field; the gain stays > 0."""
    oy, ox = rng.integers(0, size, 2)
    rows = shade.shape[0]
    shade += _noise_field(size)[oy : oy + rows, ox : ox + size] * (rng.uniform(*style.noise) / NOISE_REFERENCE)


def _palette(ident: Identity, style: Style) -> np.ndarray:
    """Colour grading: lookup tables [3, 256] from texture id to RGB, one colour per class and iris
    part, saturated and contrasted by the style."""
    colours = np.zeros((_GLINT + 1, 3), np.float32)
    colours[masks.BACKGROUND] = ident.background
    colours[masks.SKIN] = colours[masks.NOSE] = ident.skin
    colours[masks.EYEBROW] = ident.skin * (1 - ident.brow_density) + ident.brow * ident.brow_density
    colours[masks.EYE] = SCLERA
    colours[masks.IRIS] = ident.iris
    colours[_RING] = ident.iris * RING_SHADE
    colours[_PUPIL] = PUPIL
    colours[_GLINT] = GLINT
    grey = colours.mean(axis=1, keepdims=True)
    colours = np.clip(GRADE_PIVOT + (grey + (colours - grey) * style.saturation - GRADE_PIVOT) * style.contrast, 0, 255)
    lut = np.zeros((3, 256), np.uint8)
    lut[:, : len(colours)] = colours.T.round()
    return lut


def _colour(texture: np.ndarray, lut: np.ndarray, shade: np.ndarray) -> np.ndarray:
    """The band's image [3, band rows, S] float32: each pixel's colour times the gain (channel-first,
    so the gain broadcasts cheaply)."""
    image = np.empty((3, *texture.shape), np.float32)
    for channel in range(3):
        np.multiply(cv2.LUT(texture, lut[channel]), shade, out=image[channel])
    return image


def _camera_blur(image: np.ndarray, rng: np.random.Generator, style: Style, size: int) -> np.ndarray:
    """The band as uint8 [band rows, S, 3], clipped at 255 and blurred by the style's lens."""
    np.minimum(image, 255, out=image)
    strip = cv2.merge(list(image.astype(np.uint8)))
    sigma = rng.uniform(*style.blur) * size / BLUR_REFERENCE_SIZE
    if sigma > MIN_BLUR_SIGMA:
        strip = cv2.GaussianBlur(strip, (0, 0), sigma)
    return strip


def _shade_nose(image: np.ndarray, band: np.ndarray, top: int, parts: _Parts) -> None:
    """A lit ridge down the middle of the nose, darker flanks (in place)."""
    nose_x, half_bottom = parts.nose_x, parts.nose_half_bottom
    y0 = max(int(parts.nose_top) - top, 0)
    x0, x1 = max(int(nose_x - half_bottom) - 1, 0), min(int(nose_x + half_bottom) + 2, band.shape[1])
    if y0 >= band.shape[0] or x1 <= x0:
        return
    xs = np.arange(x0, x1, dtype=np.float32) + 0.5
    ridge = NOSE_FLANK + NOSE_RIDGE_GAIN * np.clip(1 - np.abs(xs - nose_x) / max(half_bottom, 1e-3), 0, 1)
    region = image[:, y0:, x0:x1]
    region *= np.where(band[y0:, x0:x1] == masks.NOSE, ridge[None, :], 1.0)


class _EyeArea:
    """One pixel box around both eyes: their mask (eye, iris) and their texture details.

    Each column belongs to the eye on its side of the nose line, so both eyes are handled by
    the same handful of array operations.
    """

    def __init__(self, parts: _Parts, size: int):
        contours, eyes, iris_centres, iris_dir = parts.contours, parts.eyes, parts.iris_centres, parts.iris_dir
        lo = np.floor(contours.min(axis=(0, 1))).astype(int) - EYE_BOX_MARGIN
        hi = np.ceil(contours.max(axis=(0, 1))).astype(int) + EYE_BOX_MARGIN
        self.x0, self.y0 = max(lo[0], 0), max(lo[1], 0)
        self.x1, self.y1 = max(min(hi[0], size), self.x0), max(min(hi[1], size), self.y0)
        self.contours = contours - np.array([self.x0, self.y0], np.float32)
        xs = np.arange(self.x0, self.x1, dtype=np.float32)[None, :] + 0.5
        ys = np.arange(self.y0, self.y1, dtype=np.float32)[:, None] + 0.5
        side = (xs >= parts.nose_x).astype(np.intp)  # 0: image-left eye, 1: image-right eye
        self.iris_x, self.iris_y = xs - iris_centres[side, 0], ys - iris_centres[side, 1]
        along = (self.iris_x * iris_dir[0] + self.iris_y * iris_dir[1]) / max(parts.foreshortening, MIN_FORESHORTENING)
        across = self.iris_y * iris_dir[0] - self.iris_x * iris_dir[1]
        self.rho = np.sqrt(along**2 + across**2) / parts.iris_r  # elliptical radius: 1 on the limbus
        self.from_centre = xs - eyes[side, 0]
        self.iris_r = parts.iris_r

    def paint(self, mask: np.ndarray) -> None:
        eye = np.zeros((self.y1 - self.y0, self.x1 - self.x0), np.uint8)
        for contour in self.contours:
            _fill_convex(eye, contour, 1)
        eye = eye.astype(bool)
        region = mask[self.y0 : self.y1, self.x0 : self.x1]
        region[eye] = masks.EYE
        region[eye & (self.rho <= 1.0)] = masks.IRIS

    def paint_iris_texture(self, texture: np.ndarray, top: int) -> None:
        """Mark pupil, limbal ring and catch light inside the iris of the band's texture ids."""
        y0, y1 = max(self.y0 - top, 0), min(self.y1 - top, texture.shape[0])
        if y1 <= y0:
            return
        rows = slice(y0 + top - self.y0, y1 + top - self.y0)
        region = texture[y0:y1, self.x0 : self.x1]
        iris = region == masks.IRIS
        rho = self.rho[rows]
        region[iris & (rho < PUPIL_RADIUS)] = _PUPIL
        region[iris & (rho > RING_RADIUS)] = _RING
        glint = (self.iris_x + GLINT_OFFSET * self.iris_r) ** 2 + (self.iris_y[rows] + GLINT_OFFSET * self.iris_r) ** 2
        region[iris & (glint < (GLINT_RADIUS * self.iris_r) ** 2)] = _GLINT

    def detail(self, image: np.ndarray, texture: np.ndarray, top: int, eye_w: float, size: int) -> None:
        """Sclera darker toward the corners, a radial ramp on the iris, lashes on the lids."""
        y0, y1 = max(self.y0 - top, 0), min(self.y1 - top, texture.shape[0])
        if y1 <= y0 or self.x1 <= self.x0:
            return
        rows = slice(y0 + top - self.y0, y1 + top - self.y0)
        region = image[:, y0:y1, self.x0 : self.x1]
        ids = texture[y0:y1, self.x0 : self.x1]
        corner = 1 - SCLERA_CORNER_SHADE * (self.from_centre / (eye_w / 2)) ** 2
        ramp = IRIS_RAMP[0] + IRIS_RAMP[1] * self.rho[rows]
        region *= np.where(ids == masks.EYE, corner, np.where(ids == masks.IRIS, ramp, 1.0))
        # Lashes: a dark line along each upper lid, kept only on skin.
        shift = np.array([0.5, 0.5 + y0 + top - self.y0], np.float32)
        lines = [((c[:13] - shift) * 16).round().astype(np.int32) for c in self.contours]
        alpha = np.zeros(ids.shape, np.float32)
        cv2.polylines(alpha, lines, False, 1.0, max(1, round(size / LASH_WIDTH_STEP)), cv2.LINE_AA, shift=4)
        alpha *= ids == masks.SKIN
        region -= alpha * (region - _LASH)

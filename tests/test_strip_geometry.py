"""Strip layout, hull and disk rasterisation (numpy oracles), painter order, crop, PNG codec."""

import cv2
import numpy as np
import pytest

from gcgan_cli.data import landmarks as lm
from gcgan_cli.data import masks
from gcgan_cli.data.eye_crop import StripBox, band_rows, crop_strip, strip_box
from gcgan_cli.data.png import decode_png, encode_png
from gcgan_cli.data.prep_dir import strip_name


def test_band_rows_match_the_reference_layout():
    assert band_rows(250) == (62, 187)  # the reference strip: 62 black rows, 125 face rows, 63 black
    assert band_rows(256) == (63, 191)
    top, bottom = band_rows(64)
    assert (top, bottom) == (16, 48)


def inside_convex(points, shape):
    """Oracle: pixel centres inside the convex polygon (half-plane tests, counter-clockwise)."""
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5
    hull = cv2.convexHull(points.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    area = 0.5 * np.sum(hull[:, 0] * np.roll(hull[:, 1], -1) - np.roll(hull[:, 0], -1) * hull[:, 1])
    if area < 0:
        hull = hull[::-1]
    inside = np.ones(shape, bool)
    for (x0, y0), (x1, y1) in zip(hull, np.roll(hull, -1, axis=0)):
        inside &= (x1 - x0) * (ys - y0) - (y1 - y0) * (xs - x0) >= 0
    return inside


@pytest.mark.parametrize("seed", range(5))
def test_fill_hull_agrees_with_half_plane_oracle(seed):
    rng = np.random.default_rng(seed)
    points = rng.uniform(5, 59, (12, 2)).astype(np.float32)
    canvas = np.zeros((64, 64), np.uint8)
    masks.fill_hull(canvas, points, 7)
    oracle = inside_convex(points, canvas.shape)
    assert set(np.unique(canvas)) <= {0, 7}
    assert np.array_equal(canvas == 7, oracle)


def test_fill_hull_ignores_missing_landmarks():
    canvas = np.zeros((16, 16), np.uint8)
    points = np.array([[2, 2], [12, 2], [np.nan, np.nan], [12, 12], [2, 12]], np.float32)
    masks.fill_hull(canvas, points, 1)
    assert canvas[7, 7] == 1 and canvas[0, 0] == 0
    empty = np.zeros((16, 16), np.uint8)
    masks.fill_hull(empty, np.full((4, 2), np.nan, np.float32), 1)
    assert not empty.any()


def test_disk_is_exact():
    disk = masks.disk((20, 20), (10.0, 10.0), 4.0)
    ys, xs = np.mgrid[0:20, 0:20] + 0.5
    assert np.array_equal(disk, (xs - 10) ** 2 + (ys - 10) ** 2 <= 16)


def fake_face(size=256):
    """Landmarks [478, 2] of a stylised face in a `size` strip: groups at known places."""
    points = np.full((lm.N_LANDMARKS, 2), np.nan, np.float32)
    ring = lambda c, rx, ry, n: np.stack(
        [c[0] + rx * np.cos(t := np.linspace(0, 2 * np.pi, n, endpoint=False)), c[1] + ry * np.sin(t)], 1
    )
    face = ring((128, 160), 110, 150, 36)
    points[
        [
            i
            for i in range(300)
            if not np.isin(
                i,
                lm.RIGHT_EYE
                + lm.LEFT_EYE
                + lm.RIGHT_BROW
                + lm.LEFT_BROW
                + lm.NOSE
                + lm.MOUTH
                + lm.RIGHT_IRIS
                + lm.LEFT_IRIS,
            )
        ][:36]
    ] = face
    for group, centre, rx, ry in (
        (lm.RIGHT_EYE, (75, 128), 26, 9),
        (lm.LEFT_EYE, (181, 128), 26, 9),
        (lm.RIGHT_BROW, (75, 100), 30, 6),
        (lm.LEFT_BROW, (181, 100), 30, 6),
        (lm.NOSE, (128, 170), 18, 40),
        (lm.MOUTH, (128, 240), 30, 10),
        (lm.RIGHT_IRIS, (75, 128), 9, 9),
        (lm.LEFT_IRIS, (200, 128), 9, 9),
    ):
        points[list(group)] = ring(centre, rx, ry, len(group))
    for (outer, inner), (cx, cy) in ((lm.RIGHT_EYE_CORNERS, (75, 128)), (lm.LEFT_EYE_CORNERS, (181, 128))):
        points[outer], points[inner] = (cx - 26, cy), (cx + 26, cy)
    return points


def test_mask_paints_in_order_and_keeps_iris_inside_the_eyes():
    points = fake_face()
    mask = masks.mask_from_landmarks(points, 256)
    assert mask[128, 75] == masks.IRIS  # right iris, centred in its eye
    assert mask[128, 60] == masks.EYE
    assert mask[100, 75] == masks.EYEBROW
    assert mask[170, 128] == masks.NOSE
    assert mask[150, 40] == masks.SKIN
    # The left iris sticks out of its eye at x > 207: outside the eye it is not iris.
    assert mask[128, 205] == masks.IRIS and mask[128, 208] != masks.IRIS
    assert mask[140, 200] == masks.SKIN  # below the eye, inside the left iris disk: skin stays
    top, bottom = band_rows(256)
    assert not mask[:top].any() and not mask[bottom:].any()
    assert masks.MOUTH not in mask  # the mouth lies below the face band


def test_eye_over_brow_overlap_reads_as_eye_not_iris():
    """The reference summed overlaps (eye 2 + brow 3 = 5 = 'iris'); painting gives the eye."""
    points = fake_face()
    points[list(lm.RIGHT_BROW)] += np.array([0, 25], np.float32)  # brow slides onto the eye
    mask = masks.mask_from_landmarks(points, 256)
    assert mask[124, 60] == masks.EYE


def test_strip_box_follows_the_reference_geometry():
    points = fake_face()
    box = strip_box(points)
    corners = points[[33, 133, 263, 362]]
    widest = 52.0  # both eyes are 52 px from corner to corner
    assert box.side == round(1.7 * widest / 0.35)
    eyes = corners.mean(axis=0)
    mouth = points[list(lm.MOUTH)].mean(axis=0)
    centre = (eyes + mouth) / 2
    assert box.x0 == round(float(centre[0] - 1.7 * widest / 0.35 / 2))
    # The face centre ends up on the bottom edge of the face band.
    centre_row = box.to_strip(centre[None], 256)[0, 1]
    assert abs(centre_row - 187 / 250 * 256) < 1.0


def test_strip_box_needs_eye_corners():
    points = fake_face()
    points[33] = np.nan
    with pytest.raises(ValueError):
        strip_box(points)


def test_crop_pads_with_black_and_keeps_label_ids():
    image = np.full((40, 40, 3), 200, np.uint8)
    labels = np.full((40, 40), 3, np.uint8)
    box = StripBox(-20, -20, 80)  # runs off the image on the top and left
    rgb = crop_strip(image, box, 64)
    lab = crop_strip(labels, box, 64, labels=True)
    top, bottom = band_rows(64)
    assert rgb.shape == (64, 64, 3) and lab.shape == (64, 64)
    assert rgb[top:bottom, :10].max() == 0  # padding, not a stretched image
    assert rgb[top + 2 : bottom, 20:30].min() == 200
    assert set(np.unique(lab)) <= {0, 3}
    assert box.scaled(0.5) == StripBox(-10, -10, 40)


@pytest.mark.parametrize("shape", [(31, 17, 3), (64, 64), (1, 5)])
def test_png_writer_round_trips_through_opencv(shape):
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    data = encode_png(image)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(decode_png(data), image)
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert bgr.shape == image.shape


def test_png_writer_rejects_other_types():
    with pytest.raises(ValueError):
        encode_png(np.zeros((4, 4), np.float32))


def test_names_keep_the_reference_gaze_fields():
    name = strip_name(1, "0000", 12, -0.43981, 0.27689)
    assert name == "1_s0000_12_eregion_-0.4398_0.2769_c_1"
    fields = name.split("_")
    assert (float(fields[4]), float(fields[5])) == (-0.4398, 0.2769)
    assert strip_name(0, "0", 7, None, None) == "0_s0_7_eregion_0_0_c_0"

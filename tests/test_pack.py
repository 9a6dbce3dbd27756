"""`gcgan pack` on data made by `gcgan segment synthetic`, and the training dataset reader."""

import json
import shutil

import cv2
import lmdb
import numpy as np
import pytest
import torch
from faults import edited
from torch.utils.data import DataLoader

from gcgan_cli import cli
from gcgan_cli.core import pack as pack_core
from gcgan_cli.core.dataset import GazeMaskDataset
from gcgan_cli.data import gaze_db
from gcgan_cli.data.manifest import read_manifest
from gcgan_cli.data.masks import CLASS_NAMES
from gcgan_cli.data.pack_inputs import find_inputs
from gcgan_cli.errors import DatasetError

N = 24
SIZE = 64


@pytest.fixture(scope="module")
def prep(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic") / "prep"
    assert cli.run(["segment", "synthetic", "--n", str(N), "--size", str(SIZE), "--outdir", str(out), "-j", "1"]) == 0
    return out


@pytest.fixture(scope="module")
def db(prep, tmp_path_factory):
    out = tmp_path_factory.mktemp("packed") / "db"
    assert cli.run(["pack", "--data", str(prep), "--outdir", str(out), "--size", str(SIZE), "-j", "2"]) == 0
    return out


def copy_prep(prep, target):
    shutil.copytree(prep, target)
    return target


def records(path):
    count = gaze_db.read_meta(path).count
    with gaze_db.reader(path).begin() as txn:
        return [gaze_db.read_record(txn, i, path) for i in range(count)]


def test_records_round_trip_bytes_and_gaze(prep, db):
    rows = read_manifest(prep / "manifest.jsonl")
    meta = gaze_db.read_meta(db)
    assert (meta.count, meta.size, meta.class_names, meta.labelled) == (N, SIZE, CLASS_NAMES, True)
    assert meta.source["kind"] == "prep" and len(meta.source["manifest_sha256"]) == 64
    packed = records(db)
    assert [r.name for r in packed] == sorted(rows)
    for record in packed:
        # Strips already at the packed size are stored byte for byte.
        assert record.image_png == (prep / "rgb" / f"{record.name}.png").read_bytes()
        assert record.mask_png == (prep / "mask" / f"{record.name}.png").read_bytes()
        row = rows[record.name]
        assert record.gaze == pytest.approx((row["pitch"], row["yaw"]), abs=1e-7)
    labels = np.load(db / gaze_db.LABELS_FILE, allow_pickle=False)
    assert labels.dtype == np.float32 and labels.shape == (N, 2)
    np.testing.assert_array_equal(labels, np.array([r.gaze for r in packed], np.float32))
    np.testing.assert_array_equal(gaze_db.read_labels(db), labels)
    assert cv2.imread(str(db / gaze_db.PREVIEW_FILE)) is not None


def test_resized_pack_area_filters_images_and_keeps_mask_ids(prep, tmp_path):
    out = tmp_path / "db32"
    assert cli.run(["pack", "--data", str(prep), "--outdir", str(out), "--size", "32", "-j", "1"]) == 0
    for record in records(out)[:6]:
        source = cv2.imread(str(prep / "rgb" / f"{record.name}.png"))[:, :, ::-1].astype(np.float64)
        box = source.reshape(32, 2, 32, 2, 3).mean(axis=(1, 3))  # the 2x2 box filter, computed here
        image = cv2.imdecode(np.frombuffer(record.image_png, np.uint8), cv2.IMREAD_UNCHANGED)[:, :, ::-1]
        assert np.abs(image - box).max() <= 1.0
        mask = cv2.imdecode(np.frombuffer(record.mask_png, np.uint8), cv2.IMREAD_UNCHANGED)
        source_mask = cv2.imread(str(prep / "mask" / f"{record.name}.png"), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (32, 32) and set(np.unique(mask)) <= set(np.unique(source_mask))


def _iris_centroid(weights):
    ys, xs = np.mgrid[: weights.shape[0], : weights.shape[1]]
    return np.array([(xs * weights).sum(), (ys * weights).sum()]) / weights.sum()


def test_downsized_masks_stay_on_their_images(tmp_path):
    """At a 4x downscale (pack --size and the training reader) the iris of each mask sits where the
    image's area filter puts it: within 0.2 px of the area-averaged full-size iris (corner-sampled
    nearest neighbour is 0.38 px off)."""
    prep = tmp_path / "prep256"
    assert cli.run(["segment", "synthetic", "--n", "6", "--size", "256", "--outdir", str(prep), "-j", "1"]) == 0
    assert cli.run(["pack", "--data", str(prep), "--outdir", str(tmp_path / "db256"), "-j", "1"]) == 0
    assert cli.run(["pack", "--data", str(prep), "--outdir", str(tmp_path / "db64"), "--size", "64", "-j", "1"]) == 0
    stored, packed = GazeMaskDataset(tmp_path / "db256", resolution=64), GazeMaskDataset(tmp_path / "db64")
    iris = CLASS_NAMES.index("iris")
    for reader in (stored, packed):
        offsets = []
        for i, record in enumerate(records(tmp_path / "db256")):
            full = cv2.imread(str(prep / "mask" / f"{record.name}.png"), cv2.IMREAD_UNCHANGED) == iris
            mask = reader[i]["mask"][iris].numpy()
            for half in (slice(0, 128), slice(128, 256)):
                area = cv2.resize(full[:, half].astype(np.float32), (32, 64), interpolation=cv2.INTER_AREA)
                offsets.append(_iris_centroid(mask[:, half.start // 4 : half.stop // 4]) - _iris_centroid(area))
        assert np.all(np.abs(np.mean(offsets, axis=0)) < 0.2), np.mean(offsets, axis=0)


def test_unmatched_names_are_listed_in_one_error(prep, tmp_path, run_cli):
    folder = copy_prep(prep, tmp_path / "prep")
    names = sorted(read_manifest(folder / "manifest.jsonl"))
    (folder / "mask" / f"{names[3]}.png").unlink()
    shutil.copy(folder / "mask" / f"{names[4]}.png", folder / "mask" / "stray.png")
    code, _, err = run_cli("pack", "--data", folder, "--outdir", tmp_path / "db")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "1 image(s) without a mask" in err and names[3] in err and "1 mask(s) without an image (stray)" in err
    assert not (tmp_path / "db").exists() and not (tmp_path / "db.partial").exists()


def test_a_bad_mask_id_names_the_file_and_writes_nothing(prep, tmp_path, run_cli):
    folder = copy_prep(prep, tmp_path / "prep")
    name = sorted(read_manifest(folder / "manifest.jsonl"))[5]
    mask = cv2.imread(str(folder / "mask" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
    mask[10, 10] = 9
    cv2.imwrite(str(folder / "mask" / f"{name}.png"), mask)
    code, _, err = run_cli("pack", "--data", folder, "--outdir", tmp_path / "db", "-j", "1")
    assert code == 2 and f"{name}.png: class id 9" in err and "0..6" in err
    assert not (tmp_path / "db").exists() and not (tmp_path / "db.partial").exists()
    # Declaring more classes makes the same mask valid.
    classes = ",".join([*CLASS_NAMES, "a", "b", "c"])
    assert run_cli("pack", "--data", folder, "--outdir", tmp_path / "db", "--classes", classes, "-j", "1")[0] == 0
    assert gaze_db.read_meta(tmp_path / "db").num_classes == 10


def test_an_existing_db_needs_overwrite(prep, db, tmp_path, run_cli):
    out = tmp_path / "db"
    shutil.copytree(db, out)
    before = (out / "data.mdb").read_bytes()
    code, _, err = run_cli("pack", "--data", prep, "--outdir", out)
    assert code == 2 and "--overwrite" in err
    assert (out / "data.mdb").read_bytes() == before
    assert run_cli("pack", "--data", prep, "--outdir", out, "--size", "32", "--overwrite", "-j", "1")[0] == 0
    assert gaze_db.read_meta(out).size == 32
    not_a_db = tmp_path / "notes"
    not_a_db.mkdir()
    (not_a_db / "keep.txt").write_text("mine")
    code, _, err = run_cli("pack", "--data", prep, "--outdir", not_a_db, "--overwrite")
    assert code == 2 and "not a packed dataset" in err and (not_a_db / "keep.txt").exists()


def test_interrupted_pack_keeps_the_old_db_and_resumes(prep, db, tmp_path, monkeypatch):
    out = tmp_path / "db"
    shutil.copytree(db, out)
    old = (out / "data.mdb").read_bytes()
    monkeypatch.setattr(pack_core, "COMMIT_RECORDS", 4)
    inputs = find_inputs(prep)
    seen = []

    def advance_then_interrupt():
        seen.append(1)
        if len(seen) == 10:
            raise KeyboardInterrupt

    result = pack_core.pack(inputs, out, 32, CLASS_NAMES, workers=1, overwrite=True, on_advance=advance_then_interrupt)
    assert result.interrupted and result.written == 10
    assert (out / "data.mdb").read_bytes() == old  # the old DB is untouched
    with pytest.raises(DatasetError, match="unfinished pack"):
        gaze_db.read_meta(pack_core.partial_path(out))
    again = pack_core.pack(inputs, out, 32, CLASS_NAMES, workers=1, overwrite=True)
    assert (again.resumed_from, again.written, again.count) == (10, N - 10, N)
    assert not pack_core.partial_path(out).exists()
    straight = pack_core.pack(inputs, tmp_path / "straight", 32, CLASS_NAMES, workers=2)
    assert [(r.image_png, r.mask_png, r.gaze) for r in records(out)] == [
        (r.image_png, r.mask_png, r.gaze) for r in records(straight.db)
    ]


def test_a_changed_input_restarts_an_interrupted_pack(prep, tmp_path, monkeypatch):
    folder = copy_prep(prep, tmp_path / "prep")
    stop = iter(range(100))
    result = pack_core.pack(
        find_inputs(folder),
        tmp_path / "db",
        SIZE,
        CLASS_NAMES,
        workers=1,
        on_advance=lambda: next(stop) == 5 and (_ for _ in ()).throw(KeyboardInterrupt),
    )
    assert result.interrupted
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    rows[0]["pitch"] = 0.25
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    again = pack_core.pack(find_inputs(folder), tmp_path / "db", SIZE, CLASS_NAMES, workers=1)
    assert again.resumed_from == 0 and again.written == N


def test_folders_without_manifest_take_gaze_from_names(prep, tmp_path, run_cli):
    folder = tmp_path / "other"
    shutil.copytree(prep / "rgb", folder / "images")
    shutil.copytree(prep / "mask", folder / "labels")
    out = tmp_path / "db"
    assert (
        run_cli(
            "pack",
            "--data",
            folder,
            "--rgb-dir",
            folder / "images",
            "--mask-dir",
            folder / "labels",
            "--outdir",
            out,
            "-j",
            "1",
        )[0]
        == 0
    )
    rows = read_manifest(prep / "manifest.jsonl")
    for record in records(out):
        row = rows[record.name]
        assert record.gaze == pytest.approx((round(row["pitch"], 4), round(row["yaw"], 4)), abs=1e-6)
    # One name without gaze in a labelled set: refused unless packed as unlabelled.
    first = sorted(rows)[0]
    for sub in ("images", "labels"):
        (folder / sub / f"{first}.png").rename(folder / sub / "no_gaze_here.png")
    code, _, err = run_cli(
        "pack",
        "--data",
        folder,
        "--rgb-dir",
        folder / "images",
        "--mask-dir",
        folder / "labels",
        "--outdir",
        tmp_path / "x",
    )
    assert code == 2 and "1 of 24 pairs have no gaze (no_gaze_here)" in err and "--unlabelled" in err
    out = tmp_path / "unlabelled"
    assert (
        run_cli(
            "pack",
            "--data",
            folder,
            "--rgb-dir",
            folder / "images",
            "--mask-dir",
            folder / "labels",
            "--outdir",
            out,
            "--unlabelled",
            "-j",
            "1",
        )[0]
        == 0
    )
    assert not gaze_db.read_meta(out).labelled and not (out / gaze_db.LABELS_FILE).exists()
    assert all(r.gaze is None for r in records(out))


def test_a_sample_folder_packs_like_real_data(prep, tmp_path, run_cli):
    folder = tmp_path / "samples"
    folder.mkdir()
    rows = []
    for i, (name, row) in enumerate(sorted(read_manifest(prep / "manifest.jsonl").items())[:6]):
        shutil.copy(prep / "rgb" / f"{name}.png", folder / f"{i:06d}.png")
        shutil.copy(prep / "mask" / f"{name}.png", folder / f"{i:06d}_mask.png")
        rows.append({"image": f"{i:06d}.png", "mask": f"{i:06d}_mask.png", "pitch": row["pitch"], "yaw": row["yaw"]})
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "db"
    assert run_cli("pack", "--data", folder, "--outdir", out, "--size", str(SIZE), "-j", "1")[0] == 0
    packed = records(out)
    assert [r.name for r in packed] == [f"{i:06d}" for i in range(6)]
    assert [r.gaze for r in packed] == [pytest.approx((r["pitch"], r["yaw"])) for r in rows]
    assert gaze_db.read_meta(out).source["kind"] == "samples"


# --- the dataset reader ---


def test_reader_shapes_ranges_and_one_hot(db):
    dataset = GazeMaskDataset(db, seg_dim=6)
    assert len(dataset) == N and dataset.labelled and dataset.class_names == CLASS_NAMES[:6]
    item = dataset[3]
    assert item["image"].shape == (3, SIZE, SIZE) and item["image"].dtype == torch.float32
    assert -1.0 <= item["image"].min() < item["image"].max() <= 1.0
    assert item["mask"].shape == (6, SIZE, SIZE) and set(item["mask"].unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(item["mask"].sum(0), torch.ones(SIZE, SIZE))
    record = dataset.record(3)
    assert item["gaze"].tolist() == pytest.approx(list(record.gaze))
    ids = cv2.imdecode(np.frombuffer(record.mask_png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert torch.equal(item["mask"].argmax(0), torch.from_numpy(ids).long())


def test_ids_beyond_seg_dim_are_background_or_nothing(db):
    ids = torch.tensor([[0, 2, 5], [6, 6, 1]], dtype=torch.uint8)
    background = GazeMaskDataset(db, seg_dim=6).one_hot(ids)
    assert torch.equal(background.argmax(0), torch.tensor([[0, 2, 5], [0, 0, 1]]))
    assert torch.equal(background.sum(0), torch.ones(2, 3))
    reference = GazeMaskDataset(db, seg_dim=6, extra_ids="none").one_hot(ids)
    assert torch.equal(reference.sum(0), torch.tensor([[1.0, 1, 1], [0, 0, 1]]))


def test_flip_mirrors_image_and_mask_and_negates_yaw(db):
    plain, flipped = GazeMaskDataset(db)[7], GazeMaskDataset(db, flip=1.0)[7]
    assert torch.equal(flipped["image"], plain["image"].flip(-1))
    assert torch.equal(flipped["mask"], plain["mask"].flip(-1))
    assert flipped["gaze"][0] == plain["gaze"][0] and flipped["gaze"][1] == -plain["gaze"][1]


def test_reader_resizes_and_works_in_dataloader_workers(db):
    loader = DataLoader(GazeMaskDataset(db, resolution=32, flip=0.5), batch_size=8, num_workers=2, shuffle=True)
    batches = list(loader)
    assert sum(len(b["index"]) for b in batches) == N
    assert batches[0]["image"].shape == (8, 3, 32, 32) and batches[0]["mask"].shape == (8, 7, 32, 32)
    assert batches[0]["gaze"].shape == (8, 2)


def test_an_unlabelled_db_has_no_gaze_items(prep, tmp_path):
    out = tmp_path / "db"
    assert cli.run(["pack", "--data", str(prep), "--outdir", str(out), "--unlabelled", "-j", "1"]) == 0
    item = GazeMaskDataset(out)[0]
    assert "gaze" not in item and item["mask"].shape[0] == 7


def test_foreign_truncated_and_other_version_dbs_are_refused(db, tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        GazeMaskDataset(tmp_path / "nothing")
    foreign = tmp_path / "foreign"
    env = lmdb.open(str(foreign))
    with env.begin(write=True) as txn:
        txn.put(b"image-0000000-0.1_0.2", b"png")
    env.close()
    with pytest.raises(DatasetError, match="no gcgan metadata"):
        GazeMaskDataset(foreign)

    def bump_version(txn):
        meta = json.loads(txn.get(gaze_db.META_KEY))
        txn.put(gaze_db.META_KEY, json.dumps({**meta, "format_version": 99}).encode())

    with pytest.raises(DatasetError, match="format version 99"):
        GazeMaskDataset(edited(db, tmp_path / "v99", bump_version))
    with pytest.raises(DatasetError, match="truncated"):
        GazeMaskDataset(edited(db, tmp_path / "cut", lambda txn: txn.delete(gaze_db.key("image", N - 1))))
    other = edited(
        db, tmp_path / "other", lambda txn: txn.put(gaze_db.META_KEY, json.dumps({"format": "someone-else"}).encode())
    )
    with pytest.raises(DatasetError, match="not a gcgan dataset"):
        GazeMaskDataset(other)


def test_label_files_load_without_pickle(tmp_path):
    np.save(tmp_path / "objects.npy", np.array({0: "0.1_0.2"}, dtype=object), allow_pickle=True)  # the reference's dict
    with pytest.raises(DatasetError, match="not a gaze label file"):
        gaze_db.read_labels(tmp_path / "objects.npy")
    (tmp_path / "labels.json").write_text(json.dumps([[0.1, -0.2], [0.0, 0.3]]))
    np.testing.assert_allclose(gaze_db.read_labels(tmp_path / "labels.json"), [[0.1, -0.2], [0.0, 0.3]], rtol=1e-6)
    np.save(tmp_path / "wrong.npy", np.zeros((3, 3), np.float32))
    with pytest.raises(DatasetError, match=r"\[N, 2\]"):
        gaze_db.read_labels(tmp_path / "wrong.npy")

"""Loaders on small real samples (from ../shared) and on malformed inputs."""
from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

import core  # noqa: F401
from training.archives import DataError, safe_extract
from training.data import CARVED_VAL, HASH_SPLIT_CAVEAT, _content_split, inspect, load_dataset, parse_utk_name
from tests.conftest import shared_path

MALFORMED_UTK = {
    "39_1_20170116174525125.jpg.chip.jpg": (39, 1, -1),
    "61_1_20170109142408075.jpg.chip.jpg": (61, 1, -1),
    "61_1_20170109150557335.jpg.chip.jpg": (61, 1, -1),
    "14_0_0_2017011022340900.jpg.chip.jpg": (14, 0, 0),
    "28_1_2_201701161846515488.jpg.chip.jpg": (28, 1, 2),
    "38_0_1_201701162330572788.jpg.chip.jpg": (38, 0, 1),
    "55_0_0_20170116232725357jpg.chip.jpg": (55, 0, 0),
    "24_0_1_20170116220224657 .jpg.chip.jpg": (24, 0, 1),
}


def fer_sample(tmp_path: Path, per_class: int = 6) -> Path:
    """A small real FER2013 image-folder zip: a few images per class and split."""
    src = zipfile.ZipFile(shared_path("data", "fer2013_images.zip"))
    picked, seen = [], {}
    for name in src.namelist():
        parts = name.split("/")
        if len(parts) != 4 or not name.endswith(".jpg"):
            continue
        key = (parts[2], parts[3].split("_")[0])
        if seen.get(key, 0) < per_class:
            seen[key] = seen.get(key, 0) + 1
            picked.append(name)
    out = tmp_path / "fer_sample.zip"
    with zipfile.ZipFile(out, "w") as dst:
        for name in picked:
            dst.writestr(name, src.read(name))
    return out


def utk_sample(tmp_path: Path, n: int = 40, with_malformed: bool = True) -> list[tuple[str, bytes]]:
    members = []
    with tarfile.open(shared_path("data", "utkface_96.tar")) as tf:
        for info in tf:
            base = Path(info.name).name
            if info.isfile() and (len(members) < n or (with_malformed and base in MALFORMED_UTK)):
                members.append((base, tf.extractfile(info).read()))
    return members


def write_tar(path: Path, members: list[tuple[str, bytes]], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in members:
            info = tarfile.TarInfo(f"UTKFace/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_parse_utk_names_including_the_eight_malformed():
    for name, expected in MALFORMED_UTK.items():
        assert parse_utk_name(name) == expected
    assert parse_utk_name("25_0_3_20170119171034218.jpg.chip.jpg") == (25, 0, 3)
    assert parse_utk_name("notes.jpg") is None
    assert parse_utk_name("30_7_1_2017.jpg") is None  # gender must be 0/1


def test_fer_zip_folder_and_csv_agree(tmp_path):
    archive = fer_sample(tmp_path)
    from_zip = load_dataset("emotion", archive, "test")
    folder = safe_extract(archive, tmp_path / "folder")
    from_dir = load_dataset("emotion", folder, "test")
    assert from_zip.x.shape[1:] == (48, 48, 1) and from_zip.x.dtype == np.uint8
    np.testing.assert_array_equal(from_zip.y, from_dir.y)
    # the Kaggle CSV form of the same images (as FER2013.md describes) gives the same labels
    rows = []
    with zipfile.ZipFile(archive) as zf:
        for name in zf.namelist():
            img = cv2.imdecode(np.frombuffer(zf.read(name), np.uint8), cv2.IMREAD_GRAYSCALE)
            emotion = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"].index(name.split("/")[2])
            rows.append({"emotion": emotion, "pixels": " ".join(map(str, img.reshape(-1))),
                         "Usage": Path(name).name.split("_")[0]})
    csv = tmp_path / "fer2013.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    from_csv = load_dataset("emotion", csv, "test")
    np.testing.assert_array_equal(from_csv.y, from_zip.y)
    np.testing.assert_array_equal(from_csv.x, from_zip.x)  # same pixels, same order, same preprocessing
    assert "Usage column" in from_csv.split_source and "PrivateTest" in from_zip.split_source
    assert set(np.unique(from_zip.y)) == set(range(7))
    assert {len(load_dataset("emotion", csv, s)) for s in ("train", "val", "test")} == {42}


def test_utk_tar_targz_zip_folder(tmp_path):
    members = utk_sample(tmp_path)
    tar = write_tar(tmp_path / "utk.tar", members)
    targz = write_tar(tmp_path / "utk.tar.gz", members, "w:gz")
    zpath = tmp_path / "utk.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for name, data in members:
            zf.writestr(f"UTKFace/{name}", data)
    counts = []
    for source in (tar, targz, zpath):
        summary = inspect("age", source)
        counts.append(sum(summary.splits.values()))
        assert summary.ages.min() >= 1
    folder = safe_extract(tar, tmp_path / "dir")
    assert (folder / "UTKFace" / "24_0_1_20170116220224657 .jpg.chip.jpg").is_file()
    counts.append(sum(inspect("gender", folder).splits.values()))
    assert counts == [len(members)] * 4
    test = load_dataset("gender", folder, "train")
    assert test.x.shape[1:] == (64, 64, 3)
    assert set(test.groups["race"]) <= {-1, 0, 1, 2, 3, 4}


def test_utk_without_the_split_file_reproduces_the_projects_split(tmp_path):
    """The content-hash fallback is the rule that made utkface_split.csv, so without that file
    the shipped models are still scored on their own test faces, not on ones they trained on."""
    members = utk_sample(tmp_path, n=300, with_malformed=False)
    write_tar(tmp_path / "utk.tar", members)
    table = pd.read_csv(shared_path("data", "utkface_split.csv")).set_index("file")["split"]
    got = []
    for split in ("train", "val", "test"):
        data = load_dataset("age", tmp_path / "utk.tar", split)
        got += [(name, split) for name in data.groups["file"]]
        assert "content hash" in data.split_source
    assert len(got) == len(members)
    assert inspect("age", tmp_path / "utk.tar").split_caveat == HASH_SPLIT_CAVEAT  # the page shows it
    assert all(table[name] == split for name, split in got)
    assert {split for _, split in got} == {"train", "val", "test"}
    # and the rule gives every one of the 23,708 files its split in utkface_split.csv
    with tarfile.open(shared_path("data", "utkface_96.tar")) as tf:
        by_rule = {Path(i.name).name: _content_split(tf.extractfile(i).read()) for i in tf if i.isfile()}
    assert len(by_rule) == len(table) == 23708
    assert sum(by_rule[name] == split for name, split in table.items()) == 23708


def test_utk_uses_the_fixed_split_file_beside_the_data(tmp_path):
    members = utk_sample(tmp_path, n=30, with_malformed=False)
    write_tar(tmp_path / "utk.tar", members)
    table = pd.read_csv(shared_path("data", "utkface_split.csv"))
    table.to_csv(tmp_path / "utkface_split.csv", index=False)
    expected = table.set_index("file").loc[[m[0] for m in members], "split"].value_counts().to_dict()
    summary = inspect("age", tmp_path / "utk.tar")
    assert {k: v for k, v in summary.splits.items() if v} == expected and not summary.split_caveat


def test_fer_csv_errors_name_the_file_and_problem(tmp_path):
    bad_cols = tmp_path / "wrong.csv"
    bad_cols.write_text("label,img\n0,1 2 3\n")
    with pytest.raises(DataError, match=r"wrong.csv.*emotion,pixels,Usage"):
        load_dataset("emotion", bad_cols)
    bad_pixels = tmp_path / "short.csv"
    bad_pixels.write_text("emotion,pixels,Usage\n0," + " ".join(["1"] * 2304) + ",Training\n3,1 2 3,Training\n")
    with pytest.raises(DataError, match=r"short.csv, line 3.*3 values, expected 2304"):
        load_dataset("emotion", bad_pixels)
    words = tmp_path / "words.csv"
    words.write_text("emotion,pixels,Usage\n0," + " ".join(["x"] * 2304) + ",Training\n")
    with pytest.raises(DataError, match=r"words.csv, line 2.*whole numbers"):
        load_dataset("emotion", words)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match=r"empty.csv.*empty"):
        load_dataset("emotion", empty)


def test_fer_folders_without_usage_prefixes_get_a_validation_split(tmp_path):
    """The other common Kaggle layout (train/<class>/im0.png, test/<class>/im0.png) has no
    PublicTest: a fixed content-hash share of train becomes val, so fit still works."""
    src = zipfile.ZipFile(fer_sample(tmp_path, per_class=20))
    archive = tmp_path / "archive.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i, name in enumerate(src.namelist()):
            _, folder, cls, base = name.split("/")
            if base.startswith("PublicTest"):
                continue
            img = cv2.imdecode(np.frombuffer(src.read(name), np.uint8), cv2.IMREAD_GRAYSCALE)
            zf.writestr(f"{folder}/{cls}/im{i}.png", cv2.imencode(".png", img)[1].tobytes())
    summary = inspect("emotion", archive)
    assert summary.splits["test"] == 7 * 20 and summary.splits["train"] + summary.splits["val"] == 7 * 20
    assert 0 < summary.splits["val"] < summary.splits["train"]
    assert summary.split_source.endswith(CARVED_VAL) and not summary.split_caveat
    again = tmp_path / "again.zip"
    archive.rename(again)
    assert inspect("emotion", again).splits == summary.splits  # fixed, not random


def test_fer_csv_inside_an_archive(tmp_path):
    """The original Kaggle fer2013.tar.gz holds fer2013/fer2013.csv."""
    row = "0," + " ".join(["7"] * 2304)
    text = "emotion,pixels,Usage\n" + "\n".join(f"{row},{u}" for u in ("Training", "PublicTest", "PrivateTest")) + "\n"
    targz = write_tar(tmp_path / "fer2013.tar.gz", [("fer2013.csv", text.encode())], "w:gz")
    data = load_dataset("emotion", targz, "test")
    assert len(data) == 1 and data.x.shape == (1, 48, 48, 1) and "fer2013.csv" in data.split_source


def test_unreadable_archive_and_no_labelled_images(tmp_path):
    junk = tmp_path / "data.zip"
    junk.write_bytes(b"this is not an archive at all")
    with pytest.raises(DataError, match="data.zip"):
        load_dataset("emotion", junk)
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(DataError, match="no labelled images"):
        load_dataset("age", empty)
    with pytest.raises(DataError, match="no such file"):
        load_dataset("emotion", tmp_path / "missing.zip")


def _damage_member(archive: Path, name: str) -> None:
    """Flip bytes in the middle of one member's stored data (its CRC or deflate stream breaks)."""
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(name)
    raw = bytearray(archive.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for i in range(start + info.compress_size // 3, start + info.compress_size // 3 + 8):
        raw[i] ^= 0x5A
    archive.write_bytes(bytes(raw))


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_corrupt_images_are_skipped_and_counted(tmp_path, compression):
    """Broken JPEG bytes, an empty file and a member whose bytes are damaged in the archive
    (bad CRC when stored, broken stream when deflated): each skipped and counted, never fatal."""
    sample = zipfile.ZipFile(fer_sample(tmp_path, per_class=2))
    archive = tmp_path / "damaged.zip"
    with zipfile.ZipFile(archive, "w", compression) as zf:
        for name in sample.namelist():
            zf.writestr(name, sample.read(name))
        zf.writestr("fer2013/train/happy/Training_999.jpg", b"\xff\xd8 broken jpeg")
        zf.writestr("fer2013/train/sad/Training_998.jpg", b"")
        damaged = "fer2013/train/angry/Training_997.jpg"
        zf.writestr(damaged, sample.read(sample.namelist()[0]))
    _damage_member(archive, damaged)
    data = load_dataset("emotion", archive, "train")
    assert data.skipped == 3
    assert len(data) == 14


@pytest.mark.parametrize("evil", ["../evil.jpg", "/abs/evil.jpg", "fer2013/train/../../evil.jpg"])
def test_archive_members_escaping_the_target_are_rejected(tmp_path, evil):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fer2013/train/happy/Training_1.jpg", b"x")
        zf.writestr(evil, b"x")
    with pytest.raises(DataError, match="unsafe member path"):
        load_dataset("emotion", archive)
    target = tmp_path / "deep" / "target"
    with pytest.raises(DataError):
        safe_extract(archive, target)
    assert not (tmp_path / "deep" / "evil.jpg").exists() and not Path("/abs/evil.jpg").exists()
    tar = tmp_path / "evil.tar"
    with tarfile.open(tar, "w") as tf:
        info = tarfile.TarInfo(evil)
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(DataError, match="unsafe member path"):
        safe_extract(tar, target)


def test_fer_recrop_crops_faces_again_with_the_detector(tmp_path):
    """The seed design's emotion recipe trains on FER2013 faces re-cropped by a face detector:
    Haar's box is tighter than FER2013's framing, so re-cropped faces are zoomed in."""
    from core.preprocess import FaceSpec

    archive = fer_sample(tmp_path)
    whole = load_dataset("emotion", archive, "test", spec=FaceSpec(48, 3, 0.0))
    recropped = load_dataset("emotion", archive, "test", spec=FaceSpec(48, 3, 0.0, recrop=True, detector="haar"))
    np.testing.assert_array_equal(whole.y, recropped.y)
    assert recropped.x.shape == whole.x.shape and recropped.x.dtype == np.uint8
    # the centre of each whole image, scaled up, is close to its re-cropped face; the whole image is not
    centre = np.stack([cv2.resize(img[4:44, 4:44], (48, 48), interpolation=cv2.INTER_LINEAR) for img in whole.x])
    to_whole = np.abs(recropped.x.astype(float) - whole.x).mean()
    to_centre = np.abs(recropped.x.astype(float) - centre).mean()
    assert to_centre < 0.6 * to_whole, (to_centre, to_whole)


def test_training_crops_are_cut_by_the_specs_detector_and_cached_per_detector(tmp_path):
    """Each training face is the detector's face (box and landmarks) cut by the one preprocessing
    function, so training and live crops agree; Haar and YuNet crops are cached apart."""
    from core.preprocess import FaceSpec, preprocess_face
    from training.archives import iter_members
    from training.data import _decode, _fer_member_label, detect_face

    archive = fer_sample(tmp_path, per_class=2)
    spec = FaceSpec(48, 1, 0.05, recrop=True, align=True, detector="yunet")
    faces = load_dataset("emotion", archive, "test", spec=spec)
    haar = load_dataset("emotion", archive, "test", spec=FaceSpec(48, 1, 0.05, recrop=True, detector="haar"))
    images = [_decode(data, 1) for name, data in iter_members(archive)
              if _fer_member_label(name) and _fer_member_label(name)[1] == "test"]
    found = [detect_face(img, "yunet") for img in images]
    assert sum(f is not None for f in found) >= 0.9 * len(images)  # YuNet finds nearly every FER2013 face
    for img, face, x in zip(images, found, faces.x):
        if face is not None:
            np.testing.assert_array_equal(x, preprocess_face(img, spec, face.box, face.landmarks))
    assert not np.array_equal(faces.x, haar.x)
    from core.config import app_paths

    assert len(list(app_paths().cache_dir.glob("fer-*.npz"))) == 2  # one cache per detector

"""Data set loaders for the forms users actually download.

* FER2013 as the Kaggle CSV (``emotion,pixels,Usage``) or the Kaggle image-folder
  layout (``<split>/<class>/<Usage>_<id>.jpg``) as a folder or a .zip.
* UTKFace as a folder, .zip, .tar or .tar.gz, labels parsed from file names
  (``age_gender_race_date.jpg.chip.jpg``; race unknown when that field is missing).

Age/gender faces are cropped the way the live app crops them: the detector the spec
names (``FaceSpec.detector``: YuNet by default, Haar for older cards) finds the face in
each UTKFace image and the shared :func:`preprocess_face` applies the model's margin
and alignment, so training inputs match live inputs. Decoded sets are cached as
``.npz`` under the app's cache folder, keyed by everything they depend on (the
detector too), because decoding + detection of 24k images takes a minute.
"""
from __future__ import annotations

import hashlib
import io
import logging
import re
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Iterator, TypeVar

import cv2
import numpy as np
import pandas as pd

from core import tasks
from core.config import EMOTIONS, TASKS, app_paths
from core.disk import cache_cap, prune
from core.detection import Detection, DetectorSettings, FaceDetector, effective_settings, make_detector
from core.preprocess import FaceSpec, preprocess_face
from core.tasks import DATA_KINDS, GENDERS
from training.archives import DataError, archive_kind, iter_members
from training.pack_format import is_pack, load_pack

log = logging.getLogger(__name__)
LOADER_VERSION = 7
ProgressFn = Callable[[int, "int | None"], None]  # (items read so far, total or None when unknown)
PROGRESS_EVERY = 100
_T = TypeVar("_T")
SPLITS = ("train", "val", "test")
FER_USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
FER_FOLDER_SPLIT = {"train": "train", "training": "train", "val": "val", "validation": "val",
                    "publictest": "val", "test": "test", "privatetest": "test"}
RACES = ("white", "black", "asian", "indian", "others")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
DEFAULT_SPECS = {task: tasks.get(task).default_spec for task in TASKS}  # see core.tasks
UTK_NAME = re.compile(r"^(\d+)_(\d+)_([^_]*)_?")
CARVED_VAL = "; none marked for validation, so val = the training images whose content hash falls in a fixed 10% band"
HASH_SPLIT_CAVEAT = ("No utkface_split.csv beside this data, so each image's split comes from its content hash. "
                     "That reproduces the project's split for utkface_96.tar; for another copy of UTKFace (other "
                     "bytes) the shipped models may have trained on some of these validation/test faces, which "
                     "flatters them in a side-by-side evaluation.")

__all__ = ["DataError", "FaceDataset", "DataSummary", "load_dataset", "inspect", "parse_utk_name"]


@dataclass
class FaceDataset:
    """Network-ready faces of one split: ``x`` uint8 (n, size, size, channels), ``y`` labels
    (emotion: class index; age: years; gender: 1 = female). ``groups`` holds age/gender/race
    per image for UTKFace (per-group metrics)."""

    task: str
    split: str
    x: np.ndarray
    y: np.ndarray
    spec: FaceSpec
    source: str
    class_names: list[str]
    groups: pd.DataFrame | None = None
    skipped: int = 0
    split_source: str = ""  # where train/val/test came from, in words (for the model card)

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class DataSummary:
    """What the Training page shows before a run: counts, label distribution, sample faces."""

    task: str
    source: str
    splits: dict[str, int]
    class_counts: dict[str, int] = field(default_factory=dict)
    ages: np.ndarray | None = None
    samples: list[tuple[np.ndarray, str]] = field(default_factory=list)
    skipped: int = 0
    split_source: str = ""
    split_caveat: str = ""  # set when the split may not be the one the shipped models were tested on


def data_kind(task: str) -> str:
    """"fer" (FER2013) or "utk" (UTKFace): the data set family ``task`` trains on."""
    return tasks.get(task).data_kind


# -- FER2013 -----------------------------------------------------------------------

def _decode(data: bytes | None, channels: int) -> np.ndarray | None:
    """The decoded image, or None for missing, empty or corrupt bytes (skipped and counted)."""
    if not data:
        return None
    flag = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR
    try:
        return cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    except cv2.error:
        return None


def _content_split(data: bytes) -> str:
    """Split by the SHA-1 of an image's bytes: identical images always share a split.

    The same rule made ``utkface_split.csv`` (test: first 32 bits of the hash below 0.1
    of their range, val: below 0.2), so without that file the project's split still
    comes out for ``utkface_96.tar``.
    """
    u = int(hashlib.sha1(data).hexdigest()[:8], 16) / 2**32
    return "test" if u < 0.1 else ("val" if u < 0.2 else "train")


def _carve_val(splits: list[str], contents: list[bytes]) -> bool:
    """Give a data set that has no validation split one: training images whose content hash
    falls in the val band (about 10%). Returns whether it did."""
    if "val" in splits or "train" not in splits:
        return False
    for i, (split, data) in enumerate(zip(splits, contents)):
        if split == "train" and _content_split(data) == "val":
            splits[i] = "val"
    return True


def _member_total(path: Path) -> int | None:
    """How many files a folder or archive holds, when that is cheap to know (not for a compressed tar)."""
    try:
        if path.is_dir():
            return sum(1 for p in path.rglob("*") if p.is_file())
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                return sum(not info.is_dir() for info in zf.infolist())
        with tarfile.open(path, "r:") as tf:  # uncompressed only: a .tar.gz would be decompressed twice
            return sum(info.isfile() for info in tf.getmembers())
    except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError):
        return None


def _counted(items: Iterable[_T], total: int | None, progress: ProgressFn | None) -> Iterator[_T]:
    """``items`` unchanged, reporting ``progress(done, total)`` every PROGRESS_EVERY items and at the end."""
    if progress is None:
        yield from items
        return
    done = 0
    progress(0, total)
    for item in items:
        yield item
        done += 1
        if done % PROGRESS_EVERY == 0:
            progress(done, total)
    progress(done, done)


def _read_fer_csv(source, name: str) -> pd.DataFrame:
    try:
        return pd.read_csv(source, dtype=str)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{name}: the CSV is empty (expected columns emotion,pixels,Usage)") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"{name}: not a readable CSV ({exc})") from exc


def _load_fer_csv(path: Path, spec: FaceSpec, progress: ProgressFn | None = None) -> dict:
    return _fer_csv_faces(_read_fer_csv(path, path.name), path.name, spec, progress)


def _fer_csv_faces(frame: pd.DataFrame, name: str, spec: FaceSpec, progress: ProgressFn | None = None) -> dict:
    missing = {"emotion", "pixels", "Usage"} - set(frame.columns)
    if missing:
        raise DataError(f"{name}: expected columns emotion,pixels,Usage; missing {sorted(missing)} "
                        f"(found {list(frame.columns)})")
    images, labels, splits, contents, skipped = [], [], [], [], 0
    rows = _counted(frame[["emotion", "pixels", "Usage"]].itertuples(index=False), len(frame), progress)
    for row, (emotion, pixels, usage) in enumerate(rows, 2):
        try:
            values = np.array(str(pixels).split(), dtype=np.int64) if isinstance(pixels, str) else np.zeros(0)
        except ValueError as exc:
            raise DataError(f"{name}, line {row}: 'pixels' must be 2304 whole numbers 0-255 ({exc})") from exc
        if values.size != 48 * 48:
            raise DataError(f"{name}, line {row}: 'pixels' has {values.size} values, expected 2304 (48x48)")
        if usage not in FER_USAGE or not str(emotion).isdigit() or int(emotion) >= len(EMOTIONS):
            raise DataError(f"{name}, line {row}: bad emotion {emotion!r} or Usage {usage!r}")
        img = np.clip(values, 0, 255).astype(np.uint8).reshape(48, 48)
        images.append(img if spec.channels == 1 else cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
        labels.append(int(emotion))
        splits.append(FER_USAGE[usage])
        contents.append(img.tobytes())
    source = f"{name}: Usage column, train Training / val PublicTest / test PrivateTest"
    if _carve_val(splits, contents):
        source += CARVED_VAL
    return {"x": _fer_faces(images, spec), "y": labels, "split": splits, "skipped": skipped,
            "split_source": source}


def _fer_member_label(name: str) -> tuple[int, str, bool] | None:
    """(class index, split, whether the split came from a Usage prefix rather than the folders)."""
    parts = PurePosixPath(name).parts
    if len(parts) < 2 or not name.lower().endswith(IMAGE_SUFFIXES):
        return None
    cls = parts[-2].lower()
    if cls not in EMOTIONS:
        return None
    prefix = parts[-1].split("_", 1)[0]
    split = FER_USAGE.get(prefix)
    if split is not None:
        return EMOTIONS.index(cls), split, True
    folder = next((FER_FOLDER_SPLIT[p.lower()] for p in reversed(parts[:-2]) if p.lower() in FER_FOLDER_SPLIT), None)
    return EMOTIONS.index(cls), folder or "train", False


def _fer_split_source(name: str, prefixed: set[bool], carved: bool) -> str:
    """In words, for the card: ``prefixed`` holds, per image, whether a Usage prefix gave its split."""
    if prefixed == {True}:
        text = "file-name prefixes, train Training / val PublicTest / test PrivateTest"
    else:
        text = "folders train / val / test (images outside them: train)"
        if True in prefixed:
            text = "file-name prefixes (Training / PublicTest / PrivateTest) where present, else " + text
    return f"{name}: {text}" + (CARVED_VAL if carved else "")


def _load_fer_images(path: Path, spec: FaceSpec, progress: ProgressFn | None = None) -> dict:
    images, labels, splits, contents, prefixed, skipped = [], [], [], [], set(), 0
    csv_member: tuple[str, bytes] | None = None
    for name, data in _counted(iter_members(path), _member_total(path) if progress else None, progress):
        label = _fer_member_label(name)
        if label is None:
            if csv_member is None and data and name.lower().endswith(".csv"):
                csv_member = (name, data)  # the original Kaggle fer2013.tar.gz holds the CSV
            continue
        img = _decode(data, spec.channels)
        if img is None:
            skipped += 1
            log.warning("%s: skipping unreadable image %s", path.name, name)
            continue
        images.append(img)
        labels.append(label[0])
        splits.append(label[1])
        contents.append(data)
        prefixed.add(label[2])
    if not images and csv_member is not None:
        name, data = csv_member
        member = f"{path.name}/{PurePosixPath(name).name}"
        return _fer_csv_faces(_read_fer_csv(io.BytesIO(data), member), member, spec, progress)
    carved = _carve_val(splits, contents)
    return {"x": _fer_faces(images, spec), "y": labels, "split": splits, "skipped": skipped,
            "split_source": _fer_split_source(path.name, prefixed, carved)}


def _fer_faces(images: list[np.ndarray], spec: FaceSpec) -> list[np.ndarray]:
    """Network inputs from FER2013 images: whole, or (``spec.recrop``) re-cropped by the detector."""
    if not spec.recrop:
        return [preprocess_face(img, spec) for img in images]
    found = [detect_face(img, spec.detector) for img in images]
    log.info("FER2013: face detected in %d of %d images", sum(f is not None for f in found), len(found))
    return _crop_faces(images, found, spec)


# -- UTKFace -----------------------------------------------------------------------

def parse_utk_name(name: str) -> tuple[int, int, int] | None:
    """(age, gender, race) from a UTKFace file name; race -1 when missing; None if unlabelled."""
    match = UTK_NAME.match(PurePosixPath(name).name)
    if not match:
        return None
    age, gender, race = int(match.group(1)), int(match.group(2)), match.group(3)
    if gender not in (0, 1) or not 0 < age < 130:
        return None
    return age, gender, int(race) if re.fullmatch(r"[0-4]", race) else -1


def _utk_split_file(path: Path) -> Path | None:
    """``utkface_split.csv`` beside the data (or one folder up), if there is one."""
    folder = path if path.is_dir() else path.parent
    for candidate in (folder / "utkface_split.csv", folder.parent / "utkface_split.csv"):
        if candidate.is_file():
            return candidate
    return None


def _utk_split_table(path: Path) -> dict[str, str]:
    """The fixed split (file name -> train/val/test) from ``utkface_split.csv``, if there is one."""
    table_file = _utk_split_file(path)
    if table_file is None:
        return {}
    try:
        table = pd.read_csv(table_file, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"{table_file.name}: not a readable CSV ({exc})") from exc
    if not {"file", "split"} <= set(table.columns) or not set(table["split"]) <= set(SPLITS):
        raise DataError(f"{table_file.name}: expected columns file,split with splits train/val/test")
    return dict(zip(table["file"], table["split"]))


def _median_relative_box(boxes: list, shapes: list) -> tuple[float, float, float, float]:
    rel = [(x / w_img, y / h_img, w / w_img, h / h_img) for (x, y, w, h), (h_img, w_img) in zip(boxes, shapes)]
    return tuple(np.median(np.array(rel), axis=0)) if rel else (0.15, 0.2, 0.7, 0.7)


def _largest_face(detector: FaceDetector, img: np.ndarray, min_fraction: float = 0.4) -> Detection | None:
    """Largest face box at least ``min_fraction`` of the image wide (UTKFace crops are faces,
    so smaller boxes are false positives: an eye, a mouth)."""
    found = [d for d in detector.detect(img) if d.box[2] >= min_fraction * img.shape[1]]
    return max(found, key=lambda d: d.box[2] * d.box[3]) if found else None


# the live detector sees whole camera frames; small face images are upscaled to about this
# width so that the detector's windows fit the face the way they do at webcam resolution
DETECT_WIDTH = 192
# settings for face images (one face, filling most of the image), not for camera frames: the
# largest face at least 0.4 of the image wide is taken, so a permissive threshold costs nothing
FACE_IMAGE_DETECTORS = {
    "yunet": DetectorSettings(kind="yunet", min_confidence=0.3, min_face=72, detect_width=0),
    "haar": DetectorSettings(kind="haar", scale_factor=1.1, min_neighbors=4, min_face=72, detect_width=0),
}
_detectors: dict[str, FaceDetector] = {}


def face_image_detector(kind: str) -> FaceDetector:
    """The detector (of ``core.detection.DETECTORS``) that cuts training faces; one per kind."""
    if kind not in _detectors:
        _detectors[kind] = make_detector(FACE_IMAGE_DETECTORS[kind])
    return _detectors[kind]


def face_detector_record(task: str, spec: FaceSpec) -> dict | None:
    """The detector that cut a task's training faces, as it really ran here (for model cards);
    None where none did (FER2013 images used whole)."""
    if data_kind(task) == "fer" and not spec.recrop:
        return None
    return {**effective_settings(FACE_IMAGE_DETECTORS[spec.detector]).to_dict(), "upscale_to_width": DETECT_WIDTH}


def detect_face_upscaled(img: np.ndarray, detector: str = "yunet") -> tuple[np.ndarray, Detection | None]:
    """A face image upscaled to webcam-like face sizes (BGR), and the detector's face in it."""
    scale = max(1, round(DETECT_WIDTH / img.shape[1]))
    bgr = img if img.ndim == 3 and img.shape[-1] == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    big = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    return big, _largest_face(face_image_detector(detector), big)


def detect_face(img: np.ndarray, detector: str = "yunet") -> Detection | None:
    """The face in a face image (in its own pixels), found by ``detector``; None if none."""
    big, found = detect_face_upscaled(img, detector)
    return None if found is None else found.shifted(0, 0, big.shape[1] / img.shape[1])


def _crop_faces(images: list[np.ndarray], found: list[Detection | None], spec: FaceSpec) -> list[np.ndarray]:
    """Crop each image at its face (where none was found: at the median box of the others)."""
    boxes = [(f.box, img.shape[:2]) for img, f in zip(images, found) if f is not None]
    fallback = _median_relative_box([b[0] for b in boxes], [b[1] for b in boxes])
    faces = []
    for img, face in zip(images, found):
        if face is None:
            h, w = img.shape[:2]
            box = (int(fallback[0] * w), int(fallback[1] * h), int(fallback[2] * w), int(fallback[3] * h))
            faces.append(preprocess_face(img, spec, box))
        else:
            faces.append(preprocess_face(img, spec, face.box, face.landmarks))
    return faces


def _load_utk(path: Path, spec: FaceSpec, progress: ProgressFn | None = None) -> dict:
    split_table = _utk_split_table(path)
    if split_table:
        source = f"{path.name}: utkface_split.csv train / val / test (content-hash rule for files it does not list)"
        caveat = ""
    else:
        source = f"{path.name}: content hash of each file train / val / test (no utkface_split.csv beside the data)"
        caveat = HASH_SPLIT_CAVEAT
        log.warning("%s: %s", path.name, caveat)
    decoded, skipped = [], 0
    for name, data in _counted(iter_members(path), _member_total(path) if progress else None, progress):
        if not name.lower().endswith(IMAGE_SUFFIXES):
            continue
        labels = parse_utk_name(name)
        if labels is None:
            skipped += 1
            log.warning("%s: skipping %s (no age_gender_race label in the name)", path.name, name)
            continue
        img = _decode(data, 3)
        if img is None:
            skipped += 1
            log.warning("%s: skipping unreadable image %s", path.name, name)
            continue
        base = PurePosixPath(name).name
        split = split_table.get(base) or _content_split(data)
        decoded.append((base, img, detect_face(img, spec.detector), labels, split))
    images = _crop_faces([d[1] for d in decoded], [d[2] for d in decoded], spec)
    ys, splits, meta = [], [], []
    for base, _img, box, (age, gender, race), split in decoded:
        ys.append((age, gender))
        splits.append(split)
        meta.append((base, age, gender, race, box is not None))
    if decoded:
        log.info("UTKFace: face detected in %d of %d images", sum(m[4] for m in meta), len(meta))
    return {"x": images, "y": ys, "split": splits, "skipped": skipped, "split_source": source, "split_caveat": caveat,
            "meta": pd.DataFrame(meta, columns=["file", "age", "gender", "race", "detected"])}


# -- caching and public API --------------------------------------------------------

def _cache_file(kind: str, path: Path, spec: FaceSpec) -> Path:
    """Cache name from everything the decoded set depends on: loader, file, spec, detector, split table."""
    stat = path.stat()
    table = _utk_split_file(path) if kind == "utk" else None
    table_key = hashlib.sha1(table.read_bytes()).hexdigest() if table else "-"
    key = (f"{LOADER_VERSION}|{kind}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{spec}"
           f"|{effective_settings(FACE_IMAGE_DETECTORS[spec.detector])}|{DETECT_WIDTH}|{table_key}")
    return app_paths().cache_dir / f"{kind}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"


def load_all(kind: str, path: Path, spec: FaceSpec, progress: ProgressFn | None = None) -> dict:
    """The whole decoded set, from the cache when it has one; ``progress(done, total)`` reports the
    files read (and, for UTKFace, run through the face detector) on a first look."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if is_pack(path):  # already decoded and cropped: nothing to cache
        return load_pack(path, kind, spec)
    cache = _cache_file(kind, path, spec)
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
        if "meta" in data:
            data["meta"] = pd.read_json(io.StringIO(str(data["meta"])))
        return data
    if kind == "fer":
        raw = (_load_fer_csv(path, spec, progress) if archive_kind_or_csv(path) == "csv"
               else _load_fer_images(path, spec, progress))
    else:
        raw = _load_utk(path, spec, progress)
    if not raw["x"]:
        raise DataError(f"{path.name}: no labelled images found {DATA_KINDS[kind].layout}")
    data = {"x": np.stack(raw["x"]), "y": np.asarray(raw["y"]), "split": np.asarray(raw["split"]),
            "skipped": np.asarray(raw["skipped"]), "split_source": np.asarray(raw["split_source"]),
            "split_caveat": np.asarray(raw.get("split_caveat", ""))}
    to_save = dict(data)
    if "meta" in raw:
        data["meta"] = raw["meta"]
        to_save["meta"] = np.asarray(raw["meta"].to_json())
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, **to_save)
    tmp.replace(cache)
    prune(cache.parent, cache_cap(), pattern="*.npz", keep=[cache])  # oldest decoded sets go first
    return data


def split_images(task: str, path: Path | str, split: str) -> tuple[list[np.ndarray], np.ndarray]:
    """The decoded, uncropped images of one split and their labels (image-folder/archive forms).

    For measuring crops and detectors on the very images the loaders cut: FER2013 images
    grey, UTKFace images BGR, in archive order.
    """
    path = Path(path)
    images, labels = [], []
    if data_kind(task) == "fer":
        for name, data in iter_members(path):
            label = _fer_member_label(name)
            if label is not None and label[1] == split and (img := _decode(data, 1)) is not None:
                images.append(img)
                labels.append(label[0])
        return images, np.asarray(labels, dtype=np.int64)
    table, column = _utk_split_table(path), tasks.get(task).label_column
    for name, data in iter_members(path):
        labels_ = parse_utk_name(name) if name.lower().endswith(IMAGE_SUFFIXES) else None
        if labels_ is None or (table.get(PurePosixPath(name).name) or _content_split(data)) != split:
            continue
        if (img := _decode(data, 3)) is not None:
            images.append(img)
            labels.append(labels_[column])
    return images, np.asarray(labels, dtype=np.float32)


def archive_kind_or_csv(path: Path) -> str:
    if path.is_file() and path.suffix.lower() == ".csv":
        return "csv"
    return archive_kind(path)


def load_dataset(task: str, path: Path | str, split: str = "train", fraction: float = 1.0,
                 seed: int = 0, spec: FaceSpec | None = None) -> FaceDataset:
    """Load one split of the data set for ``task``; ``fraction`` < 1 keeps a random subset."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    info = tasks.get(task)
    spec = spec or info.default_spec
    kind = info.data_kind
    data = load_all(kind, Path(path), spec)
    idx = np.flatnonzero(data["split"] == split)
    if len(idx) == 0:
        raise DataError(f"{Path(path).name}: no images in the {split!r} split")
    if fraction < 1.0:
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(idx, size=max(1, int(round(len(idx) * fraction))), replace=False))
    if kind == "fer":
        y, groups = data["y"][idx].astype(np.int64), None
    else:  # UTKFace labels each image with (age, gender)
        y = data["y"][idx, info.label_column].astype(np.float32)
        groups = data["meta"].iloc[idx].reset_index(drop=True)
    class_names = list(info.class_names)
    return FaceDataset(task, split, data["x"][idx], y, spec, str(path), class_names, groups,
                       int(data["skipped"]), str(data["split_source"]))


def inspect(task: str, path: Path | str, samples: int = 16, seed: int = 0,
            progress: ProgressFn | None = None) -> DataSummary:
    """Validate a data set and summarise it (raises :class:`DataError` on bad data).

    ``progress(done, total)`` is called while a first look decodes the files (never when the
    decoded set comes from the cache); ``total`` is None when it is not known up front.
    """
    info = tasks.get(task)
    data = load_all(info.data_kind, Path(path), info.default_spec, progress)
    splits = {s: int((data["split"] == s).sum()) for s in SPLITS}
    summary = DataSummary(task, str(path), splits, skipped=int(data["skipped"]), split_source=str(data["split_source"]),
                          split_caveat=str(data["split_caveat"]))
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(data["y"]), size=min(samples, len(data["y"])), replace=False)
    if info.data_kind == "fer":
        counts = np.bincount(data["y"].astype(int), minlength=len(EMOTIONS))
        summary.class_counts = {name: int(c) for name, c in zip(EMOTIONS, counts)}
        summary.samples = [(data["x"][i], EMOTIONS[int(data["y"][i])]) for i in pick]
    else:
        ages, genders = data["y"][:, 0], data["y"][:, 1].astype(int)
        summary.ages = ages.astype(np.float32)
        summary.class_counts = {g: int((genders == i).sum()) for i, g in enumerate(GENDERS)}
        summary.samples = [(data["x"][i], f"{int(ages[i])} y, {GENDERS[genders[i]]}") for i in pick]
    return summary

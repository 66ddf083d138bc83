"""Small real data sets for training tests, cut from the FER2013 zip in ../shared.

A few hundred real faces keep a 1-epoch run to seconds of CPU while still going
through every real step (decode, preprocess, fit, evaluate, register). The subset
is written to the test's tmp folder, never into the repository.
"""
from __future__ import annotations

import csv
import random
import tarfile
import zipfile
from collections import defaultdict
from pathlib import Path

from conftest import shared_path

PER_CLASS = {"Training": 40, "PublicTest": 8, "PrivateTest": 8}   # x 7 classes = 392 images


def small_fer_zip(folder: Path, per_class: dict[str, int] = PER_CLASS) -> Path:
    """A FER2013 image-folder zip with ``per_class[usage]`` real images per emotion and split."""
    source = shared_path("data", "fer2013_images.zip")
    taken: dict[tuple[str, str], int] = defaultdict(int)
    target = Path(folder) / "fer_small.zip"
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for name in src.namelist():
            parts = name.split("/")
            if len(parts) != 4 or not parts[3].endswith(".jpg"):
                continue
            usage, emotion = parts[3].split("_", 1)[0], parts[2]
            if taken[usage, emotion] < per_class.get(usage, 0):
                taken[usage, emotion] += 1
                dst.writestr(name, src.read(name))
    return target


def small_utk_tar(folder: Path, per_split: dict[str, int] | None = None) -> Path:
    """A UTKFace tar with the first ``per_split[split]`` real faces of each split of the project's
    ``utkface_split.csv``, which is copied beside it so the loader keeps that split."""
    per_split = per_split or {"train": 240, "val": 40, "test": 60}

    split_csv = shared_path("data", "utkface_split.csv")
    source = shared_path("data", "utkface_96.tar")
    with open(split_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    wanted, taken = {}, defaultdict(int)
    random.Random(0).shuffle(rows)   # the file is sorted by name, i.e. by age: mix it
    for row in rows:
        if taken[row["split"]] < per_split.get(row["split"], 0):
            taken[row["split"]] += 1
            wanted[row["file"]] = row
    target = Path(folder) / "utk_small.tar"
    with tarfile.open(source) as src, tarfile.open(target, "w") as dst:
        for member in src:
            if member.isfile() and Path(member.name).name in wanted:
                dst.addfile(member, src.extractfile(member))
    with open(Path(folder) / "utkface_split.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(wanted.values())
    return target

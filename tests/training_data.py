"""Small real data sets for training tests, cut from the FER2013 zip in ../shared.

A few hundred real faces keep a 1-epoch run to seconds of CPU while still going
through every real step (decode, preprocess, fit, evaluate, register). The subset
is written to the test's tmp folder, never into the repository.
"""
from __future__ import annotations

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

"""Which crop (margin, alignment) suits a model on live-path crops: ``python -m benchmarks.crop_margin``.

The live app feeds each network the detector's box grown by the card's
``preprocess.margin`` and, with ``preprocess.align``, turned so the eyes are level. This
script runs a detector on every image of a split the way the loaders do (images upscaled
to webcam-like face sizes, the largest face taken), cuts each found face at several
margins with and without alignment through the one preprocessing function, and prints
the model's figure per crop. Every image counts: for emotion, an image without a face
found counts as wrong (the live path never sees that face); for age and gender, the
figure is over the faces found, and how many were not is printed. Choose on ``--split
val``; report on ``test``.
"""
import core  # noqa: F401  (first: safe native-library import order)

import argparse
import dataclasses
import json

import numpy as np

from core import tasks
from core.detection import DETECTORS, Detection
from core.models import TaskModel
from core.preprocess import FaceSpec, preprocess_face
from core.registry import read_card
from training.data import detect_face, detect_face_upscaled, split_images
from training.evaluate import decide, predict

MARGINS = (0.0, 0.05, 0.08, 0.1, 0.12, 0.15)
DEFAULT_DATA = {"emotion": "../shared/data/fer2013_images.zip", "age": "../shared/data/utkface_96.tar",
                "gender": "../shared/data/utkface_96.tar"}


def detected_faces(images, detector: str = "yunet") -> tuple[np.ndarray, list, list[Detection]]:
    """Indices, upscaled BGR images and detections of the images where a face was found
    (the loaders' own detection step, :func:`training.data.detect_face_upscaled`)."""
    index, frames, found = [], [], []
    for i, img in enumerate(images):
        frame, face = detect_face_upscaled(img, detector)
        if face is not None:
            index.append(i)
            frames.append(frame)
            found.append(face)
    return np.array(index, dtype=int), frames, found


def figure(task: str, y: np.ndarray, raw: np.ndarray, total: int | None = None) -> float:
    """Accuracy (emotion: counted over ``total`` images, misses wrong) or MAE in years."""
    pred = decide(task, raw)
    if tasks.get(task).metric == "mae":
        return float(np.mean(np.abs(pred - y)))
    return float(np.sum(pred == y) / (total or len(y)))


def score_crops(model: TaskModel, frames: list, found: list, y: np.ndarray, spec: FaceSpec,
                margins=MARGINS, aligns=(False, True), total: int | None = None) -> dict[tuple[float, bool], float]:
    """The model's figure for each (margin, align) crop of the same detected faces."""
    out = {}
    for align in aligns:
        for margin in margins:
            crop = dataclasses.replace(spec, margin=margin, align=align)
            x = np.stack([preprocess_face(f, crop, d.box, d.landmarks) for f, d in zip(frames, found)])
            out[(margin, align)] = figure(model.task, y, predict(model, x), total)
    return out


def faces_of_split(task: str, data: str, split: str, detector: str):
    """(images, labels, index of found, frames to crop from, detections). UTKFace faces are cut
    from the images themselves (as the loaders do); FER2013's from the 4x upscaled copies (as the
    live path meets them: webcam-sized faces)."""
    images, y = split_images(task, data, split)
    if not tasks.get(task).data.detects_faces:  # FER2013: faces found in the 4x upscaled copies
        index, frames, found = detected_faces(images, detector)
        return images, y, index, frames, found
    dets = [detect_face(img, detector) for img in images]
    index = np.array([i for i, d in enumerate(dets) if d is not None], dtype=int)
    return images, y, index, [images[i] for i in index], [dets[i] for i in index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="emotion", choices=("emotion", "age", "gender"))
    parser.add_argument("--model", help="default: models/<task>.keras")
    parser.add_argument("--data", help="default: the shared data set of the task")
    parser.add_argument("--split", default="val", choices=("val", "test"))
    parser.add_argument("--detector", default="yunet", choices=DETECTORS)
    parser.add_argument("--margins", type=float, nargs="+", default=list(MARGINS))
    parser.add_argument("--align", choices=("both", "on", "off"), default="both")
    parser.add_argument("--square", choices=("on", "off"), default="on",
                        help="crop a square about the box (FaceSpec.square) or the box itself")
    args = parser.parse_args()
    path = args.model or f"models/{args.task}.keras"
    card = read_card(path)
    model = TaskModel.load(path, card)
    spec = dataclasses.replace(FaceSpec.from_dict(card["preprocess"]), square=args.square == "on")
    images, y, index, frames, found = faces_of_split(args.task, args.data or DEFAULT_DATA[args.task],
                                                     args.split, args.detector)
    aligns = {"both": (False, True), "on": (True,), "off": (False,)}[args.align]
    facts = tasks.get(args.task)
    total = None if facts.data.detects_faces else len(y)  # FER2013: an image whose face is missed counts wrong
    results = score_crops(model, frames, found, y[index], spec, tuple(args.margins), aligns, total)
    metric = facts.metric_title + (" (misses wrong)" if total else "")
    print(f"{args.task} {args.split}, detector {args.detector}: face found in {len(index)} of {len(y)} images "
          f"({len(y) - len(index)} without); card: margin {spec.margin}, align {spec.align}, "
          f"detector {spec.detector}; square crops {args.square}")
    if total:  # FER2013's images are faces already: the whole image too
        whole = figure(args.task, y, predict(model, np.stack([preprocess_face(i, spec) for i in images])))
        print(f"{'whole images (no detector)':<28}{whole:>10.4f}")
    print(f"{'crop':<28}{metric:>10}")
    for (margin, align), value in results.items():
        print(f"{f'margin {margin:.2f}' + (', aligned' if align else ''):<28}{value:>10.4f}")
    if args.split == "val":  # choose here; test only reports the choice
        best = min(results, key=lambda crop: facts.sort_key(results[crop]))
        print(f"best on val: margin {best[0]:.2f}, align {best[1]}")
    print(json.dumps({"task": args.task, "split": args.split, "detector": args.detector, "n": len(y),
                      "found": len(index), "by_crop": {f"{m}|{'align' if a else 'plain'}": v
                                                       for (m, a), v in results.items()}}))


if __name__ == "__main__":
    main()

"""Which crop margin makes live emotion crops look like FER2013's faces: ``python -m benchmarks.crop_margin``.

FER2013 faces are framed a little wider than the Haar detector's box, and the live app
feeds the network the detector's box grown by the card's ``preprocess.margin``. This
script finds the face in each FER2013 image with the app's detector (images upscaled 4x
so the face spans webcam-like pixel sizes), crops it at several margins the way the app
does, and prints the emotion model's accuracy per margin beside its accuracy on the
uncropped images. Choose the margin on ``--split val``; report on ``test``.
"""
import core  # noqa: F401  (first: safe native-library import order)

import argparse
import dataclasses
import json

import numpy as np

from core.models import TaskModel
from core.preprocess import FaceSpec, preprocess_face
from core.registry import read_card
from training.data import detect_face_upscaled, load_dataset
from training.evaluate import predict

MARGINS = (0.0, 0.05, 0.08, 0.1, 0.12, 0.15)


def detected_faces(images: np.ndarray) -> tuple[np.ndarray, list, list]:
    """Indices, upscaled BGR images and detector boxes of the images where a face was found
    (the loaders' own detection step, :func:`training.data.detect_face_upscaled`)."""
    index, frames, boxes = [], [], []
    for i, img in enumerate(images):
        frame, box = detect_face_upscaled(img)
        if box is not None:
            index.append(i)
            frames.append(frame)
            boxes.append(box)
    return np.array(index, dtype=int), frames, boxes


def accuracy_by_margin(model: TaskModel, frames: list, boxes: list, y: np.ndarray, spec: FaceSpec,
                       margins=MARGINS) -> dict[float, float]:
    out = {}
    for margin in margins:
        crop_spec = dataclasses.replace(spec, margin=margin)
        x = np.stack([preprocess_face(frame, crop_spec, box) for frame, box in zip(frames, boxes)])
        out[margin] = float(np.mean(predict(model, x).argmax(axis=1) == y))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/emotion.keras")
    parser.add_argument("--data", default="../shared/data/fer2013_images.zip")
    parser.add_argument("--split", default="val", choices=("val", "test"))
    args = parser.parse_args()
    card = read_card(args.model)
    model = TaskModel.load(args.model, card)
    spec = FaceSpec.from_dict(card["preprocess"])
    data = load_dataset("emotion", args.data, args.split, spec=spec)
    index, frames, boxes = detected_faces(data.x)
    y = data.y[index]
    whole = float(np.mean(predict(model, data.x[index]).argmax(axis=1) == y))
    print(f"{args.split}: face found in {len(index)} of {len(data.y)} images; card margin {spec.margin}")
    print(f"{'crop':<16}{'accuracy':>10}")
    print(f"{'whole image':<16}{whole:>10.4f}")
    results = accuracy_by_margin(model, frames, boxes, y, spec)
    for margin, acc in results.items():
        print(f"{'margin ' + format(margin, '.2f'):<16}{acc:>10.4f}")
    print(json.dumps({"split": args.split, "n": len(index), "whole_image": whole,
                      "by_margin": {str(k): v for k, v in results.items()}}))


if __name__ == "__main__":
    main()

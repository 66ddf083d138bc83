"""Choosing what to ship: every candidate combination of trained models, scored on validation.

Each model predicts each split once, on the faces and on their mirror images; a candidate
(one model or several averaged, with or without their mirror images) is then scored from
those predictions. Averaging outputs is exactly what :func:`training.builders.build_ensemble`
computes, so a candidate's figures equal what ``ensemble`` then ``evaluate`` print for it,
at a fraction of the time. Candidates are ranked by validation: the test figure beside it is
for reporting, never for choosing.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from core import tasks
from core.models import TaskModel, load_keras_model
from training.data import load_dataset
from training.ensemble import member_cards
from training.evaluate import headline, predict

SPLITS = ("val", "test")


def score_candidates(task: str, data: str | Path, models: list[str], max_members: int = 2) -> list[dict]:
    """Every group of 1..``max_members`` models, each with and without the mirror, with their
    validation and test figures, best on validation first (ties: fewer passes first)."""
    cards, spec = member_cards(task, models)
    sets = {split: load_dataset(task, data, split, spec=spec) for split in SPLITS}
    outputs = {}
    for path, card in zip(models, cards):
        model = TaskModel(task, load_keras_model(Path(path)), card)
        for split, ds in sets.items():
            outputs[path, split] = (predict(model, ds.x), predict(model, ds.x[:, :, ::-1]))
    groups = [(m, mirror) for k in range(1, max_members + 1) for m in itertools.combinations(models, k)
              for mirror in (False, True)]
    rows = []
    for members, mirror in groups:
        row = {"models": list(members), "mirror": mirror, "passes": len(members) * (2 if mirror else 1)}
        for split, ds in sets.items():
            views = [outputs[m, split][v] for m in members for v in ((0, 1) if mirror else (0,))]
            row[split] = headline(task, ds.y, np.mean(views, axis=0))
        rows.append(row)
    info = tasks.get(task)
    return sorted(rows, key=lambda r: (info.sort_key(r["val"]), r["passes"]))

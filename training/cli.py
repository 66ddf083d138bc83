"""``python -m training fit|ensemble|select|evaluate|set-crop|inspect|pack`` — the training library from the shell."""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import sys
from pathlib import Path

from core.config import TASKS


def _parser() -> argparse.ArgumentParser:
    from core.detection import DETECTORS
    from training.builders import ARCHITECTURES, PRECISIONS

    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="train a model, evaluate it on the reporting split, save it with its card")
    fit.add_argument("--task", required=True, choices=TASKS)
    fit.add_argument("--data", required=True, help="FER2013 CSV/zip/folder or UTKFace folder/zip/tar(.gz)")
    fit.add_argument("--arch", default="default", choices=sorted(ARCHITECTURES))
    fit.add_argument("--epochs", type=int)
    fit.add_argument("--batch-size", type=int)
    fit.add_argument("--lr", type=float, help="learning rate (peak rate for the cosine schedule)")
    fit.add_argument("--no-augment", action="store_true")
    fit.add_argument("--fraction", type=float, default=1.0, help="use this fraction of each split (quick runs)")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--out", default="runs/latest", help="output folder (model.keras, card.json, evaluation.json)")
    fit.add_argument("--progress", help="append JSON-line progress events to this file")
    fit.add_argument("--init", help="start from this trained model's weights (same task and architecture; a "
                                    "combined model is fine-tuned as a whole)")
    fit.add_argument("--precision", default="float32", choices=sorted(PRECISIONS),
                     help="mixed_bfloat16: bfloat16 compute, float32 weights; faster on CPUs with AVX512-BF16")
    fit.add_argument("--teacher", action="append", default=[],
                     help="distil from this trained model (repeat for several; their mean prediction is used)")
    fit.add_argument("--distill", type=float, default=0.5,
                     help="weight of the teachers' predictions in the training targets (0-1)")
    fit.add_argument("--report-split", default="test", choices=("val", "test"),
                     help="split to report on after training (val for a pack without the test split)")
    fit.add_argument("--workers", type=int, default=2, help="augmentation threads")
    fit.add_argument("--detector", default="yunet", choices=DETECTORS,
                     help="the face detector that cuts training faces")
    fit.add_argument("--align", choices=("on", "off"),
                     help="turn faces so the eyes are level (default: the task's crop)")
    fit.add_argument("--margin", type=float, help="crop margin around the detector's box (default: the task's crop)")
    pk = sub.add_parser("pack", help="write a task's preprocessed faces to one compact .npz to train from elsewhere")
    pk.add_argument("--task", required=True, choices=TASKS)
    pk.add_argument("--data", required=True)
    pk.add_argument("--out", required=True, help="the .npz file to write")
    pk.add_argument("--splits", nargs="+", default=["train", "val", "test"], choices=("train", "val", "test"))
    pk.add_argument("--quality", type=int, default=101, help="WebP quality 1-100, or 101 for lossless (default)")
    sel = sub.add_parser("select", help="score every group of up to --max-members models (default: singles and pairs), "
                                        "with and without the mirror, on validation (and test), best on "
                                        "validation first: what to combine")
    sel.add_argument("--task", required=True, choices=TASKS)
    sel.add_argument("--data", required=True)
    sel.add_argument("--models", required=True, nargs="+", help="model.keras files (cards beside them)")
    sel.add_argument("--max-members", type=int, default=2, help="largest group of models to average")
    ens = sub.add_parser("ensemble", help="combine trained models of one task (and their mirror views) into one")
    ens.add_argument("--task", required=True, choices=TASKS)
    ens.add_argument("--models", required=True, nargs="+", help="member model.keras files (cards beside them)")
    ens.add_argument("--data", required=True, help="the data set to evaluate the combined model on")
    ens.add_argument("--no-flip", action="store_true", help="do not average over mirrored faces")
    ens.add_argument("--out", default="runs/ensemble")
    ev = sub.add_parser("evaluate", help="print one JSON line of metrics on a split")
    ev.add_argument("--task", required=True, choices=TASKS)
    ev.add_argument("--model", required=True, help="model.keras file (its card.json or <name>.json beside it)")
    ev.add_argument("--data", required=True)
    ev.add_argument("--split", default="test", choices=("train", "val", "test"))
    ev.add_argument("--details", help="write the full evaluation (per class, per group, predictions) here")
    ev.add_argument("--detector", choices=DETECTORS,
                    help="cut the faces with this detector instead of the one in the model's card")
    ev.add_argument("--write-card", action="store_true",
                    help="record these metrics (and per-group figures) in the model's card")
    mar = sub.add_parser("set-crop", aliases=["set-margin"],
                         help="set how live inference crops faces for a model: margin, alignment, detector "
                              "(recorded in its card)")
    mar.add_argument("--model", required=True, help="model.keras file (its card.json or <name>.json beside it)")
    mar.add_argument("--margin", type=float, help="share of the face box added on each side, -0.2 to 1")
    mar.add_argument("--align", choices=("on", "off"), help="turn faces so the eyes are level (needs landmarks)")
    mar.add_argument("--detector", choices=DETECTORS, help="the detector whose boxes this crop is meant for")
    mar.add_argument("--square", choices=("on", "off"), help="crop a square about the box rather than the box itself")
    mar.add_argument("--why", required=True, help="how the crop was chosen (kept in the card)")
    ins = sub.add_parser("inspect", help="validate a data set and print its counts")
    ins.add_argument("--task", required=True, choices=TASKS)
    ins.add_argument("--data", required=True)
    return parser


def argv_from_cli() -> bool:
    """True when running as ``python -m training`` (so sys.argv is the command to record)."""
    return Path(sys.argv[0]).name in ("__main__.py", "training")


def _command_line() -> str:
    """This invocation as a command to record in a card."""
    return "python -m training " + shlex.join(sys.argv[1:] if argv_from_cli() else [])


def _report(result) -> int:
    """What fit and ensemble print: the metrics line, and where the model went."""
    print(json.dumps(result.card["metrics"]))
    print(f"saved {result.model_path}", file=sys.stderr)
    return 0


def _run_fit(args) -> int:
    from training.fit import FitConfig, fit

    cfg = FitConfig(task=args.task, data=args.data, arch=args.arch, epochs=args.epochs, batch_size=args.batch_size,
                    learning_rate=args.lr, augment=not args.no_augment, fraction=args.fraction, seed=args.seed,
                    out=args.out, progress=args.progress, init=args.init, precision=args.precision,
                    teachers=tuple(args.teacher), distill=args.distill, report_split=args.report_split,
                    workers=args.workers, detector=args.detector, margin=args.margin,
                    align=None if args.align is None else args.align == "on")
    return _report(fit(cfg))


def _run_pack(args) -> int:
    from training.pack import pack

    print(json.dumps(pack(args.task, args.data, args.out, args.splits, args.quality)))
    return 0


def _run_select(args) -> int:
    from training.select import score_candidates

    for row in score_candidates(args.task, args.data, args.models, args.max_members):
        print(json.dumps(row))
    return 0


def _run_ensemble(args) -> int:
    from training.ensemble import EnsembleConfig, combine

    return _report(combine(EnsembleConfig(task=args.task, models=args.models, data=args.data,
                                          flip=not args.no_flip, out=args.out)))


def _run_evaluate(args) -> int:
    from core.models import TaskModel
    from core.preprocess import FaceSpec
    from core.registry import card_path, write_json_atomic
    from training.data import face_detector_record, load_dataset
    from training.evaluate import evaluate, summary_line

    path = Path(args.model)
    card_file = card_path(path)
    card = json.loads(card_file.read_text())
    if card.get("task") != args.task:
        raise ValueError(f"{path} is a model for {card.get('task')}, not for {args.task}")
    model = TaskModel.load(path, card)
    spec = FaceSpec.from_dict(card["preprocess"])
    if args.detector:
        spec = dataclasses.replace(spec, detector=args.detector)
        if args.write_card:
            card["preprocess"] = spec.to_dict()  # the figures are for faces this detector cut
    data = load_dataset(args.task, args.data, args.split, spec=spec)
    details = evaluate(model, data)
    if args.details:
        write_json_atomic(Path(args.details), details)
    if args.write_card:
        card["metrics"] = summary_line(details)
        card["metrics_by_group"] = details.get("by_group", {})
        card["detector"] = face_detector_record(args.task, spec)  # the detector that cut the faces of these figures
        # the metrics now come from this split of this file, whatever the model was trained from
        card["dataset"] = {**card.get("dataset", {}), "report_split": args.split, "evaluated_on": Path(args.data).name}
        card["evaluated_with"] = _command_line()
        write_json_atomic(card_file, card)
    print(json.dumps(summary_line(details)))
    return 0


def _run_set_crop(args) -> int:
    """Live crops may need another margin, alignment or detector than training used (FER2013
    images are whole faces framed wider than a detector's box); the card holds them, so the
    change is recorded there."""
    from datetime import datetime, timezone

    from core.preprocess import FaceSpec
    from core.registry import card_path, write_json_atomic

    if args.margin is not None and not -0.2 <= args.margin <= 1.0:
        raise ValueError(f"--margin must be between -0.2 and 1, not {args.margin}")
    if args.margin is None and args.align is None and args.detector is None and args.square is None:
        raise ValueError("nothing to set: give --margin, --align, --detector or --square")
    card_file = card_path(Path(args.model))
    card = json.loads(card_file.read_text())
    before = FaceSpec.from_dict(card["preprocess"])
    changes = {k: v for k, v in (("margin", args.margin), ("align", None if args.align is None else args.align == "on"),
                                 ("detector", args.detector),
                                 ("square", None if args.square is None else args.square == "on")) if v is not None}
    after = dataclasses.replace(before, **changes)
    card["preprocess"] = after.to_dict()
    card["preprocess_note"] = args.why
    card.setdefault("card_edits", []).append({
        "command": _command_line(), "margin_before": before.margin, "preprocess_before": before.to_dict(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    write_json_atomic(card_file, card)
    print(json.dumps({"model": str(args.model), **changes, "margin_before": before.margin}))
    return 0


def _run_inspect(args) -> int:
    from training.data import inspect

    summary = inspect(args.task, args.data)
    print(json.dumps({"splits": summary.splits, "class_counts": summary.class_counts,
                      "skipped": summary.skipped}))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from training.archives import DataError

    commands = {"fit": _run_fit, "ensemble": _run_ensemble, "evaluate": _run_evaluate, "inspect": _run_inspect,
                "set-crop": _run_set_crop, "set-margin": _run_set_crop, "pack": _run_pack, "select": _run_select}
    try:
        return commands[args.command](args)
    except (DataError, FileNotFoundError, ValueError) as exc:  # bad data, paths or models: a message, not a trace
        print(f"error: {exc}", file=sys.stderr)
        return 2

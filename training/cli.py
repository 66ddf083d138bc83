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
    from training.options import add_fit_arguments

    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="train a model, evaluate it on the reporting split, save it with its card")
    add_fit_arguments(fit)
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
    from training.fit import fit
    from training.options import TrainOptions

    return _report(fit(TrainOptions.from_args(args)))


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
    from core.card import card_path, load_card, write_card, write_json_atomic
    from core.models import TaskModel
    from training.data import face_detector_record, load_dataset
    from training.evaluate import evaluate, summary_line

    path = Path(args.model)
    card = load_card(path)
    if card.task != args.task:
        raise ValueError(f"{path} is a model for {card.task}, not for {args.task}")
    model = TaskModel.load(path, card)
    spec = card.preprocess
    if args.detector:
        spec = dataclasses.replace(spec, detector=args.detector)
    data = load_dataset(args.task, args.data, args.split, spec=spec)
    details = evaluate(model, data)
    if args.details:
        write_json_atomic(Path(args.details), details)
    if args.write_card:
        card = card.replace(
            preprocess=spec,  # with --detector: the figures are for faces this detector cut
            metrics=summary_line(details), metrics_by_group=details.get("by_group", {}),
            detector=face_detector_record(args.task, spec),  # the detector that cut the faces of these figures
            # the metrics now come from this split of this file, whatever the model was trained from
            dataset={**(card.dataset or {}), "report_split": args.split, "evaluated_on": Path(args.data).name},
            evaluated_with=_command_line())
        write_card(card_path(path), card)
    print(json.dumps(summary_line(details)))
    return 0


def _run_set_crop(args) -> int:
    """Live crops may need another margin, alignment or detector than training used (FER2013
    images are whole faces framed wider than a detector's box); the card holds them, so the
    change is recorded there."""
    from datetime import datetime, timezone

    from core.card import card_path, load_card, write_card

    if args.margin is not None and not -0.2 <= args.margin <= 1.0:
        raise ValueError(f"--margin must be between -0.2 and 1, not {args.margin}")
    if args.margin is None and args.align is None and args.detector is None and args.square is None:
        raise ValueError("nothing to set: give --margin, --align, --detector or --square")
    card = load_card(Path(args.model))
    before = card.preprocess
    changes = {k: v for k, v in (("margin", args.margin), ("align", None if args.align is None else args.align == "on"),
                                 ("detector", args.detector),
                                 ("square", None if args.square is None else args.square == "on")) if v is not None}
    after = dataclasses.replace(before, **changes)
    edit = {"command": _command_line(), "margin_before": before.margin, "preprocess_before": before.to_dict(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    card = card.replace(preprocess=after, preprocess_note=args.why,
                        card_edits=[*(card.extra.get("card_edits") or []), edit])
    write_card(card_path(Path(args.model)), card)
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

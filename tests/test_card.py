"""The model card type: every shipped card and cards of earlier versions load, round-trip and stay
readable where the app reads them; writes go through the type; the folder layout has one home."""
from __future__ import annotations

import core  # noqa: F401  (first: safe native-library import order)

import json
from pathlib import Path

import pytest

from core.card import (CARD_FILE, MODEL_FILE, ModelCard, ModelFolder, card_path, load_card, merge_runs,
                       shipped_files, training_runs, write_card)
from core.config import SHIPPED_MODELS_DIR, TASKS
from core.preprocess import FaceSpec
from core.registry import ModelRegistry, shipped_model

FIXTURES = Path(__file__).parent / "data" / "cards"
SHIPPED_CARDS = sorted(SHIPPED_MODELS_DIR.glob("*.json"))


@pytest.mark.parametrize("path", SHIPPED_CARDS, ids=lambda p: p.name)
def test_every_shipped_card_loads_and_round_trips_unchanged(path):
    data = json.loads(path.read_text())
    card = ModelCard.from_dict(data)
    assert card.to_dict() == data
    assert ModelCard.from_dict(card.to_dict()) == card
    assert card.task == path.stem and isinstance(card.preprocess, FaceSpec)
    assert card.preprocess == FaceSpec.from_dict(data["preprocess"])
    assert list(card.names) == data["class_names"] and card.metrics == data["metrics"]
    assert dict(card) == data, "the mapping view is the JSON form"
    assert card["metrics"] == data["metrics"] and card.get("no such key", 1) == 1


def test_shipped_cards_were_found():
    assert {p.stem for p in SHIPPED_CARDS} == set(TASKS)


@pytest.mark.parametrize("name", ["emotion_shipped_before_card_type.json", "age_shipped_before_card_type.json"])
def test_a_card_written_by_the_previous_version_loads_and_round_trips(name):
    data = json.loads((FIXTURES / name).read_text())
    card = ModelCard.from_dict(data)
    assert card.to_dict() == data
    assert card.extra["card_edits"] == data["card_edits"] and card.extra["ensemble"] == data["ensemble"]
    assert training_runs(card) == data["training_runs"]


def test_the_first_shipped_card_loads_with_its_implicit_crop():
    """Written before FaceSpec had recrop/align/detector/square: they read as what they meant then."""
    data = json.loads((FIXTURES / "emotion_first_shipped.json").read_text())
    assert set(data["preprocess"]) == {"size", "channels", "margin"}
    card = ModelCard.from_dict(data)
    assert card.preprocess == FaceSpec(size=48, channels=1, margin=0.0, recrop=False, align=False, detector="haar",
                                       square=False)
    again = ModelCard.from_dict(card.to_dict())
    assert again == card, "written back, the crop is spelt out and means the same"
    assert {k: v for k, v in again.to_dict().items() if k != "preprocess"} == \
        {k: v for k, v in data.items() if k != "preprocess"}


def test_explicit_nulls_and_unknown_keys_survive_a_round_trip():
    data = {"task": "emotion", "preprocess": FaceSpec().to_dict(), "class_names": [], "detector": None,
            "command": None, "job_id": "emotion-1", "options": {"epochs": 1}, "future_field": {"x": [1]}}
    card = ModelCard.from_dict(data)
    assert card.to_dict() == data
    assert card.command is None and card.extra["job_id"] == "emotion-1"


def test_minimal_and_bad_cards():
    assert ModelCard.from_dict({"task": "age"}).to_dict() == {"task": "age"}
    for bad in ({}, {"task": None}, {"task": "age", "preprocess": {"size": 48}}, "not a card"):
        with pytest.raises(ValueError):
            ModelCard.from_dict(bad)


def test_replace_sets_typed_fields_and_other_keys_and_leaves_the_original():
    card = ModelCard.from_dict({"task": "gender", "epochs": 3, "detector": None})
    changed = card.replace(epochs=4, detector={"kind": "yunet"}, note="x")
    assert changed.epochs == 4 and changed.extra == {"detector": {"kind": "yunet"}, "note": "x"}
    assert card.epochs == 3 and card.extra == {"detector": None}
    assert "epochs" not in card.replace(epochs=None).to_dict()


def test_provenance_runs_follow_warm_starts_and_merge_each_run_once():
    first = {"task": "age", "command": "fit a", "epochs": 2}
    warm = {"task": "age", "command": "fit b", "epochs": 3, "init": {"command": "fit a", "epochs": 2, "init": None}}
    assert training_runs(ModelCard.from_dict(warm)) == [{"command": "fit a", "epochs": 2},
                                                        {"command": "fit b", "epochs": 3}]
    taught = [{"command": "fit a", "epochs": 2, "role": "teacher"}]
    assert merge_runs([taught, training_runs(first)]) == [{"command": "fit a", "epochs": 2}]


def test_model_folder_layout_and_card_lookup(tmp_path):
    class Saver:
        def save(self, path):
            Path(path).write_bytes(b"keras")

    folder = ModelFolder(tmp_path / "run")
    assert not folder.is_complete()
    model_file = folder.save(Saver(), {"task": "emotion", "class_names": []}, {"n": 0})
    assert model_file == tmp_path / "run" / MODEL_FILE and folder.is_complete()
    assert folder.card_file.name == CARD_FILE and folder.read_card() == ModelCard("emotion", class_names=())
    assert folder.read_evaluation() == {"n": 0}
    assert card_path(model_file) == folder.card_file and load_card(model_file).task == "emotion"
    assert sorted(p.name for p in folder.path.iterdir()) == [CARD_FILE, "evaluation.json", MODEL_FILE]

    shipped_keras, shipped_json = shipped_files("age")
    assert (shipped_keras.name, shipped_json.name) == ("age.keras", "age.json")
    assert card_path(shipped_keras) == shipped_json
    write_card(tmp_path / "out.json", ModelCard("age"))
    assert json.loads((tmp_path / "out.json").read_text()) == {"task": "age"}


def test_registry_entries_hold_cards_and_register_accepts_either_form(tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    shipped = shipped_model("gender")
    assert isinstance(shipped.card, ModelCard) and shipped.card.to_dict() == json.loads(
        (SHIPPED_MODELS_DIR / "gender.json").read_text())
    model = tmp_path / "m.keras"
    model.write_bytes(b"keras")
    as_dict = registry.register(model, {**shipped.card, "created": None})
    as_card = registry.register(model, shipped.card.replace(created=None))
    for entry in (as_dict, as_card):
        assert entry.card.created and entry.card.replace(created=None) == shipped.card.replace(created=None)
        assert entry.created == entry.card.created
    with pytest.raises(ValueError, match="unknown task"):
        registry.register(model, {"task": "height"})

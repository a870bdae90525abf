"""Every document kind survives JSON and YAML round trips, and agrees with its exported JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator
from samples import SAMPLES, sample

from codirector.schemas import DOCUMENT_TYPES, dump_document, load_document, validate_data
from codirector.schemas.documents import packaged_json_schema

KINDS = sorted(DOCUMENT_TYPES)


def test_every_kind_has_a_sample() -> None:
    assert set(SAMPLES) == set(DOCUMENT_TYPES)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_round_trip_through_files(kind: str, suffix: str, tmp_path: Path) -> None:
    original = validate_data(sample(kind), kind)
    path = dump_document(original, tmp_path / f"doc{suffix}")
    loaded = load_document(path)  # recognised by its `kind` field
    assert type(loaded) is type(original)
    assert loaded == original
    assert loaded.model_dump(mode="json") == original.model_dump(mode="json")


@pytest.mark.parametrize("kind", KINDS)
def test_dump_satisfies_the_committed_json_schema(kind: str) -> None:
    document = validate_data(sample(kind), kind)
    schema = packaged_json_schema(kind)
    Draft202012Validator.check_schema(schema)
    errors = list(Draft202012Validator(schema).iter_errors(document.model_dump(mode="json")))
    assert errors == []


@pytest.mark.parametrize("kind", KINDS)
def test_dumps_carry_kind_and_version(kind: str) -> None:
    data = validate_data(sample(kind), kind).model_dump(mode="json")
    assert data["kind"] == kind
    assert data["schema_version"] == "1"


def test_yaml_dates_stay_strings(tmp_path: Path) -> None:
    # A plain YAML loader would turn created_at into a datetime, which the JSON Schema rejects.
    path = tmp_path / "manifest.yaml"
    data = sample("render_manifest")
    data["created_at"] = "2026-11-22 10:00:00"
    path.write_text(yaml.safe_dump(data))
    manifest = load_document(path)
    assert manifest.created_at.year == 2026


def test_job_relative_paths_resolve_against_the_job_folder(tmp_path: Path) -> None:
    folder = tmp_path / "jobs"
    folder.mkdir()
    data = sample("job")
    data["scene_image"] = "media/scene.jpg"
    data["characters"][1]["audio"] = "../voice.wav"
    (folder / "job.json").write_text(json.dumps(data))
    job = load_document(folder / "job.json")
    assert job.scene_image == folder / "media/scene.jpg"
    assert job.characters[1].audio == folder / "../voice.wav"
    assert job.characters[0].audio == Path("/media/host.wav")  # absolute paths stay as they are


def test_wrong_schema_version_is_rejected() -> None:
    data = sample("storyline")
    data["schema_version"] = "2"
    with pytest.raises(Exception, match="schema_version"):
        validate_data(data, "storyline")

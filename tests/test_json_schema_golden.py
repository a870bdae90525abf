"""The committed JSON Schemas in schemas/json/ are exactly what the models export today."""

from __future__ import annotations

from pathlib import Path

from helpers import REPO

from codirector.schemas import DOCUMENT_TYPES, export_json_schemas

COMMITTED = REPO / "schemas" / "json"


def test_committed_schemas_match_the_models(tmp_path: Path) -> None:
    written = export_json_schemas(tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in COMMITTED.glob("*.schema.json"))
    stale = [p.name for p in written if p.read_text() != (COMMITTED / p.name).read_text()]
    assert stale == [], f"run `codirector schema export schemas/json` and commit: {stale} changed"


def test_every_kind_has_a_draft_2020_12_schema() -> None:
    import json

    for kind in DOCUMENT_TYPES:
        schema = json.loads((COMMITTED / f"{kind}.schema.json").read_text())
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["additionalProperties"] is False
        assert schema["properties"]["kind"]["const"] == kind

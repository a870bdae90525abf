"""What an eval run reuses, so iterating on prompts is a loop of seconds for what did not change.

- Plans are cached by job (with its media), providers and codirector's version, and reused when every prompt the
  plan *recorded using* still has the same hash. This is finer than the director's own checkpoint (which hashes the
  whole prompt folder): editing the storyline prompt does not re-plan a case whose plan never read it, such as
  every case planned offline except through the lexicon and opposites tables.
- Renders reuse the cascade's run folders (keyed by plan and backend), so an unchanged plan renders in no time.
- Render metrics are cached by the video's sha256 and the extractors' names.

Everything lives under ``Config.home / "evals"`` and is written atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from codirector import __version__
from codirector.errors import UserError
from codirector.prompts.templates import current_ref
from codirector.schemas import Plan, dump_document, load_document
from codirector.schemas.documents import write_text_atomic

__all__ = ["EvalCache"]

logger = logging.getLogger(__name__)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EvalCache:
    """Plans and render metrics from earlier runs, under `root` (``Config.home / "evals"``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # plans -----------------------------------------------------------------------------------------------------
    def plan_key(self, job_sha256: str, providers: Mapping[str, str], provider_options: Mapping[str, Any]) -> str:
        # API keys change nothing about a plan; the server and model do
        options = {k: v for k, v in sorted(provider_options.items()) if k != "api_key"}
        return _sha(json.dumps([job_sha256, sorted(providers.items()), options, __version__], default=str))

    def find_plan(self, key: str, prompts_dir: Path | None) -> Plan | None:
        """A cached plan for `key` whose recorded prompts all still hash the same under `prompts_dir`."""
        folder = self.root / "plans" / key
        if not folder.is_dir():
            return None
        for path in sorted(folder.glob("*.plan.json")):
            try:
                plan = load_document(path, "plan")
            except (UserError, ValidationError):
                logger.warning("ignoring unreadable cached plan %s", path)
                continue
            if isinstance(plan, Plan) and all(
                (ref_now := current_ref(ref.id, prompts_dir)) is not None and ref_now.sha256 == ref.sha256
                for ref in plan.prompt_refs
            ):
                return plan
        return None

    def store_plan(self, key: str, plan: Plan) -> Path:
        prompts = _sha(json.dumps(sorted((r.id, r.sha256) for r in plan.prompt_refs)))
        return dump_document(plan, self.root / "plans" / key / f"{prompts[:16]}.plan.json")

    # render metrics --------------------------------------------------------------------------------------------
    def _metrics_path(self, video_sha256: str, extractors: str) -> Path:
        return self.root / "render_metrics" / f"{_sha(video_sha256 + '|' + extractors)[:32]}.json"

    def find_render_metrics(self, video_sha256: str, extractors: str) -> dict[str, Any] | None:
        path = self._metrics_path(video_sha256, extractors)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and {"metrics", "details"} <= data.keys() else None

    def store_render_metrics(self, video_sha256: str, extractors: str, data: dict[str, Any]) -> None:
        write_text_atomic(self._metrics_path(video_sha256, extractors), json.dumps(data))

"""Running a suite: plan each case, score the plan, render it, score the video, write one JSON line per case.

A run folder holds `run.json` (an `EvalRun`), `results.jsonl` (one `EvalRecord` per case, rewritten atomically
after each case so a killed run keeps what it finished), and `plans/` and `videos/`. Planning and rendering go
through the public front door (`codirector.api`), the way a user's own script would.

Example:
    >>> from codirector.evals import run_suite
    >>> result = run_suite("default", "runs/baseline")  # doctest: +SKIP
    >>> result.records[0].metrics["plan.instruction_adherence"]  # doctest: +SKIP
    0.875
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codirector import __version__
from codirector.config import Config, load_config
from codirector.errors import AgentOutputError, CodirectorError, InputFileError, SchemaValidationError, UserError
from codirector.evals.cache import EvalCache
from codirector.evals.plan_metrics import measure_plan
from codirector.evals.text_relevance import TextEmbedder, default_text_embedder, plan_text_relevance
from codirector.media import file_sha256, job_sha256
from codirector.prompts.templates import load_prompt_data, packaged_prompts_dir
from codirector.schemas import EvalCase, EvalRecord, EvalRun, EvalSuite, Job, Plan, dump_document, load_document
from codirector.schemas.base import PromptRef
from codirector.schemas.documents import write_text_atomic

if TYPE_CHECKING:
    from codirector.evals.extractors import Extractors

__all__ = ["EXPERTS", "SuiteResult", "load_suite", "packaged_suites", "read_run", "run_suite"]

logger = logging.getLogger(__name__)

EXPERTS = ("audio", "visual", "text", "negative")


def packaged_suites() -> dict[str, Path]:
    """The suites that ship with codirector, by name (`default`)."""
    folder = Path(str(resources.files("codirector.evals"))) / "suites"
    return {path.stem: path for path in sorted(folder.glob("*.yaml"))}


def load_suite(suite: str | Path) -> tuple[EvalSuite, Path]:
    """A suite from a YAML file, or a packaged suite by name; validated with its JSON Schema and model.

    Raises:
        InputFileError: no such file or suite name.
        SchemaValidationError: the suite breaks its schema (each issue with its JSON path).
    """
    path = Path(suite)
    if not path.exists() and str(suite) in packaged_suites():
        path = packaged_suites()[str(suite)]
    if not path.is_file():
        raise InputFileError(
            str(suite), "is neither a suite file nor a packaged suite",
            f"Give a suite YAML file, or one of: {', '.join(packaged_suites()) or 'none installed'}.",
        )  # fmt: skip
    document = load_document(path, "eval_suite")
    if not isinstance(document, EvalSuite):  # load_document returns the kind asked for
        raise SchemaValidationError(path, "eval_suite", [])
    return document, path


@dataclass(frozen=True)
class SuiteResult:
    """A finished run: its record, one result per case, and where it was written."""

    run: EvalRun
    records: list[EvalRecord]
    run_dir: Path

    @property
    def failed(self) -> list[EvalRecord]:
        return [record for record in self.records if record.status == "failed"]


def read_run(run_dir: str | Path) -> SuiteResult:
    """Read a run folder written by `run_suite` (or `codirector eval run`)."""
    folder = Path(run_dir)
    run_file, results = folder / "run.json", folder / "results.jsonl"
    if not run_file.is_file() or not results.is_file():
        raise InputFileError(folder, "is not an eval run folder (no run.json and results.jsonl)",
                             "Give a folder written by `codirector eval run SUITE -o FOLDER`.")  # fmt: skip
    run = load_document(run_file, "eval_run")
    records = []
    for number, line in enumerate(results.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(EvalRecord.model_validate_json(line))
        except ValueError as error:
            raise InputFileError(results, f"line {number} is not an eval record: {error}",
                                 "Rerun the suite into this folder.") from None  # fmt: skip
    return SuiteResult(run, records, folder)  # type: ignore[arg-type]


def _provider_label(names: Mapping[str, str]) -> str:
    values = set(names.values())
    if len(values) == 1:
        return values.pop()
    return ",".join(f"{expert}={names[expert]}" for expert in EXPERTS if expert in names)


def _prompt_versions(refs: Sequence[PromptRef]) -> tuple[dict[str, str], str]:
    versions = {ref.id: f"{ref.version}@{ref.sha256[:12]}" for ref in sorted(refs, key=lambda r: r.id)}
    return versions, hashlib.sha256(json.dumps(versions, sort_keys=True).encode()).hexdigest()


def _weights_key(spec: str) -> str:
    """An extractor spec with the sha256 of every weight file it names, so replaced weights at the same path
    are not mistaken for the ones a cached measurement used."""
    kind, _, rest = spec.partition(":")
    if not kind.endswith("torchscript"):
        return spec
    paths = [Path(part) for part in rest.split("?")[0].split(",")]
    return spec + "#" + ",".join(file_sha256(p)[:16] if p.is_file() else "missing" for p in paths)


def _metrics_key(mouth: str, identity: str, sync: str | None) -> str:
    """What cached render metrics are keyed by besides the video: extractors, their weights, the metrics' version.

    Without a scorer the key is what it was before scorers existed, so cached measurements stay valid.
    """
    from codirector.evals.render_metrics import METRICS_VERSION

    parts = [_weights_key(mouth), _weights_key(identity)]
    parts += [f"sync={_weights_key(sync)}"] if sync is not None else []
    return "|".join([*parts, f"v{METRICS_VERSION}"])


def _case_job(case: EvalCase) -> Job:
    from codirector.api import load_job

    if not case.job.is_file():
        raise InputFileError(
            case.job, f"case {case.id!r}: no such job file",
            "Fix the case's `job:` path (relative to the suite file); the default suite needs the repository's "
            "examples/ folder.",
        )  # fmt: skip
    job = load_job(case.job)
    return job if case.prompt is None else job.model_copy(update={"prompt": case.prompt})


@dataclass
class _Runner:
    """One run's settings and caches; `case()` makes one record."""

    suite: EvalSuite
    run_dir: Path
    config: Config
    provider: Any
    expert_providers: Mapping[str, Any]
    provider_options: Mapping[str, Any]
    prompts_dir: Path | None
    backend: str | None
    backend_options: Mapping[str, Any] | None
    render: bool | None
    # built once per run (TorchScript weights load once); None when nothing renders
    extractors: Extractors | None
    metrics_key: str  # the extractors' specs with their weights' hashes, and the metrics' version
    text_embedder: TextEmbedder | None
    cache: EvalCache = field(init=False)
    opposites: dict[str, Any] = field(init=False)
    prompt_refs: dict[str, PromptRef] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cache = EvalCache(self.config.home / "evals")
        # the yardstick for negative prompts is the shipped table, whatever the prompts under test say
        self.opposites, _ = load_prompt_data("negative_director/opposites", packaged_prompts_dir())

    def provider_names(self, job: Job) -> dict[str, str]:
        names = {}
        for expert in EXPERTS:
            chosen = self.expert_providers.get(expert) or self.provider or job.director.provider_for(expert)  # type: ignore[arg-type]
            names[expert] = chosen if isinstance(chosen, str) else chosen.name
        return names

    def plan(self, job: Job, job_hash: str, names: dict[str, str]) -> tuple[Plan, bool, float]:
        from codirector.api import plan as make_plan

        key = self.cache.plan_key(job_hash, names, self.provider_options)
        cached = self.cache.find_plan(key, self.prompts_dir)
        if cached is not None:
            return cached, True, 0.0
        started = time.perf_counter()
        made = make_plan(
            job, provider=self.provider, expert_providers=self.expert_providers or None,
            provider_options=self.provider_options or None, prompts_dir=self.prompts_dir, config=self.config,
        )  # fmt: skip
        latency = time.perf_counter() - started
        self.cache.store_plan(key, made)
        return made, False, latency

    def render_video(self, job: Job, plan: Plan, video: Path) -> tuple[str, bool]:
        from codirector.api import render

        backend = self.backend or job.render.backend
        options = job.render.backend_options if self.backend_options is None else self.backend_options
        result = render(
            plan, video, job=job, backend=backend, backend_options=options, executor=job.render.executor,
            num_workers=job.render.num_workers, config=self.config,
        )  # fmt: skip
        return backend, all(stage.status == "reused" for stage in result.manifest.stages)

    def render_metrics(self, plan: Plan, video: Path, video_hash: str) -> tuple[dict[str, Any], bool]:
        from codirector.evals.render_metrics import CharacterTrack, RenderSubject, measure_render

        cached = self.cache.find_render_metrics(video_hash, self.metrics_key)
        if cached is not None:
            return cached, True
        render_plan = plan.render_plan
        characters = tuple(
            CharacterTrack(
                id=c.id, audio=c.audio, reference_image=c.reference_image or render_plan.scene_image,
                reference_box_xyxy_norm=c.scene_box_xyxy_norm if c.reference_image is None else None,
            )
            for c in render_plan.characters
        )  # fmt: skip
        # sub-clip boundaries inside a shot should be invisible (the transitions stage's job); a boundary between
        # two shots is a planned cut and is not scored as a seam
        segments = render_plan.segments
        seams = tuple(
            round(segment.start_s * render_plan.fps)
            for previous, segment in pairwise(segments)
            if segment.shot_index == previous.shot_index
        )
        measured = measure_render(RenderSubject(video, characters, seams), self.extractors)
        data = {"metrics": measured.metrics, "details": measured.details}
        self.cache.store_render_metrics(video_hash, self.metrics_key, data)
        return data, False

    def case(self, case: EvalCase) -> EvalRecord:
        timings: dict[str, float] = {}
        reused: list[str] = []
        base: dict[str, Any] = {"suite": self.suite.name, "case_id": case.id, "category": case.category}
        job_hash = "0" * 64
        names: dict[str, str] = {}
        try:
            job = _case_job(case)
            job_hash = job_sha256(job)
            names = self.provider_names(job)
            started = time.perf_counter()
            plan, plan_reused, latency = self.plan(job, job_hash, names)
            timings["plan"] = time.perf_counter() - started
            if plan_reused:
                reused.append("plan")
            for ref in plan.prompt_refs:
                self.prompt_refs[ref.id] = ref
            plan_path = dump_document(plan, self.run_dir / "plans" / f"{case.id}.plan.json")
            embedder = self.text_embedder

            def relevance(made: Plan) -> float | None:
                return plan_text_relevance(made, job.prompt, embedder) if embedder is not None else None

            started = time.perf_counter()
            measured = measure_plan(
                plan, case.expect, opposites=self.opposites, text_relevance=relevance,
                latency_s=latency if not plan_reused else None,
            )  # fmt: skip
            timings["plan_metrics"] = time.perf_counter() - started
            metrics, details = dict(measured.metrics), dict(measured.details)
            versions, prompts_hash = _prompt_versions(plan.prompt_refs)
            record: dict[str, Any] = {
                **base, "provider": _provider_label(plan.providers), "prompt_versions": versions,
                "prompts_sha256": prompts_hash, "job_sha256": job_hash, "plan_sha256": file_sha256(plan_path),
                "plan_path": plan_path.relative_to(self.run_dir).as_posix(),
            }  # fmt: skip
            wanted = [choice for choice in (case.render, self.render, self.suite.render) if choice is not None]
            if wanted[0]:
                video = self.run_dir / "videos" / f"{case.id}.mp4"
                started = time.perf_counter()
                record["backend"], render_reused = self.render_video(job, plan, video)
                timings["render"] = time.perf_counter() - started
                if render_reused:
                    reused.append("render")
                record["video_sha256"] = video_hash = file_sha256(video)
                record["video_path"] = video.relative_to(self.run_dir).as_posix()
                started = time.perf_counter()
                rendered, metrics_reused = self.render_metrics(plan, video, video_hash)
                timings["render_metrics"] = time.perf_counter() - started
                if metrics_reused:
                    reused.append("metrics")
                metrics.update(rendered["metrics"])
                details.update(rendered["details"])
                if not render_reused:
                    metrics["render.seconds"] = timings["render"]
            return EvalRecord(**record, status="ok", metrics=metrics, details=details, timings_s=timings, reused=reused)  # type: ignore[arg-type]
        except CodirectorError as error:
            logger.warning("case %s failed: %s", case.id, error)
            versions, prompts_hash = _prompt_versions([])
            return EvalRecord(
                **base, provider=_provider_label(names) if names else str(self.provider or "?"),
                prompts_sha256=prompts_hash, job_sha256=job_hash, status="failed",
                error=f"{type(error).__name__}: {error}", timings_s=timings,
                # a model that never produced a valid plan is the one failure a plan metric can score
                metrics={"plan.schema_valid": 0.0} if isinstance(error, AgentOutputError) else {},
            )  # fmt: skip


def run_suite(
    suite: EvalSuite | str | Path,
    output_dir: str | Path,
    *,
    provider: Any = None,
    expert_providers: Mapping[str, Any] | None = None,
    provider_options: Mapping[str, Any] | None = None,
    prompts_dir: str | Path | None = None,
    backend: str | None = None,
    backend_options: Mapping[str, Any] | None = None,
    render: bool | None = None,
    cases: Sequence[str] | None = None,
    mouth_extractor: str = "mouth-darkness",
    identity_extractor: str = "hog",
    sync_scorer: str | None = None,
    text_embedder: TextEmbedder | str | None = "default",
    config: Config | None = None,
    on_case: Callable[[EvalRecord], None] | None = None,
) -> SuiteResult:
    """Run every case of a suite (plan, plan metrics, render, render metrics) into `output_dir`.

    Args:
        suite: an `EvalSuite`, a suite file, or a packaged suite's name ("default").
        output_dir: the run folder; made if missing. Rerunning into it replaces its results.
        provider, expert_providers, provider_options, prompts_dir: as for `codirector.plan`; `prompts_dir` is the
            folder of edited prompts under test.
        backend, backend_options: the render backend; default: each job's own.
        render: render every case (True), none (False), or as the suite and its cases say (None).
        cases: run only these case ids.
        mouth_extractor, identity_extractor: feature extractors for the render metrics
            (see `codirector.evals.extractors`).
        sync_scorer: a SyncNet-style lip-sync scorer for the ``render.sync_*`` metrics
            (see `codirector.evals.sync_scorers`); None leaves them out.
        text_embedder: the sentence embedder for text relevance; "default" is all-MiniLM-L6-v2 when installed;
            None turns the metric off.
        config: settings (the cache lives under `config.home / "evals"`).
        on_case: called with each record as it lands.

    Raises:
        InputFileError, SchemaValidationError: the suite cannot be read, or names an unknown case.
    """
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    config = config or load_config()
    if isinstance(suite, EvalSuite):
        suite_doc, suite_path = suite, Path(f"<{suite.name}>")
        suite_hash = hashlib.sha256(suite.model_dump_json().encode()).hexdigest()
    else:
        suite_doc, suite_path = load_suite(suite)
        suite_hash = file_sha256(suite_path)
    selected = list(suite_doc.cases)
    if cases:
        known = {case.id for case in suite_doc.cases}
        unknown = [case_id for case_id in cases if case_id not in known]
        if unknown:
            raise UserError(
                "--case", f"no case {', '.join(map(repr, unknown))} in suite {suite_doc.name!r}",
                f"Choose from: {', '.join(sorted(known))}.",
            )  # fmt: skip
        selected = [case for case in suite_doc.cases if case.id in cases]
    extractors = None
    if render is not False:
        from codirector.evals.extractors import Extractors

        # a bad spec or a missing weights file fails now, not after planning
        extractors = Extractors.from_specs(mouth_extractor, identity_extractor, sync_scorer)
    run_dir = Path(output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    embedder = default_text_embedder() if text_embedder == "default" else text_embedder
    runner = _Runner(
        suite=suite_doc, run_dir=run_dir, config=config, provider=provider,
        expert_providers=dict(expert_providers or {}), provider_options=dict(provider_options or {}),
        prompts_dir=Path(prompts_dir) if prompts_dir is not None else None, backend=backend,
        backend_options=backend_options, render=render,
        extractors=extractors, metrics_key=_metrics_key(mouth_extractor, identity_extractor, sync_scorer),
        text_embedder=embedder if not isinstance(embedder, str) else None,
    )  # fmt: skip
    records: list[EvalRecord] = []
    for case in selected:
        record = runner.case(case)
        records.append(record)
        write_text_atomic(run_dir / "results.jsonl", "".join(r.model_dump_json() + "\n" for r in records))
        if on_case is not None:
            on_case(record)
    labels = {r.provider for r in records if r.status == "ok"} or {r.provider for r in records}
    backends = {r.backend for r in records if r.backend is not None}
    run = EvalRun(
        codirector_version=__version__, suite=suite_doc.name, suite_path=suite_path, suite_sha256=suite_hash,
        provider=" | ".join(sorted(labels)), backend=" | ".join(sorted(backends)) if backends else None,
        prompts_dir=runner.prompts_dir, prompt_refs=sorted(runner.prompt_refs.values(), key=lambda r: r.id),
        created_at=started_at, duration_s=time.perf_counter() - started, num_cases=len(records),
        num_failed=sum(r.status == "failed" for r in records),
    )  # fmt: skip
    dump_document(run, run_dir / "run.json")
    return SuiteResult(run, records, run_dir)

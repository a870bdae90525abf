"""Running the director: providers resolved, inputs checked, the graph streamed, checkpointed and resumed.

A plan is checkpointed after every node in SQLite (`Config.home / "director" / "checkpoints.sqlite"`), under a
thread keyed by the job's content (its media included), the providers and the prompt files: an interrupted
plan resumes from its last finished node, and a finished one is returned again without recomputing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from collections.abc import Callable, Mapping
from contextlib import closing
from pathlib import Path
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, StateSnapshot

from codirector.agents.context import DirectorContext
from codirector.agents.graph import build_director_graph
from codirector.agents.providers.base import ChatModel, Provider
from codirector.agents.providers.registry import resolve_provider
from codirector.config import Config
from codirector.errors import AgentOutputError, MediaError, SchemaValidationError
from codirector.media import job_sha256, probe_job_media
from codirector.prompts.templates import packaged_prompts_dir
from codirector.schemas.base import PromptRef
from codirector.schemas.documents import validate_data
from codirector.schemas.job import ExpertName, Job
from codirector.schemas.plan import Plan
from codirector.schemas.storyline import Storyline

__all__ = ["EXPERTS", "MAX_AUDIO_S", "direct", "job_sha256"]

logger = logging.getLogger(__name__)

EXPERTS: tuple[ExpertName, ...] = ("audio", "visual", "text", "negative")
MAX_AUDIO_S = 30 * 60.0
"""The longest timeline one plan covers; longer talks are planned in parts (the transcript and the prompts
of a two-hour track do not fit a model's context, and one storyline would hold thousands of shots)."""

ReviewCallback = Callable[[Storyline], Storyline | None]
UpdateCallback = Callable[[str, Mapping[str, Any]], None]


def _serializer() -> JsonPlusSerializer:
    """Checkpoints hold our pydantic contracts and enums: allow exactly those types to be read back."""
    import codirector.schemas as schemas

    allowed = [
        (value.__module__, value.__name__)
        for value in vars(schemas).values()
        if isinstance(value, type) and value.__module__.startswith("codirector.schemas")
    ]
    return JsonPlusSerializer(allowed_msgpack_modules=allowed)


def _prompts_sha256(prompts_dir: Path | None) -> str:
    digest = hashlib.sha256()
    for folder in (packaged_prompts_dir(), prompts_dir):
        if folder is None:
            continue
        for path in sorted(folder.rglob("*")):
            if path.suffix in {".md", ".yaml"}:
                digest.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def _resolve_providers(
    job: Job, provider: str | Provider | None, expert_providers: Mapping[str, str | Provider] | None, options: dict
) -> dict[ExpertName, Provider]:
    resolved: dict[ExpertName, Provider] = {}
    for expert in EXPERTS:
        ref = (expert_providers or {}).get(expert) or provider or job.director.provider_for(expert)
        # server options (base_url, api_key, timeout_s) belong to openai: providers only
        applicable = options if isinstance(ref, str) and ref.startswith("openai:") else {}
        resolved[expert] = resolve_provider(ref, **applicable) if isinstance(ref, str) else ref
    return resolved


def _check_media(job: Job) -> float:
    media = probe_job_media(job)
    if media.duration_s > MAX_AUDIO_S:
        longest = max(media.audio.items(), key=lambda item: item[1].duration_s)
        raise MediaError(
            longest[1].path,
            f"is {media.duration_s / 60:.0f} min long; one plan covers at most {MAX_AUDIO_S / 60:.0f} min",
            "Split the audio into parts (e.g. at pauses with `sox in.wav part.wav trim 0 25:00`) and plan each.",
        )
    return media.duration_s


def direct(
    job: Job,
    *,
    provider: str | Provider | None = None,
    expert_providers: Mapping[str, str | Provider] | None = None,
    provider_options: Mapping[str, Any] | None = None,
    config: Config | None = None,
    prompts_dir: Path | None = None,
    review: ReviewCallback | None = None,
    checkpoint: bool = True,
    on_update: UpdateCallback | None = None,
) -> Plan:
    """Plan a job: the co-reasoning director from the experts' readings to the render plan.

    Args:
        job: the validated job (paths resolved).
        provider: one provider for every expert ("offline", "openai:gpt-4o-mini", "transformers:/models/x", or
            a `ChatModel`); default: the job's `director.provider`.
        expert_providers: per-expert overrides, e.g. {"visual": "openai:gpt-4o"}.
        provider_options: passed to `resolve_provider` (e.g. base_url, timeout_s).
        config: settings; default from the environment.
        prompts_dir: prompt files that override the packaged ones.
        review: called with the storyline before it is final; return an edited storyline, or None to accept.
        checkpoint: keep a SQLite checkpoint so an interrupted plan resumes, and a finished one is reused.
        on_update: called after every node with its name and state update (progress display).

    Raises:
        UserError: bad input (unreadable media, audio too long, unknown provider).
        AgentOutputError: a model kept answering with output that does not validate.
        ProviderError: a model server failed.
    """
    config = config or Config()
    duration_s = _check_media(job)
    providers = _resolve_providers(job, provider, expert_providers, dict(provider_options or {}))
    context = DirectorContext(providers=providers, config=config, prompts_dir=prompts_dir, review=review is not None)
    job_hash = job_sha256(job)
    names = {expert: p.name for expert, p in providers.items()}
    uncachable = any(isinstance(p, ChatModel) and not isinstance(provider, str) for p in providers.values())
    thread = hashlib.sha256(
        f"{job_hash}|{sorted(names.items())}|{_prompts_sha256(prompts_dir)}|{review is not None}".encode()
    ).hexdigest()[:32]
    run_config: RunnableConfig = {"configurable": {"thread_id": thread}}
    if not checkpoint or uncachable:
        # in memory: the review interrupt still works, nothing outlives the call
        graph = build_director_graph(InMemorySaver(serde=_serializer()))
        return _run(graph, None, job, duration_s, context, run_config, review, on_update, job_hash, names)
    database = config.home / "director" / "checkpoints.sqlite"
    database.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(str(database), check_same_thread=False)) as connection:
        graph = build_director_graph(SqliteSaver(connection, serde=_serializer()))
        return _run(
            graph, graph.get_state(run_config), job, duration_s, context, run_config, review, on_update, job_hash, names
        )


def _run(
    graph: CompiledStateGraph,
    snapshot: StateSnapshot | None,
    job: Job,
    duration_s: float,
    context: DirectorContext,
    run_config: RunnableConfig,
    review: ReviewCallback | None,
    on_update: UpdateCallback | None,
    job_hash: str,
    names: Mapping[str, str],
) -> Plan:
    """Stream the graph from its start, or resume it, answering review interrupts until it ends."""
    if snapshot is not None and snapshot.values.get("render_plan") is not None and not snapshot.next:
        logger.info("reusing the finished plan of thread %s", run_config["configurable"]["thread_id"])
        return _build_plan(snapshot.values, job_hash, names)
    if snapshot is not None and snapshot.next:
        logger.info("resuming the plan at %s", ", ".join(snapshot.next))
        pending: Any = None
        if snapshot.interrupts:
            pending = _answer_review(review, snapshot.interrupts[0].value)
    else:
        pending = {"job": job, "duration_s": duration_s}
    while True:
        interrupted = None
        for chunk in graph.stream(pending, run_config, context=context, stream_mode="updates"):
            for node, update in chunk.items():
                if node == "__interrupt__":
                    interrupted = update[0].value
                elif on_update is not None:
                    on_update(node, update or {})
        if interrupted is None:
            break
        pending = _answer_review(review, interrupted)
    return _build_plan(graph.get_state(run_config).values, job_hash, names)


def _answer_review(review: ReviewCallback | None, payload: Mapping[str, Any]) -> Command:
    storyline = Storyline.model_validate(payload["storyline"])
    edited = review(storyline) if review is not None else None
    return Command(resume=None if edited is None else edited.model_dump(mode="json"))


def _build_plan(values: Mapping[str, Any], job_hash: str, names: Mapping[str, str]) -> Plan:
    refs: dict[tuple[str, str], PromptRef] = {}
    for ref in values.get("prompt_refs", []):
        refs[(ref.id, ref.sha256)] = ref
    storyline = values["storyline"]
    record = storyline.reasoning
    if record is not None and record.stop_reason is None:
        record = record.model_copy(update={"stop_reason": values.get("stop_reason")})
        storyline = storyline.model_copy(update={"reasoning": record})
    plan = Plan(
        job_sha256=job_hash,
        providers=dict(names),
        audio_reports=list(values["audio_reports"].values()),
        visual_report=values["visual_report"],
        text_report=values["text_report"],
        storyline=storyline,
        render_plan=values["render_plan"],
        repairs=values.get("repairs", []),
        model_calls=values.get("model_calls", []),
        prompt_refs=list(refs.values()),
        reviewed=bool(values.get("reviewed", False)),
    )
    # Both passes every reader of plan.json will run: the exported JSON Schema, then the pydantic rules.
    data = plan.model_dump(mode="json")
    try:
        validated = validate_data(data, "plan", source="plan")
    except SchemaValidationError as error:
        raise AgentOutputError("director", f"the assembled plan does not validate: {error}", json.dumps(data)) from None
    return cast(Plan, validated)

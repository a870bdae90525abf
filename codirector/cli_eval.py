"""`codirector eval`: run a suite, and compare two runs (the prompt-iteration loop).

    codirector eval run default -o runs/shipped
    codirector eval run default --prompts my_prompts/ -o runs/edited
    codirector eval compare runs/shipped runs/edited

Errors reach the CLI's one error boundary (`codirector.cli.run`): bad input exits 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from codirector.config import Config
from codirector.schemas import EvalRecord

if TYPE_CHECKING:
    from codirector.evals.runner import SuiteResult

__all__ = ["eval_group"]

_SUMMARY_COLUMNS = (
    ("plan.instruction_adherence", "instructions"),
    ("plan.speaker_binding", "speakers"),
    ("plan.conflict_resolution", "conflicts"),
    ("plan.negative_opposition", "negatives"),
    ("plan.text_relevance", "text rel."),
    ("render.lip_sync_corr", "lip r"),
    ("render.lip_sync_offset_frames", "lip lag"),
    ("render.sync_confidence", "sync conf"),
    ("render.identity_similarity", "identity"),
    ("render.color_drift_de", "ΔE"),
    ("render.seam_jump", "seam"),
    ("render.flicker", "flicker"),
    ("render.right_mouth", "right mouth"),
)


@click.group("eval")
def eval_group() -> None:
    """Eval suites: score plans and videos, and compare runs (prompts, providers, backends)."""


@eval_group.command("run")
@click.argument("suite")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True, help="Run folder.")
@click.option(
    "--provider", default=None, help="LLM provider of the director: offline, openai:MODEL, transformers:PATH."
)
@click.option(
    "--expert-provider", "expert_providers", multiple=True, metavar="EXPERT=PROVIDER",
    help="Per-expert provider (repeatable), e.g. text=openai:gpt-4o-mini.",
)  # fmt: skip
@click.option("--base-url", default=None, help="Server URL for openai: providers (vLLM, Ollama, llama.cpp...).")
@click.option(
    "--prompts", "prompts_dir", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
    help="A folder of edited prompt files to evaluate instead of the packaged ones.",
)  # fmt: skip
@click.option("--backend", default=None, help="Render backend (default: each job's own, usually preview).")
@click.option("--backend-option", "backend_options", multiple=True, metavar="KEY=VALUE", help="A backend option.")
@click.option("--render/--no-render", "render", default=None, help="Render the cases (default: as the suite says).")
@click.option("--case", "cases", multiple=True, metavar="ID", help="Run only this case (repeatable).")
@click.option("--mouth-extractor", default="mouth-darkness", show_default=True, help="Mouth-opening extractor.")
@click.option(
    "--identity-extractor", default="hog", show_default=True,
    help="Face embedder: hog, torchscript:PATH (e.g. an ArcFace export), or module:Class.",
)  # fmt: skip
@click.option(
    "--sync-scorer", default=None, metavar="SPEC",
    help="SyncNet-style scorer: syncnet-torchscript:VIDEO.pt,AUDIO.pt or module:Class.",
)  # fmt: skip
@click.option("--no-text-relevance", is_flag=True, help="Skip the sentence-embedder metric.")
@click.pass_obj
def run_command(
    config: Config, suite: str, output: Path, provider: str | None, expert_providers: tuple[str, ...],
    base_url: str | None, prompts_dir: Path | None, backend: str | None, backend_options: tuple[str, ...],
    render: bool | None, cases: tuple[str, ...], mouth_extractor: str, identity_extractor: str,
    sync_scorer: str | None, no_text_relevance: bool,
) -> int:  # fmt: skip
    """Run SUITE (a suite YAML file, or `default`) into the run folder --output.

    Each case is planned, scored, rendered and scored again; results land in OUTPUT/results.jsonl, keyed by prompt
    versions, provider and backend. Unchanged plans, renders and metrics are reused from the cache. Exits 1 if a
    case failed.
    """
    from rich.console import Console

    from codirector.cli import _backend_options, _expert_overrides
    from codirector.evals.runner import run_suite

    console = Console(stderr=True)

    def on_case(record: EvalRecord) -> None:
        reused = f" (reused: {', '.join(record.reused)})" if record.reused else ""
        state = "ok" if record.status == "ok" else f"FAILED: {record.error}"
        console.print(f"{record.case_id}: {state}{reused}", highlight=False)

    result = run_suite(
        suite, output, provider=provider, expert_providers=_expert_overrides(expert_providers),
        provider_options={"base_url": base_url} if base_url else None, prompts_dir=prompts_dir, backend=backend,
        backend_options=_backend_options(backend_options) if backend_options else None, render=render,
        cases=list(cases) or None, mouth_extractor=mouth_extractor, identity_extractor=identity_extractor,
        sync_scorer=sync_scorer, text_embedder=None if no_text_relevance else "default", config=config, on_case=on_case,
    )  # fmt: skip
    _print_run(result)
    return 1 if result.failed else 0


def _print_run(result: SuiteResult) -> None:
    from rich.console import Console
    from rich.table import Table

    present = [(key, label) for key, label in _SUMMARY_COLUMNS if any(key in r.metrics for r in result.records)]
    backend = result.run.backend or "not rendered"
    table = Table(title=f"{result.run.suite}: {result.run.provider}, {backend} ({result.run_dir})")
    table.add_column("case")
    for _, label in present:
        table.add_column(label, justify="right")
    for record in result.records:
        cells = [
            "–" if record.metrics.get(key) is None else f"{record.metrics[key]:.2f}" for key, _ in present
        ]  # fmt: skip
        table.add_row(record.case_id, *cells, style="red" if record.status == "failed" else "")
    Console().print(table)
    click.echo(f"{result.run_dir / 'results.jsonl'}: {len(result.records)} cases, {len(result.failed)} failed")


@eval_group.command("compare")
@click.argument("baseline", type=click.Path(file_okay=False, path_type=Path))
@click.argument("candidate", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Report folder (default: CANDIDATE/compare).",
)  # fmt: skip
@click.option(
    "--judge", "judges", multiple=True, metavar="SPEC",
    help="GSB judges (repeatable): metrics (the offline panel of three), llm:PROVIDER[#seed], sheet:CSV.",
)  # fmt: skip
@click.option("--base-url", default=None, help="Server URL for llm:openai:... judges.")
@click.option("--no-gsb", is_flag=True, help="Metric deltas only.")
@click.option(
    "--write-sheet", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Also write a CSV verdict sheet for three people to fill in (then pass --judge sheet:CSV).",
)  # fmt: skip
@click.pass_obj
def compare_command(
    config: Config, baseline: Path, candidate: Path, output: Path | None, judges: tuple[str, ...],
    base_url: str | None, no_gsb: bool, write_sheet: Path | None,
) -> int:  # fmt: skip
    """Compare run BASELINE (A) with run CANDIDATE (B): what differs, per-metric deltas, the cases that got
    worse, and GSB = (G+S)/(B+S) from a panel of judges. Writes report.html, comparison.json and votes.jsonl."""
    from codirector.evals.compare import compare_runs
    from codirector.evals.judges import load_judges
    from codirector.evals.report import print_summary, write_report

    # load_judges refuses an empty or even panel (no majority) with a user error
    panel = load_judges(list(judges), **({"base_url": base_url} if base_url else {})) if judges else None
    comparison = compare_runs(baseline, candidate, judges=panel, gsb=not no_gsb)
    if write_sheet is not None:
        from codirector.evals.verdict_sheet import write_verdict_sheet

        write_verdict_sheet(comparison.sides(), write_sheet)
        click.echo(f"verdict sheet: {write_sheet}", err=True)
    print_summary(comparison)
    report = write_report(comparison, output or candidate / "compare")
    click.echo(f"report: {report}")
    return 0

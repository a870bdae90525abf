"""The `codirector` command.

One error boundary (`run`) turns the errors of `codirector.errors` into exit codes: a `UserError` prints the
input and the fix on stderr and exits 2, another `CodirectorError` exits 1, Ctrl-C exits 130. Bad input never
shows a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import click

from codirector import __version__
from codirector.api import load_job, plan, plan_and_render, render, validate_file
from codirector.config import Config, load_config
from codirector.errors import CodirectorError, SchemaValidationError, UserError
from codirector.log import configure_logging
from codirector.media import JobMediaError
from codirector.schemas import DOCUMENT_TYPES, Storyline, dump_document, export_json_schemas, json_schema, load_document

__all__ = ["cli", "main", "run"]

_KINDS = list(DOCUMENT_TYPES)


def _report_user_error(error: UserError) -> None:
    """Print a user error: one line, or one line per located issue followed by the fix."""
    issues = error.issues if isinstance(error, SchemaValidationError | JobMediaError) else []
    if len(issues) > 1:
        for issue in issues:
            click.echo(f"error: {error.source}: {issue}", err=True)
        click.echo(f"fix: {error.fix}", err=True)
    else:
        click.echo(f"error: {error}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="codirector")
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default=None,
    help="Log verbosity (default: $CODIRECTOR_LOG_LEVEL or WARNING).",
)
@click.pass_context
def cli(ctx: click.Context, log_level: str | None) -> None:
    """codirector: plan and render long, audio-driven avatar videos.

    A co-reasoning director turns reference images, audio and your words into a storyline of shots; a
    spatio-temporal cascade renders it. Run `codirector doctor` to see what this machine can do.
    """
    config = load_config(log_level=log_level.upper() if log_level else None)
    configure_logging(config.log_level)
    ctx.obj = config


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--kind", type=click.Choice(_KINDS), default=None, help="Force the file kind instead of detecting it.")
@click.option("--no-media", is_flag=True, help="Skip opening the images and audio a job names.")
def validate(files: tuple[Path, ...], kind: str | None, no_media: bool) -> int:
    """Check FILES (jobs, storylines, render plans, manifests, reports) against their schemas.

    Each file is checked with its JSON Schema and its pydantic model; every error is reported with its JSON
    path. For a job, every image and audio file it names is opened too. Exits 2 if any file is invalid.
    """
    failed = 0
    for path in files:
        try:
            report = validate_file(path, kind=kind, check_media=not no_media)
        except UserError as error:
            _report_user_error(error)
            failed += 1
            continue
        click.echo(f"ok: {path}: {report.summary}")
    return 2 if failed else 0


@cli.group()
def schema() -> None:
    """Export or show the JSON Schemas (Draft 2020-12) of codirector's files."""


@schema.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def schema_export(directory: Path) -> None:
    """Write one <kind>.schema.json per file kind into DIRECTORY."""
    for path in export_json_schemas(directory):
        click.echo(str(path))


@schema.command("show")
@click.argument("kind", type=click.Choice(_KINDS))
def schema_show(kind: str) -> None:
    """Print the JSON Schema of KIND."""
    click.echo(json.dumps(json_schema(kind), indent=2))


def _expert_overrides(values: tuple[str, ...]) -> dict[str, str]:
    overrides = {}
    for value in values:
        expert, sep, ref = value.partition("=")
        if not sep or expert not in {"audio", "visual", "text", "negative"} or not ref:
            raise click.BadParameter(
                f"{value!r}: write EXPERT=PROVIDER with EXPERT one of audio, visual, text, negative "
                "(e.g. visual=openai:gpt-4o)",
                param_hint="--expert-provider",
            )
        overrides[expert] = ref
    return overrides


@cli.command("plan")
@click.argument("job_file", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the plan (JSON, or YAML for .yaml).",
)
@click.option(
    "--provider", default=None, help="LLM provider for every expert: offline, openai:MODEL, transformers:PATH."
)
@click.option(
    "--expert-provider",
    "expert_providers",
    multiple=True,
    metavar="EXPERT=PROVIDER",
    help="Per-expert provider, e.g. --expert-provider visual=openai:gpt-4o (repeatable).",
)
@click.option("--base-url", default=None, help="Server URL for openai: providers (vLLM, Ollama, llama.cpp...).")
@click.option(
    "--prompts",
    "prompts_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="A folder of prompt files that override the packaged ones.",
)
@click.option("--review", is_flag=True, help="Pause to review or edit the storyline before it is final.")
@click.option("--no-cache", is_flag=True, help="Plan from scratch instead of resuming or reusing a checkpoint.")
@click.pass_obj
def plan_command(
    config: Config, job_file: Path, output: Path, provider: str | None, expert_providers: tuple[str, ...],
    base_url: str | None, prompts_dir: Path | None, review: bool, no_cache: bool,
) -> None:  # fmt: skip
    """Plan JOB_FILE: expert reports, co-reasoning, storyline and render plan, written to --output."""
    from rich.console import Console

    console = Console(stderr=True)
    show = config.progress == "always" or (config.progress == "auto" and console.is_terminal)
    job = load_job(job_file)

    def on_update(node: str, update: object) -> None:
        if show:
            console.log(f"[bold]{node}[/] done")

    def review_storyline(storyline: Storyline) -> Storyline | None:
        draft = output.with_name(output.stem + ".storyline.yaml")
        dump_document(storyline, draft)
        click.echo(f"Review or edit {draft}, then press Enter to continue.", err=True)
        click.pause(info="")
        return load_document(draft, "storyline")  # type: ignore[return-value]

    result = plan(
        job, provider=provider, expert_providers=_expert_overrides(expert_providers),
        provider_options={"base_url": base_url} if base_url else None, prompts_dir=prompts_dir,
        review=review_storyline if review else None, checkpoint=not no_cache, config=config, on_update=on_update,
    )  # fmt: skip
    dump_document(result, output)
    storyline = result.storyline
    reasoning = storyline.reasoning
    rounds = f"{reasoning.num_rounds} round(s), {len(reasoning.conflicts)} conflict(s)" if reasoning else ""
    click.echo(
        f"{output}: {len(storyline.shots)} shots, {len(result.render_plan.segments)} segments over "
        f"{storyline.duration_s:.2f} s; {rounds}; {len(result.model_calls)} model call(s)"
    )


def _backend_options(values: tuple[str, ...]) -> dict[str, object]:
    options: dict[str, object] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r}: write KEY=VALUE, e.g. mouth_gain=1.5", param_hint="--backend-option")
        try:
            parsed: object = json.loads(text)  # numbers, booleans, lists, objects; anything else stays a string
        except ValueError:
            parsed = text
        if key in options:  # a repeated key collects its values (--backend-option lora=a --backend-option lora=b)
            earlier = options[key]
            options[key] = [*(earlier if isinstance(earlier, list) else [earlier]), parsed]
        else:
            options[key] = parsed
    return options


def _executor_options(executor: str | None, gpus_per_task: float | None) -> dict[str, object]:
    if gpus_per_task is None:
        return {}
    if executor != "ray":
        raise click.BadParameter(
            "only the Ray executor places tasks on GPUs; add --executor ray", param_hint="--gpus-per-task"
        )
    return {"num_gpus_per_task": gpus_per_task}


def _render_options(function: Callable[..., object]) -> Callable[..., object]:
    """The options `render` and `run` share: backend, executor, workers, run folder."""
    for option in reversed(
        [
            click.option("--backend", default=None, help="Render backend: preview (CPU, default), dit (GPU), ..."),
            click.option(
                "--backend-option", "backend_options", multiple=True, metavar="KEY=VALUE",
                help="A backend option (repeatable), e.g. --backend-option weights=/models/wan.",
            ),
            click.option(
                "--executor", type=click.Choice(["local", "process", "ray"]), default=None,
                help="Where sub-clips run: in this process (default), a process pool, or Ray.",
            ),
            click.option("--workers", "num_workers", type=click.IntRange(min=1), default=None, help="Workers."),
            click.option(
                "--gpus-per-task", type=click.FloatRange(min=0), default=None,
                help="Ray executor: GPUs each task takes (1: one sub-clip per GPU, the model resident on it).",
            ),
            click.option(
                "--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                help="Folder for artifacts and manifest.json (default: under $CODIRECTOR_HOME/renders); reruns resume.",
            ),
        ]
    ):  # fmt: skip
        function = option(function)
    return function


_OUTPUT = click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The MP4 to write."
)


class _StageProgress:
    """Rich progress bars, one per cascade stage, for people at a terminal; silent otherwise."""

    def __init__(self, config: Config) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(stderr=True)
        self.enabled = config.progress == "always" or (config.progress == "auto" and console.is_terminal)
        self.bars = Progress(
            TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, disable=not self.enabled,
        )  # fmt: skip
        self.tasks: dict[str, object] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.bars.add_task(stage, total=max(total, 1))
        self.bars.update(self.tasks[stage], completed=done if total else 1, total=max(total, 1))  # type: ignore[arg-type]

    def __enter__(self) -> _StageProgress:
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()


def _report_render(result: object) -> None:
    from codirector.generator.cascade import RenderResult

    if isinstance(result, RenderResult):
        reused = sum(stage.status == "reused" for stage in result.manifest.stages)
        click.echo(
            f"{result.video}: {result.manifest.stages[-1].name} done; {len(result.manifest.stages)} stages "
            f"({reused} reused); run folder {result.run_dir}"
        )


@cli.command("render")
@click.argument("plan_file", type=click.Path(path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The MP4 to write."
)
@click.option(
    "--job", "job_file", type=click.Path(path_type=Path), default=None, help="Refuse the plan unless made for this job."
)
@_render_options
@click.pass_obj
def render_command(
    config: Config, plan_file: Path, output: Path, job_file: Path | None, backend: str | None,
    backend_options: tuple[str, ...], executor: str | None, num_workers: int | None, gpus_per_task: float | None,
    run_dir: Path | None,
) -> None:  # fmt: skip
    """Render PLAN_FILE (from `codirector plan`) through the cascade into an MP4 with its audio."""
    with _StageProgress(config) as progress:
        result = render(
            plan_file, output, job=job_file, backend=backend or "preview",
            backend_options=_backend_options(backend_options), executor=executor or "local",
            num_workers=num_workers, executor_options=_executor_options(executor, gpus_per_task), run_dir=run_dir,
            config=config, progress=progress,
        )  # fmt: skip
    _report_render(result)


@cli.command("run")
@click.argument("job_file", type=click.Path(path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The MP4 to write."
)
@click.option("--provider", default=None, help="LLM provider of the director: offline (default), openai:MODEL, ...")
@click.option("--base-url", default=None, help="Server URL for openai: providers.")
@click.option(
    "--prompts", "prompts_dir", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
    help="A folder of prompt files that override the packaged ones.",
)  # fmt: skip
@_render_options
@click.pass_obj
def run_command(
    config: Config, job_file: Path, output: Path, provider: str | None, base_url: str | None,
    prompts_dir: Path | None, backend: str | None, backend_options: tuple[str, ...], executor: str | None,
    num_workers: int | None, gpus_per_task: float | None, run_dir: Path | None,
) -> None:  # fmt: skip
    """Plan JOB_FILE with the director and render it: the whole job to an MP4 (the plan lands beside it)."""
    with _StageProgress(config) as progress:
        result = plan_and_render(
            job_file, output, provider=provider, prompts_dir=prompts_dir,
            provider_options={"base_url": base_url} if base_url else None, backend=backend,
            backend_options=_backend_options(backend_options) if backend_options else None, executor=executor,
            num_workers=num_workers, executor_options=_executor_options(executor, gpus_per_task), run_dir=run_dir,
            config=config, progress=progress,
            plan_output=output.with_suffix(".plan.json"),
        )  # fmt: skip
    _report_render(result)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.pass_obj
def doctor(config: Config, as_json: bool) -> None:
    """Show what is installed and usable: torch and its devices, ffmpeg, packaged models, a GPU."""
    from codirector.doctor import run_checks

    checks = run_checks(config)
    if as_json:
        click.echo(json.dumps([check.to_dict() for check in checks], indent=2))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    marks = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "missing": "[red]missing[/]"}
    table = Table(title=f"codirector {__version__}", show_lines=False)
    for column in ("group", "check", "status", "detail", "to fix"):
        table.add_column(column, overflow="fold")
    for check in checks:
        table.add_row(check.group, check.name, marks[check.status], escape(check.detail), escape(check.hint))
    Console(width=max(Console().width, 140)).print(table)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (the error boundary)."""
    try:
        result = cli.main(args=argv, prog_name="codirector", standalone_mode=False)
    except UserError as error:
        _report_user_error(error)
        return UserError.exit_code
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except click.Abort:
        click.echo("aborted", err=True)
        return 130
    except CodirectorError as error:
        click.echo(f"error: {error}", err=True)
        return 1
    return result if isinstance(result, int) else 0


def main() -> None:
    """Console-script entry point."""
    sys.exit(run())


def _register_subcommands() -> None:
    from codirector.cli_eval import eval_group  # its own module: it imports this one's option parsers

    cli.add_command(eval_group)


_register_subcommands()

"""Reports of a comparison: a self-contained HTML page with plots, JSON for machines, and a terminal table.

The page needs nothing but a browser: plots are inline SVG drawn here (GSB ratios with their bootstrap intervals
on a log axis, identity and colour drift curves of both runs per case, lip-sync correlation against lag), so a
report can be attached to a pull request or archived with the run.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from codirector.evals.compare import Comparison
from codirector.schemas.documents import write_text_atomic

__all__ = ["line_chart", "print_summary", "write_report"]

_COLORS = {"baseline": "#7a7a7a", "candidate": "#1f6fd1"}
_VERDICT_COLORS = {"good": "#2e9d4f", "same": "#9a9a9a", "bad": "#d0463b", None: "#e0a020"}


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    if value != 0 and abs(value) < 10 ** (-digits):
        return f"{value:.1e}"
    return f"{value:.{digits}f}"


def line_chart(
    series: Sequence[tuple[str, Sequence[float], Sequence[float], str]]
    | Sequence[tuple[str, Sequence[float], Sequence[float], str, str]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    width: int = 420,
    height: int = 200,
) -> str:
    """An SVG line chart of (label, xs, ys, colour[, dash pattern]) series with axes, end ticks and a legend row
    under the title (entries laid out by their text length, so long labels never overlap)."""
    points = [(x, y) for item in series for x, y in zip(item[1], item[2], strict=False) if math.isfinite(y)]
    if not points:
        return ""
    left, right, top, bottom = 48, 10, 38, 34
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    if x1 == x0:
        x1 = x0 + 1
    if y1 - y0 < 1e-9:
        y0, y1 = y0 - 0.5, y1 + 0.5

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y: float) -> float:
        return height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" class="chart">',
        f'<text x="{left}" y="14" class="title">{html.escape(title)}</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" class="axis"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" class="axis"/>',
        f'<text x="{left - 4}" y="{sy(y1) + 4:.1f}" class="tick" text-anchor="end">{_fmt(y1, 2)}</text>',
        f'<text x="{left - 4}" y="{sy(y0) + 4:.1f}" class="tick" text-anchor="end">{_fmt(y0, 2)}</text>',
        f'<text x="{left}" y="{height - bottom + 14}" class="tick">{_fmt(x0, 1)}</text>',
        f'<text x="{width - right}" y="{height - bottom + 14}" class="tick" text-anchor="end">{_fmt(x1, 1)}</text>',
        f'<text x="{(left + width - right) / 2:.0f}" y="{height - 4}" class="label" text-anchor="middle">'
        f"{html.escape(x_label)}</text>",
        f'<text x="12" y="{(top + height - bottom) / 2:.0f}" class="label" text-anchor="middle" '
        f'transform="rotate(-90 12 {(top + height - bottom) / 2:.0f})">{html.escape(y_label)}</text>',
    ]
    legend_x, legend_y = float(left), 28
    for item in series:
        label, xs, ys, color = item[:4]
        dash = f' stroke-dasharray="{item[4]}"' if len(item) > 4 and item[4] else ""  # type: ignore[misc]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys, strict=False) if math.isfinite(y))
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="1.8"{dash}/>')
        entry = 22 + 5.6 * len(label)  # 10 px tick glyphs are about 5.6 px wide
        if legend_x + entry > width - right and legend_x > left:
            legend_x, legend_y = float(left), legend_y + 12
        parts.append(
            f'<line x1="{legend_x:.0f}" y1="{legend_y - 3}" x2="{legend_x + 12:.0f}" y2="{legend_y - 3}" '
            f'stroke="{color}" stroke-width="2"{dash}/>'
        )
        parts.append(f'<text x="{legend_x + 15:.0f}" y="{legend_y}" class="tick">{html.escape(label)}</text>')
        legend_x += entry
    parts.append("</svg>")
    return "".join(parts)


def _gsb_chart(comparison: Comparison, width: int = 520) -> str:
    """GSB ratios per dimension on a log axis from 1/4 to 4, with bootstrap intervals and the parity line."""
    rows = [tally for tally in comparison.gsb.values() if tally.ratio is not None]
    if not rows:
        return ""
    left, right, row_h = 120, 20, 24
    height = 30 + row_h * len(rows)
    low, high = math.log(0.25), math.log(4.0)

    def sx(ratio: float) -> float:
        clipped = min(max(math.log(max(ratio, 1e-6)), low), high)
        return left + (clipped - low) / (high - low) * (width - left - right)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" class="chart">']
    for tick in (0.25, 0.5, 1.0, 2.0, 4.0):
        parts.append(f'<line x1="{sx(tick):.1f}" y1="8" x2="{sx(tick):.1f}" y2="{height - 18}" class="grid"/>')
        parts.append(f'<text x="{sx(tick):.1f}" y="{height - 4}" class="tick" text-anchor="middle">{tick:g}</text>')
    parts.append(f'<line x1="{sx(1):.1f}" y1="8" x2="{sx(1):.1f}" y2="{height - 18}" class="parity"/>')
    for index, tally in enumerate(rows):
        y = 20 + row_h * index
        color = "#2e9d4f" if tally.ratio > 1 else ("#d0463b" if tally.ratio < 1 else "#9a9a9a")  # type: ignore[operator]
        parts.append(f'<text x="{left - 8}" y="{y + 4}" class="label" text-anchor="end">{tally.dimension}</text>')
        if tally.ci_low is not None and tally.ci_high is not None:
            parts.append(
                f'<line x1="{sx(tally.ci_low):.1f}" y1="{y}" x2="{sx(tally.ci_high):.1f}" y2="{y}" '
                f'stroke="{color}" stroke-width="2"/>'
            )
        parts.append(f'<circle cx="{sx(tally.ratio):.1f}" cy="{y}" r="5" fill="{color}"/>')  # type: ignore[arg-type]
    parts.append("</svg>")
    return "".join(parts)


def _curves(comparison: Comparison) -> list[dict[str, Any]]:
    """Per case, the drift and lip-sync charts of both runs."""
    charts = []
    for a, b in comparison.pairs():
        case_charts = []
        for key, y_key, title, y_label in (
            ("render.identity_curve", "similarity", "identity vs reference", "cosine similarity"),
            ("render.color_curve", "delta_e", "colour drift vs reference", "ΔE (CIE76)"),
        ):
            series = []
            for side, record in (("baseline", a), ("candidate", b)):
                curve = record.details.get(key)
                if isinstance(curve, dict) and curve.get("t_s"):
                    label = "A" if side == "baseline" else "B"
                    series.append((label, curve["t_s"], curve[y_key], _COLORS[side], ""))  # type: ignore[arg-type]
            if series:
                case_charts.append(line_chart(series, title=title, x_label="time (s)", y_label=y_label))
        series = []
        for side, record in (("baseline", a), ("candidate", b)):
            sync = record.details.get("render.lip_sync")
            if isinstance(sync, dict) and sync.get("lags"):
                voices = [(c, v) for c, v in sync.items() if isinstance(v, dict) and v.get("corr_by_lag")]
                for index, (character, values) in enumerate(voices):
                    # one colour per run, one dash pattern per character
                    dash = ("", "5 3", "2 2", "8 3 2 3")[index % 4]
                    label = f"{'A' if side == 'baseline' else 'B'} {character}"
                    series.append((label, sync["lags"], values["corr_by_lag"], _COLORS[side], dash))
        if series:
            case_charts.append(
                line_chart(series, title="lip sync: r by offset", x_label="mouth lag (frames)", y_label="r")
            )
        if case_charts:
            charts.append({"case_id": a.case_id, "charts": case_charts})
    return charts


def write_report(comparison: Comparison, output_dir: str | Path) -> Path:
    """Write report.html, comparison.json and votes.jsonl into `output_dir`; returns the HTML's path."""
    folder = Path(output_dir)
    template_text = (resources.files("codirector.evals") / "templates" / "report.html.j2").read_text(encoding="utf-8")
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    environment.filters["fmt"] = _fmt
    votes_by_case: dict[str, dict[str, Any]] = {}
    for vote in comparison.votes:
        votes_by_case.setdefault(vote.case_id, {})[vote.dimension] = vote
    page = environment.from_string(template_text).render(
        c=comparison,
        gsb_chart=jinja2.utils.markupsafe.Markup(_gsb_chart(comparison)),
        curves=[
            {"case_id": item["case_id"], "charts": [jinja2.utils.markupsafe.Markup(svg) for svg in item["charts"]]}
            for item in _curves(comparison)
        ],
        votes_by_case=votes_by_case,
        verdict_colors=_VERDICT_COLORS,
    )
    write_text_atomic(folder / "comparison.json", json.dumps(comparison.to_dict(), indent=2) + "\n")
    write_text_atomic(
        folder / "votes.jsonl",
        "".join(json.dumps(row) + "\n" for row in comparison.to_dict()["votes"]),
    )
    write_text_atomic(folder / "report.html", page)
    return folder / "report.html"


def print_summary(comparison: Comparison, console: Any = None, max_rows: int = 15) -> None:
    """The terminal view: what differs, GSB per dimension, metric deltas, and the cases that got worse."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    a, b = comparison.baseline, comparison.candidate
    console.print(f"[bold]A[/] {a.run_dir} ({a.run.provider}, {a.run.backend})  vs  [bold]B[/] {b.run_dir}")
    for name, (left, right) in comparison.differences.items():
        console.print(f"  {name}: {left} -> {right}")
    for prompt_id, left, right in comparison.prompt_changes:
        console.print(f"  prompt {prompt_id}: {left} -> {right}")
    if comparison.gsb:
        table = Table(title=f"GSB (B vs A), judges: {', '.join(comparison.judges)}")
        for column in ("dimension", "G", "S", "B", "splits", "(G+S)/(B+S)", "95% CI"):
            table.add_column(column, justify="right" if column != "dimension" else "left")
        for tally in comparison.gsb.values():
            table.add_row(
                tally.dimension, str(tally.good), str(tally.same), str(tally.bad), str(tally.splits),
                _fmt(tally.ratio, 2), f"{_fmt(tally.ci_low, 2)} – {_fmt(tally.ci_high, 2)}",
            )  # fmt: skip
        console.print(table)
    table = Table(title="metrics (mean over paired cases)")
    for column in ("metric", "A", "B", "Δ", "better", "worse"):
        table.add_column(column, justify="right" if column != "metric" else "left")
    for delta in comparison.metrics:
        if delta.better == "none" and not delta.delta:
            continue
        style = "red" if delta.num_worse > delta.num_better else ("green" if delta.num_better else "")
        table.add_row(
            delta.label, _fmt(delta.baseline_mean), _fmt(delta.candidate_mean), _fmt(delta.delta),
            str(delta.num_better), str(delta.num_worse), style=style,
        )  # fmt: skip
    console.print(table)
    worse = comparison.worse
    if worse:
        table = Table(title=f"cases that got worse ({len(worse)})")
        for column in ("case", "metric", "A", "B"):
            table.add_column(column)
        for item in worse[:max_rows]:
            table.add_row(item.case_id, item.label, _fmt(item.baseline), _fmt(item.candidate), style="red")
        console.print(table)
    else:
        console.print("[green]no case got worse[/]")

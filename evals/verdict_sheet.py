"""Verdict sheets: GSB judged by people, through a CSV that `write_verdict_sheet` makes for them to fill in.

Each annotator fills in one column, good/same/bad per case and dimension, from the candidate's point of view;
`SheetJudge` reads one column back as a judge, so a panel of three annotators votes as the papers' annotators
do (Kling-Avatar sec. 3.2 / KlingAvatar 2.0 sec. 4: GSB with a majority vote of three).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from codirector.errors import InputFileError, UserError
from codirector.evals.gsb import DIMENSIONS, VERDICTS, Verdict
from codirector.evals.judges import Side

__all__ = ["SHEET_COLUMNS", "SheetJudge", "sheet_annotators", "write_verdict_sheet"]

SHEET_COLUMNS: tuple[str, ...] = ("case_id", "dimension", "baseline_video", "candidate_video")
"""The sheet's fixed columns; every column after them is one annotator's."""

_CELL: dict[str, Verdict] = {"good": "good", "g": "good", "same": "same", "s": "same", "bad": "bad", "b": "bad"}
"""What a sheet cell may hold (case and surrounding spaces aside): the verdict, or its first letter."""


def _video_cell(side: Side) -> str:
    if side.video is not None:
        return str(side.video)
    return side.record.video_path or ""


def write_verdict_sheet(
    pairs: Sequence[tuple[str, Side, Side]], path: Path, annotators: Sequence[str] = ("a1", "a2", "a3")
) -> Path:
    """Write a CSV for people to fill in: one row per case and dimension, one empty column per annotator.

    Each annotator watches the two videos and writes good, same or bad (or g, s, b) from the candidate's point
    of view: good when the candidate video is better in that row's dimension.

    Args:
        pairs: (case_id, baseline, candidate) per case.
        path: the CSV to write (its folder is created).
        annotators: the annotators' column names.

    Raises:
        ValueError: no annotators, a duplicate name, or a name that clashes with the fixed columns.

    Example:
        >>> import tempfile
        >>> from codirector.schemas.evals import EvalRecord
        >>> record = EvalRecord(suite="s", case_id="c", category="other", provider="offline",
        ...     prompts_sha256="0" * 64, job_sha256="0" * 64, status="ok", video_path="c/output.mp4")
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     sheet = write_verdict_sheet([("c", Side(record), Side(record))], Path(folder) / "gsb.csv")
        ...     sheet.read_text().splitlines()[:2]
        ['case_id,dimension,baseline_video,candidate_video,a1,a2,a3', 'c,lip_sync,c/output.mp4,c/output.mp4,,,']
    """
    names = [name.strip() for name in annotators]
    if not names or len(set(names)) != len(names) or not all(names) or set(names) & set(SHEET_COLUMNS):
        raise ValueError(f"annotators must be distinct, non-empty names other than {SHEET_COLUMNS}, got {names}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*SHEET_COLUMNS, *names])
        for case_id, baseline, candidate in pairs:
            for dimension in DIMENSIONS:
                writer.writerow([case_id, dimension, _video_cell(baseline), _video_cell(candidate), *[""] * len(names)])
    return path


def _read_sheet(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The sheet's header and rows; utf-8-sig so that a sheet saved by a spreadsheet (with a BOM) reads too."""
    if not path.is_file():
        raise InputFileError(path, "no such verdict sheet", "Write one with write_verdict_sheet and fill it in.")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        reader.fieldnames = header
        rows = list(reader)
    if header[: len(SHEET_COLUMNS)] != list(SHEET_COLUMNS):
        raise InputFileError(
            path,
            f"a verdict sheet starts with the columns {', '.join(SHEET_COLUMNS)}; this one has {header}",
            "Start from a sheet written by write_verdict_sheet.",
        )
    return header, rows


def sheet_annotators(path: Path) -> list[str]:
    """The annotator columns of a verdict sheet (every column after `SHEET_COLUMNS`).

    Raises:
        InputFileError: the file is missing, is not a verdict sheet, or has no annotator column.
    """
    header, _ = _read_sheet(path)
    names = [name for name in header[len(SHEET_COLUMNS) :] if name]
    if not names:
        raise InputFileError(path, "the verdict sheet has no annotator column", "Add one column per annotator.")
    return names


class SheetJudge:
    """One annotator's column of a filled-in verdict sheet, as a judge.

    The whole column is read and checked when the judge is made, so a gap in the sheet stops a comparison before
    it starts, with the line to fix.

    Args:
        path: the CSV from `write_verdict_sheet`, filled in.
        annotator: the column to read.

    Raises:
        InputFileError: the file is missing or is not a verdict sheet.
        UserError: no such column; an empty or invalid cell (names the file, line and column); a case and
            dimension given twice.
    """

    def __init__(self, path: Path, annotator: str) -> None:
        self.path = Path(path)
        self.annotator = annotator
        self.name = f"sheet:{self.path.name}#{annotator}"
        header, rows = _read_sheet(self.path)
        if annotator not in header[len(SHEET_COLUMNS) :]:
            raise UserError(
                self.path,
                f"no annotator column {annotator!r} (columns: {', '.join(header)})",
                "Name an annotator column of the sheet.",
            )
        self.verdicts: dict[tuple[str, str], Verdict] = {}
        for line, row in enumerate(rows, start=2):  # line 1 is the header
            where = f"line {line}, column {annotator!r}"
            cell = (row.get(annotator) or "").strip().lower()
            if cell not in _CELL:
                problem = "is empty" if not cell else f"holds {cell!r}"
                raise UserError(self.path, f"{where} {problem}", f"Write one of {', '.join(VERDICTS)} there.")
            key = ((row.get("case_id") or "").strip(), (row.get("dimension") or "").strip())
            if key in self.verdicts:
                raise UserError(self.path, f"line {line}: case {key[0]!r}, {key[1]!r} appears twice", "Keep one row.")
            self.verdicts[key] = _CELL[cell]

    def judge(self, case_id: str, baseline: Side, candidate: Side) -> dict[str, Verdict]:
        """The annotator's verdicts on `case_id`, for every dimension.

        Raises:
            UserError: the sheet has no row for the case in some dimension.
        """
        missing = [d for d in DIMENSIONS if (case_id, d) not in self.verdicts]
        if missing:
            raise UserError(
                self.path,
                f"no row for case {case_id!r} in {', '.join(missing)}",
                "Write the sheet for the runs being compared (write_verdict_sheet) and fill it in.",
            )
        return {dimension: self.verdicts[(case_id, dimension)] for dimension in DIMENSIONS}

    def __repr__(self) -> str:
        return f"SheetJudge({str(self.path)!r}, {self.annotator!r})"

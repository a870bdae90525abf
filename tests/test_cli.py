"""The CLI: --help everywhere, validate's output, and exit code 2 with one clear line on each kind of bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml
from helpers import EXAMPLES, write_wav
from samples import sample

from codirector.cli import cli, run
from codirector.schemas import DOCUMENT_TYPES


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += all_commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


@pytest.mark.parametrize("command", all_commands(cli), ids=lambda c: " ".join(c) or "codirector")
def test_every_command_has_help(command: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    assert run([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: codirector")
    assert len(out.splitlines()) > 3


def write_job(folder: Path, data: dict, name: str = "job.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def valid_job(tmp_path: Path, media: dict[str, Path]) -> dict:
    return {"characters": [{"id": "host", "reference_image": media["image"].name, "audio": media["audio"].name}]}


def test_valid_job_passes(tmp_path: Path, valid_job: dict, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_job(tmp_path, valid_job)
    assert run(["validate", str(path)]) == 0
    # 720p is the default preset and aspect "auto" follows the 64x48 (4:3) reference image.
    assert capsys.readouterr().out == f"ok: {path}: job: 1 character, 2.00 s of audio, 960x720 at 25 fps\n"


def stderr_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = run(argv)
    return code, capsys.readouterr().err.splitlines()


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nope.yaml"
    assert stderr_of(["validate", str(path)], capsys) == (2, [f"error: {path}: no such file. Check the path."])


def test_malformed_yaml_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("characters:\n  - id: host\n   audio: [unclosed\n")
    code, lines = stderr_of(["validate", str(path)], capsys)
    assert code == 2
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {path}: malformed YAML at line 3")
    assert lines[0].endswith("Fix the syntax (check indentation and quotes).")


def test_malformed_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plan.json"
    path.write_text('{"kind": "render_plan",}')
    code, lines = stderr_of(["validate", str(path)], capsys)
    assert (code, len(lines)) == (2, 1)
    assert lines[0].startswith(f"error: {path}: malformed JSON at line 1, column 24")


def test_schema_violation_names_the_json_path(tmp_path: Path, valid_job: dict, capsys) -> None:
    valid_job["output"] = {"fps": 60}
    path = write_job(tmp_path, valid_job)
    code, lines = stderr_of(["validate", str(path)], capsys)
    assert code == 2
    assert lines == [
        f"error: {path}: not a valid job: $.output.fps: 60 is greater than the maximum of 48. "
        f"Fix the file to match the job schema (`codirector validate {path}` lists every error)."
    ]


def test_several_violations_are_listed_with_one_fix_line(tmp_path: Path, capsys) -> None:
    data = sample("storyline")
    data["shots"][1]["start_s"] = 1.6
    data["shots"][2]["speakers"] = ["ghost"]
    path = tmp_path / "storyline.json"
    path.write_text(json.dumps(data))
    code, lines = stderr_of(["validate", str(path)], capsys)
    assert code == 2
    assert lines == [
        f"error: {path}: $.shots[1].start_s: gap of 0.100 s after shots[0] (allowed: one frame, 0.040 s)",
        f"error: {path}: $.shots[2].speakers[0]: unknown character 'ghost'",
        f"fix: Fix the file to match the storyline schema (`codirector validate {path}` lists every error).",
    ]


def test_missing_audio_file(tmp_path: Path, valid_job: dict, capsys) -> None:
    valid_job["characters"][0]["audio"] = "missing.wav"
    path = write_job(tmp_path, valid_job)
    code, lines = stderr_of(["validate", str(path)], capsys)
    assert code == 2
    assert lines == [
        f"error: {path}: $.characters[0].audio: {tmp_path / 'missing.wav'}: no such file. "
        "Fix the paths or the files named above."
    ]


def test_unreadable_audio(tmp_path: Path, valid_job: dict, capsys) -> None:
    (tmp_path / "voice.wav").write_text("this is not audio")
    path = write_job(tmp_path, valid_job)
    code, lines = stderr_of(["validate", str(path)], capsys)
    assert code == 2
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {path}: $.characters[0].audio: {tmp_path / 'voice.wav'}: cannot be decoded")


def test_unreadable_image(tmp_path: Path, valid_job: dict, capsys) -> None:
    (tmp_path / "face.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    path = write_job(tmp_path, valid_job)
    code, lines = stderr_of(["validate", str(path)], capsys)
    assert code == 2
    assert lines[0].startswith(f"error: {path}: $.characters[0].reference_image: {tmp_path / 'face.png'}: cannot be")


def test_every_bad_media_file_is_reported(tmp_path: Path, valid_job: dict, capsys) -> None:
    valid_job["characters"][0]["audio"] = "a.wav"
    valid_job["characters"][0]["reference_image"] = "b.png"
    path = write_job(tmp_path, valid_job)
    code, lines = stderr_of(["validate", str(path)], capsys)
    assert code == 2
    assert [line.split(": ")[2] for line in lines[:2]] == ["$.characters[0].reference_image", "$.characters[0].audio"]
    assert lines[2] == "fix: Fix the paths or the files named above."


def test_no_media_skips_opening_files(tmp_path: Path, valid_job: dict) -> None:
    valid_job["characters"][0]["audio"] = "missing.wav"
    assert run(["validate", "--no-media", str(write_job(tmp_path, valid_job))]) == 0


def test_one_bad_file_among_good_ones(tmp_path: Path, valid_job: dict, capsys) -> None:
    good = write_job(tmp_path, valid_job)
    code = run(["validate", str(good), str(tmp_path / "missing.yaml")])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out.startswith(f"ok: {good}")
    assert "missing.yaml: no such file" in captured.err


def test_forced_kind_mismatch(tmp_path: Path, valid_job: dict, capsys) -> None:
    path = write_job(tmp_path, valid_job)
    code, lines = stderr_of(["validate", "--kind", "storyline", str(path)], capsys)
    assert code == 2
    assert f"error: {path}: $: 'duration_s' is a required property" in lines
    assert lines[-1].startswith("fix: Fix the file to match the storyline schema")


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["validate"]) == 2
    assert "Missing argument" in capsys.readouterr().err


def test_bad_config_from_the_environment(monkeypatch, capsys) -> None:
    monkeypatch.setenv("CODIRECTOR_LOG_LEVEL", "LOUD")
    code, lines = stderr_of(["schema", "show", "job"], capsys)
    assert code == 2
    assert lines[0].startswith("error: CODIRECTOR_LOG_LEVEL: Input should be")


def test_schema_export_writes_every_kind(tmp_path: Path) -> None:
    assert run(["schema", "export", str(tmp_path / "out")]) == 0
    assert len(list((tmp_path / "out").glob("*.schema.json"))) == len(DOCUMENT_TYPES)


def test_doctor_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["doctor", "--json"]) == 0
    checks = {check["name"]: check for check in json.loads(capsys.readouterr().out)}
    assert checks["python"]["status"] == "ok"
    assert checks["ffmpeg"]["status"] == "ok"  # imageio-ffmpeg is a core dependency
    assert "libx264, aac" in checks["ffmpeg"]["detail"]
    assert {"torch", "gpu", "whisper-tiny.en", "whisper-base", "smollm2-135m-instruct"} <= set(checks)
    for check in checks.values():
        assert check["status"] in {"ok", "warn", "missing"}
        if check["status"] == "missing" and check["name"] != "gpu":
            assert check["hint"], f"{check['name']} is missing without a hint"


def test_doctor_table_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["doctor"]) == 0
    assert "ffmpeg" in capsys.readouterr().out


def test_real_process_prints_no_traceback(tmp_path: Path) -> None:
    """The installed console script: exit 2, one line on stderr, no traceback."""
    exe = shutil.which("codirector", path=str(Path(sys.executable).parent)) or shutil.which("codirector")
    assert exe is not None, "the codirector console script is not installed"
    bad = tmp_path / "job.yaml"
    bad.write_text("characters: 3\n")
    result = subprocess.run([exe, "validate", str(bad)], capture_output=True, text=True, env=os.environ)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert "$.characters: 3 is not of type 'array'" in result.stderr


def test_examples_validate_from_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    jobs = sorted(str(p) for p in EXAMPLES.glob("*/job.yaml"))
    assert run(["validate", *jobs]) == 0
    assert capsys.readouterr().out.count("ok: ") == len(jobs)


def test_audio_in_other_formats(tmp_path: Path, valid_job: dict) -> None:
    # FLAC decodes through PyAV just as WAV does (the long example ships FLAC).
    import av

    wav = write_wav(tmp_path / "tone.wav", 1.0)
    flac = tmp_path / "voice.flac"
    with av.open(str(wav)) as src, av.open(str(flac), "w") as dst:
        out = dst.add_stream("flac", rate=16000)
        for frame in src.decode(audio=0):
            for packet in out.encode(frame):
                dst.mux(packet)
        for packet in out.encode(None):
            dst.mux(packet)
    valid_job["characters"][0]["audio"] = "voice.flac"
    assert run(["validate", str(write_job(tmp_path, valid_job))]) == 0

"""The cascade end to end on real plans, with the test-only crossfade backend (tests/backend_fakes.py).

Facts are checked on the files, as ffprobe would: streams, codecs, frame count, size, duration against the audio.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

import codirector
from codirector.cli import run as cli_run
from codirector.errors import BackendCapabilityError, MediaError, RenderStageError, UserError
from codirector.generator import register_backend
from codirector.generator.backend import Capability
from codirector.generator.cascade import CASCADE
from codirector.generator.videoio import probe_video
from codirector.media import file_sha256, probe_audio
from codirector.schemas import RenderManifest
from tests.backend_fakes import CrossfadeBackend

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


class FlakyBackend(CrossfadeBackend):
    """Fails in super-resolution on the segment whose first frame is at $FLAKY_FAIL_AT_S (seconds), once asked."""

    name = "flaky-test"

    def super_resolve(self, request):  # type: ignore[no-untyped-def]
        fail_at = os.environ.get("FLAKY_FAIL_AT_S")
        if fail_at is not None and abs(request.start_s - float(fail_at)) < 1e-6:
            raise RenderStageError("super_resolve", "the test backend was told to fail here")
        return super().super_resolve(request)


class NoClipsBackend(CrossfadeBackend):
    name = "noclips-test"
    capabilities = frozenset(Capability) - {Capability.FIRST_LAST_FRAME}


@pytest.fixture(scope="module", autouse=True)
def _backends() -> None:
    register_backend("crossfade-test", CrossfadeBackend)
    register_backend("flaky-test", FlakyBackend)
    register_backend("noclips-test", NoClipsBackend)


@pytest.fixture(scope="module")
def portrait_plan(tmp_path_factory: pytest.TempPathFactory) -> codirector.Plan:
    home = tmp_path_factory.mktemp("home")
    return codirector.plan(EXAMPLES / "english_portrait" / "job.yaml", config=codirector.Config(home=home))


def test_render_makes_an_mp4_with_the_audio_and_a_manifest(portrait_plan: codirector.Plan, tmp_path: Path) -> None:
    result = codirector.render(portrait_plan, tmp_path / "out.mp4", backend="crossfade-test", run_dir=tmp_path / "run")
    info = probe_video(tmp_path / "out.mp4")
    plan = portrait_plan.render_plan
    audio_s = probe_audio(plan.characters[0].audio).duration_s
    assert (info.video_codec, info.audio_codecs) == ("h264", ("aac",))
    assert (info.width, info.height) == (plan.output.width, plan.output.height)
    assert info.fps == pytest.approx(plan.fps)
    assert abs(info.duration_s - audio_s) <= 1 / plan.fps
    assert abs(info.audio_duration_s - info.duration_s) <= 1 / plan.fps
    manifest = RenderManifest.model_validate_json((tmp_path / "run" / "manifest.json").read_text())
    assert [s.name for s in manifest.stages] == [stage.name for stage in CASCADE]
    assert all(s.status == "done" for s in manifest.stages)
    for record in manifest.stages:
        for artifact in record.artifacts:
            assert file_sha256(tmp_path / "run" / artifact.path) == artifact.sha256
    assert manifest.output is not None
    assert manifest.output.sha256 == file_sha256(tmp_path / "out.mp4")
    assert result.manifest == manifest
    assert result.plan is portrait_plan
    keyframes = result.outputs["select_keyframes"]
    assert len(keyframes.choices) == len(plan.anchors_s)  # type: ignore[attr-defined]
    assert all(len(c.candidates) >= 1 and "identity" in c.candidates[0].scores for c in keyframes.choices)  # type: ignore[attr-defined]


def test_a_rerun_reuses_every_stage_and_gives_the_same_file(portrait_plan: codirector.Plan, tmp_path: Path) -> None:
    first = codirector.render(portrait_plan, tmp_path / "a.mp4", backend="crossfade-test", run_dir=tmp_path / "run")
    again = codirector.render(portrait_plan, tmp_path / "b.mp4", backend="crossfade-test", run_dir=tmp_path / "run")
    assert [s.status for s in again.manifest.stages] == ["reused"] * len(CASCADE)
    assert file_sha256(first.video) == file_sha256(again.video)


def test_a_render_killed_halfway_resumes_and_gives_the_same_file(
    portrait_plan: codirector.Plan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = portrait_plan.render_plan
    clean = codirector.render(portrait_plan, tmp_path / "clean.mp4", backend="flaky-test", run_dir=tmp_path / "clean")
    monkeypatch.setenv("FLAKY_FAIL_AT_S", str(round(plan.anchors_s[2] * plan.fps) / plan.fps))
    with pytest.raises(RenderStageError, match="super_resolve"):
        codirector.render(portrait_plan, tmp_path / "out.mp4", backend="flaky-test", run_dir=tmp_path / "run")
    assert not (tmp_path / "out.mp4").exists()
    manifest = RenderManifest.model_validate_json((tmp_path / "run" / "manifest.json").read_text())
    assert [s.name for s in manifest.stages] == ["blueprint", "select_keyframes", "upscale_keyframes", "subclips",
                                                 "transitions"]  # fmt: skip
    finished = list((tmp_path / "run" / "super_resolve").glob("*.mp4"))
    assert len(finished) == 2  # the segments before the failing one are kept
    monkeypatch.delenv("FLAKY_FAIL_AT_S")
    resumed = codirector.render(portrait_plan, tmp_path / "out.mp4", backend="flaky-test", run_dir=tmp_path / "run")
    statuses = {s.name: s.status for s in resumed.manifest.stages}
    assert statuses["subclips"] == "reused"
    assert statuses["super_resolve"] == "done"
    assert file_sha256(resumed.video) == file_sha256(clean.video)


def test_a_failing_disk_write_leaves_no_output_and_the_next_run_resumes(
    portrait_plan: codirector.Plan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_replace = os.replace

    def full_disk(source: str, target: str) -> None:
        if str(target).endswith(".mp4") and "compose" in str(target):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(RenderStageError, match="No space left on device"):
        codirector.render(portrait_plan, tmp_path / "out.mp4", backend="crossfade-test", run_dir=tmp_path / "run")
    assert not (tmp_path / "out.mp4").exists()
    assert not [p for p in (tmp_path / "run").rglob("*") if ".tmp" in p.name]
    monkeypatch.setattr(os, "replace", real_replace)
    result = codirector.render(portrait_plan, tmp_path / "out.mp4", backend="crossfade-test", run_dir=tmp_path / "run")
    assert {s.name: s.status for s in result.manifest.stages}["subclips"] == "reused"
    assert probe_video(result.video).num_frames > 0


def test_a_backend_without_a_capability_fails_naming_it(portrait_plan: codirector.Plan, tmp_path: Path) -> None:
    with pytest.raises(BackendCapabilityError, match=r"first_last_frame.*subclips"):
        codirector.render(portrait_plan, backend="noclips-test", run_dir=tmp_path / "run")


def test_a_plan_for_another_job_is_refused(portrait_plan: codirector.Plan, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="another job"):
        codirector.render(portrait_plan, job=EXAMPLES / "cat" / "job.yaml", run_dir=tmp_path / "run")


def test_a_missing_audio_file_is_a_clear_error_and_cli_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    job_dir = tmp_path / "job"
    shutil.copytree(EXAMPLES / "cat", job_dir)
    plan = codirector.plan(job_dir / "job.yaml", config=codirector.Config(home=tmp_path / "home"))
    codirector.schemas.dump_document(plan, tmp_path / "plan.json")
    (job_dir / "speech.wav").unlink()
    with pytest.raises(MediaError, match=r"speech\.wav"):
        codirector.render(plan, tmp_path / "out.mp4", run_dir=tmp_path / "run")
    code = cli_run(["render", str(tmp_path / "plan.json"), "-o", str(tmp_path / "out.mp4")])
    assert code == 2
    err = capsys.readouterr().err
    assert "speech.wav" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out.mp4").exists()


def test_cli_render_rejects_an_unknown_backend_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = cli_run(["render", str(tmp_path / "missing.json"), "-o", str(tmp_path / "o.mp4"), "--backend", "preveiw"])
    assert code == 2
    assert "Traceback" not in capsys.readouterr().err

"""Batches of meshes from the wild: failures are isolated, nothing is lost, reruns resume."""

import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from meshstyle.cli import cli
from meshstyle.jobfolder import COMPLETE_MARKER
from tests.clitools import digest, sphere_folder, tiny_preset, write_sphere, write_style

REPO = Path(__file__).resolve().parents[1]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], obj={}, catch_exceptions=False)


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that claims a huge size: the decompression-bomb guard must refuse it unread."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


@pytest.fixture()
def wild(tmp_path):
    """A folder of good and bad meshes, and a style image."""
    meshes = tmp_path / "meshes"
    meshes.mkdir()
    write_sphere(meshes / "good_a.obj")
    write_sphere(meshes / "good_b.ply", subdivisions=0)
    (meshes / "empty.obj").write_text("")
    (meshes / "random.stl").write_bytes(os.urandom(3000))
    (meshes / "nan.obj").write_text("v 0 0 0\nv 1 0 nan\nv 0 1 0\nf 1 2 3\n")
    (meshes / "points.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    (meshes / "flat.obj").write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")
    (meshes / "notes.txt").write_text("not a mesh, not picked up from a folder")
    style = write_style(tmp_path / "style.png")
    return meshes, style


BAD = {
    "empty": "empty.obj",
    "random": "random.stl",
    "nan": "nan.obj",
    "points": "points.obj",
    "flat": "flat.obj",
}


@pytest.mark.slow
def test_bad_meshes_are_named_and_good_ones_finish(tmp_path, wild):
    meshes, style = wild
    before = digest(meshes)
    out = tmp_path / "out"
    result = invoke("stylize", meshes, style, "-o", out, "--preset", tiny_preset(tmp_path), "-q")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    report = json.loads((out / "report.json").read_text())
    status = {Path(j["mesh"]).name: j for j in report["jobs"]}
    assert status["good_a.obj"]["status"] == "done"
    assert status["good_b.ply"]["status"] == "done"
    for name in BAD.values():
        assert status[name]["status"] == "failed"
        assert name in status[name]["error"]
        assert name in result.output  # named even with --quiet
    assert "notes.txt" not in status
    assert digest(meshes) == before  # inputs untouched
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "good_a__style",
        "good_b__style",
    ]


@pytest.mark.slow
def test_rerun_skips_finished_jobs_and_overwrite_redoes_them(tmp_path):
    mesh = write_sphere(tmp_path / "ball.obj")
    style = write_style(tmp_path / "style.png")
    out = tmp_path / "out"
    preset = tiny_preset(tmp_path)
    assert invoke("stylize", mesh, style, "-o", out, "--preset", preset, "-q").exit_code == 0
    job = out / "ball__style"
    first = digest(job)
    stamps = {p: p.stat().st_mtime_ns for p in job.iterdir()}
    result = invoke("stylize", mesh, style, "-o", out, "--preset", preset)
    assert result.exit_code == 0
    assert "skipped" in result.output
    assert digest(job) == first
    assert {p: p.stat().st_mtime_ns for p in job.iterdir()} == stamps
    report = json.loads((out / "report.json").read_text())
    assert report["jobs"][0]["status"] == "skipped"
    result = invoke("stylize", mesh, style, "-o", out, "--preset", preset, "--overwrite", "-q")
    assert result.exit_code == 0
    assert json.loads((out / "report.json").read_text())["jobs"][0]["status"] == "done"
    assert (job / COMPLETE_MARKER).stat().st_mtime_ns > stamps[job / COMPLETE_MARKER]


@pytest.mark.slow
def test_shards_split_the_jobs(tmp_path):
    meshes = sphere_folder(tmp_path / "m", 3, subdivisions=0)
    style = write_style(tmp_path / "style.png")
    preset = tiny_preset(tmp_path)
    done = []
    for k in (1, 2):
        out = tmp_path / f"out{k}"
        result = invoke(
            "stylize", meshes, style, "-o", out, "--preset", preset, "--shard", f"{k}/2", "-q"
        )
        assert result.exit_code == 0
        done += [j["name"] for j in json.loads((out / "report.json").read_text())["jobs"]]
    assert sorted(done) == ["s0__style", "s1__style", "s2__style"]


def test_a_crash_in_the_uv_unwrap_fails_its_job_only(tmp_path, monkeypatch):
    # xatlas is native code that can crash (it does on some symmetric meshes); the unwrap
    # runs in a child process, so a crash fails that job and the batch goes on.
    import meshstyle.uvtexture as uvtexture

    meshes = tmp_path / "meshes"
    meshes.mkdir()
    write_sphere(meshes / "a_small.obj", subdivisions=0)
    write_sphere(meshes / "b_crashes.obj", subdivisions=1)
    worker = tmp_path / "worker.py"
    worker.write_text(
        "import os, signal, sys\n"
        "import numpy as np\n"
        f"sys.path.insert(0, {str(uvtexture._WORKER.parent)!r})\n"
        "if len(np.load(sys.argv[1])['vertices']) > 12:\n"
        "    os.kill(os.getpid(), signal.SIGSEGV)\n"
        "import unwrap_worker\n"
        "sys.exit(unwrap_worker.main(sys.argv[1:]))\n"
    )
    monkeypatch.setattr(uvtexture, "_WORKER", worker)
    out = tmp_path / "out"
    style = write_style(tmp_path / "style.png")
    result = invoke("stylize", meshes, style, "-o", out, "--preset", tiny_preset(tmp_path), "-q")
    assert result.exit_code == 1 and "Traceback" not in result.output
    report = json.loads((out / "report.json").read_text())
    status = {Path(j["mesh"]).name: j for j in report["jobs"]}
    assert status["a_small.obj"]["status"] == "done"
    assert status["b_crashes.obj"]["status"] == "failed"
    assert "xatlas) crashed on this mesh" in status["b_crashes.obj"]["error"]
    assert "--texture-mode cubes" in status["b_crashes.obj"]["error"]
    assert not (out / "b_crashes__style").exists()


def test_a_killed_run_leaves_nothing_that_looks_finished(tmp_path):
    mesh = write_sphere(tmp_path / "ball.obj", subdivisions=2)
    style = write_style(tmp_path / "style.png")
    out = tmp_path / "out"
    preset = tmp_path / "slow.toml"
    preset.write_text("iterations = 100000\nimage_size = 32\nviews = 1\npreview_size = 32\n")
    cmd = [
        sys.executable,
        "-m",
        "meshstyle",
        "stylize",
        str(mesh),
        str(style),
        "-o",
        str(out),
        "--preset",
        str(preset),
        "-q",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True)
    try:
        # Kill the run inside the job: once its partial folder holds its first output (the
        # settings, written before the mesh is loaded and its 100000 steps begin).
        deadline = time.monotonic() + 120
        while not list(out.glob(".ball__style.*.partial/settings.toml")):
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "the job did not start within 120 s"
            time.sleep(0.05)
        assert proc.poll() is None
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert list(out.glob(".ball__style.*.partial"))  # the half-written job is hidden...
    assert not (out / "ball__style").exists()  # ...and nothing looks finished
    result = invoke("stylize", mesh, style, "-o", out, "--preset", tiny_preset(tmp_path), "-q")
    assert result.exit_code == 0
    assert (out / "ball__style" / COMPLETE_MARKER).is_file()
    assert json.loads((out / "report.json").read_text())["jobs"][0]["status"] == "done"
    assert not list(out.glob(".*"))  # the leftover was cleaned up


def test_face_limit_and_decimation(tmp_path):
    mesh = write_sphere(tmp_path / "ball.obj", subdivisions=2)  # 320 faces
    style = write_style(tmp_path / "style.png")
    preset = tiny_preset(tmp_path)
    out = tmp_path / "out"
    result = invoke("stylize", mesh, style, "-o", out, "--preset", preset, "--max-faces", 100)
    assert result.exit_code == 1
    assert "ball.obj" in result.output and "--decimate" in result.output
    result = invoke("stylize", mesh, style, "-o", out, "--preset", preset, "--decimate", 100, "-q")
    assert result.exit_code == 0, result.output


def test_hard_style_inputs(tmp_path):
    mesh = write_sphere(tmp_path / "ball.obj")
    bomb = _png_header_only(tmp_path / "bomb.png", 100_000, 100_000)
    truncated = tmp_path / "half.png"
    truncated.write_bytes(write_style(tmp_path / "whole.png").read_bytes()[:200])
    out = tmp_path / "out"
    result = invoke(
        "stylize",
        mesh,
        bomb,
        truncated,
        tmp_path / "gone.png",
        "-o",
        out,
        "--preset",
        tiny_preset(tmp_path),
    )
    assert result.exit_code == 1
    report = json.loads((out / "report.json").read_text())
    errors = {Path(j["style"]).name: j["error"] for j in report["jobs"]}
    assert set(errors) == {"bomb.png", "half.png", "gone.png"}
    for name, error in errors.items():
        assert name in error


def test_unwritable_output_folder(tmp_path):
    mesh = write_sphere(tmp_path / "ball.obj")
    style = write_style(tmp_path / "style.png")
    blocker = tmp_path / "file"
    blocker.write_text("I am a file")
    result = invoke(
        "stylize", mesh, style, "-o", blocker / "out", "--preset", tiny_preset(tmp_path)
    )
    assert result.exit_code == 1
    assert "cannot be written" in result.output and "Traceback" not in result.output
    assert blocker.read_text() == "I am a file"

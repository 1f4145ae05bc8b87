"""The batch contract on the command line: what is reported done is done, from what was asked."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from meshstyle.cli import cli
from meshstyle.jobfolder import COMPLETE_MARKER, read_marker
from tests.clitools import digest, sphere_folder, tiny_preset, write_sphere, write_style

REPO = Path(__file__).resolve().parents[1]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], obj={}, catch_exceptions=False)


def strict_json(path: Path):
    def refuse(name):
        raise ValueError(f"{path} is not strict JSON: {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_a_diverged_edit_fails_and_the_report_stays_json(tmp_path):
    mesh = write_sphere(tmp_path / "ball.obj")
    style = write_style(tmp_path / "style.png")
    out = tmp_path / "out"
    preset = tiny_preset(tmp_path)
    result = invoke("stylize", mesh, style, "-o", out, "--preset", preset, "--lr", "1e30", "-q")
    assert result.exit_code == 1
    assert "diverged" in result.output and "lr = 1e+30" in result.output
    job = strict_json(out / "report.json")["jobs"][0]
    assert job["status"] == "failed" and "diverged" in job["error"]
    assert not (out / "ball__style").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_a_loss_too_big_at_the_first_step_names_its_weight(tmp_path):
    # Before any update the rate cannot be the cause: the message names the weight instead.
    mesh = write_sphere(tmp_path / "ball.obj")
    style = write_style(tmp_path / "style.png")
    out = tmp_path / "out"
    preset = tiny_preset(tmp_path)
    result = invoke(
        "stylize", mesh, style, "-o", out, "--preset", preset, "--style-weight", "1e38", "-q"
    )
    assert result.exit_code == 1
    job = strict_json(out / "report.json")["jobs"][0]
    assert job["status"] == "failed"
    assert "not finite at step 1, before any update" in job["error"]
    assert "lower style_weight = 1e+38" in job["error"] and "learning rate" not in job["error"]
    assert "seam_weight" not in job["error"]  # not finite only because the style term is not


def test_a_rerun_skips_only_what_the_same_inputs_and_settings_made(tmp_path):
    mesh = write_sphere(tmp_path / 'odd "name" #1.obj')
    style = write_style(tmp_path / "style.png")
    out = tmp_path / "out"
    preset = tiny_preset(tmp_path)
    assert invoke("stylize", mesh, style, "-o", out, "--preset", preset, "-q").exit_code == 0
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    kept = digest(folder)

    # The result's settings.toml is a preset as it is: passed back, it asks for the same job.
    result = invoke("stylize", mesh, style, "-o", out, "--preset", folder / "settings.toml")
    assert result.exit_code == 0, result.output
    assert strict_json(out / "report.json")["jobs"][0]["status"] == "skipped"

    result = invoke("stylize", mesh, style, "-o", out, "--preset", preset, "--seed", "7", "-q")
    assert result.exit_code == 1
    assert "setting seed 0 -> 7" in result.output and "--overwrite" in result.output

    write_sphere(mesh, subdivisions=2)  # another mesh under the same name
    result = invoke("stylize", mesh, style, "-o", out, "--preset", preset, "-q")
    assert result.exit_code == 1 and "other content" in result.output
    assert strict_json(out / "report.json")["jobs"][0]["status"] == "failed"
    assert digest(folder) == kept  # the earlier result is untouched

    result = invoke("stylize", mesh, style, "-o", out, "--preset", preset, "--overwrite", "-q")
    assert result.exit_code == 0
    marker = read_marker(folder)
    assert marker["made_from"]["inputs"]["mesh"]["path"] == str(mesh)
    assert digest(folder) != kept


def test_a_users_folder_with_a_jobs_name_is_never_touched(tmp_path):
    mesh = write_sphere(tmp_path / "ball.obj")
    style = write_style(tmp_path / "style.png")
    out = tmp_path / "out"
    (out / "ball__style").mkdir(parents=True)
    (out / "ball__style" / "notes.txt").write_text("mine")
    before = digest(out)
    for extra in ([], ["--overwrite"]):
        result = invoke(
            "stylize", mesh, style, "-o", out, "--preset", tiny_preset(tmp_path), "-q", *extra
        )
        assert result.exit_code == 1
        assert "without a meshstyle completion marker" in result.output
        assert {k: v for k, v in digest(out).items() if k.startswith("ball")} == before


def test_overwrite_keeps_the_users_files_in_a_result(tmp_path):
    mesh = write_sphere(tmp_path / "ball.obj", subdivisions=0)
    style = write_style(tmp_path / "style.png")
    out = tmp_path / "out"
    preset = tiny_preset(tmp_path)
    assert invoke("stylize", mesh, style, "-o", out, "--preset", preset, "-q").exit_code == 0
    folder = out / "ball__style"
    (folder / "notes.txt").write_text("mine")
    first = read_marker(folder)
    result = invoke(
        "stylize", mesh, style, "-o", out, "--preset", preset, "--seed", "7", "--overwrite", "-q"
    )
    assert result.exit_code == 0, result.output
    assert read_marker(folder)["made_from"]["settings"]["seed"] == 7
    assert (folder / "notes.txt").read_text() == "mine"
    assert sorted(read_marker(folder)["files"]) == sorted(first["files"])
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


def test_a_strip_of_an_image_is_refused_not_blown_up(tmp_path):
    mesh = write_sphere(tmp_path / "ball.obj")
    strip = tmp_path / "strip.png"
    Image.fromarray(np.zeros((1, 3000, 3), np.uint8)).save(strip, optimize=True)
    assert strip.stat().st_size < 200
    out = tmp_path / "out"
    result = invoke("stylize", mesh, strip, "-o", out, "--preset", tiny_preset(tmp_path), "-q")
    assert result.exit_code == 1
    error = strict_json(out / "report.json")["jobs"][0]["error"]
    assert "strip.png" in error and "too narrow" in error


def test_shards_into_one_folder_keep_every_report(tmp_path):
    meshes = sphere_folder(tmp_path / "m", 3, subdivisions=0)
    style = write_style(tmp_path / "style.png")
    preset = tiny_preset(tmp_path)
    out = tmp_path / "out"
    for k in (2, 1):
        result = invoke(
            "stylize", meshes, style, "-o", out, "--preset", preset, "--shard", f"{k}/2", "-q"
        )
        assert result.exit_code == 0
    assert [j["name"] for j in strict_json(out / "report-shard-1-of-2.json")["jobs"]] == [
        "s0__style",
        "s2__style",
    ]
    assert [j["name"] for j in strict_json(out / "report-shard-2-of-2.json")["jobs"]] == [
        "s1__style"
    ]
    merged = strict_json(out / "report.json")
    assert [j["name"] for j in merged["jobs"]] == ["s0__style", "s1__style", "s2__style"]
    assert merged["counts"] == {"done": 3} and merged["missing_shards"] == []
    page = (out / "report.html").read_text()
    assert all(f"s{i}__style" in page for i in range(3))


def test_bad_settings_fail_before_any_job_and_name_the_setting(tmp_path):
    mesh = write_sphere(tmp_path / "ball.obj", subdivisions=0)
    style = write_style(tmp_path / "style.png")
    out = tmp_path / "out"
    cases = {
        "preview_size = 0\n": "p.toml: preview_size must be in [16, 2048]; got 0",
        "style_image_size = 100000\n": "style_image_size must be in [16, 2048]",
        "turntable_frames = 100000000\n": "turntable_frames must be in [1, 720]",
        "distance_noise = nan\n": "distance_noise must be a finite number",
        "elevation_max = 1e9\n": "elevation_max must be in [-90, 90]",
        'network = "nowhere.pt"\n': "weights file nowhere.pt does not exist",
        # a rule between two settings names the one the user set, with both values
        "elevation_max = 10.0\n": "p.toml: elevation_min must be <= elevation_max; got "
        "elevation_min = 20.0, elevation_max = 10.0",
    }
    for text, message in cases.items():
        (tmp_path / "p.toml").write_text(text)
        result = invoke("stylize", mesh, style, "-o", out, "--preset", tmp_path / "p.toml")
        assert result.exit_code == 2, (text, result.output)
        assert message in result.output, (text, result.output)
        assert "Traceback" not in result.output
    (tmp_path / "p.toml").write_text("channel = 100000\n")
    result = invoke("deepdream", mesh, "-o", out, "--preset", tmp_path / "p.toml")
    assert result.exit_code == 2 and "channel must be in [0, 511]" in result.output
    assert not out.exists()  # nothing started


def test_render_and_fit_refuse_numbers_that_are_not_numbers(tmp_path):
    mesh = write_sphere(tmp_path / "ball.obj", subdivisions=0)
    for flag in ("--elevation", "--azimuth", "--distance"):
        for value in ("nan", "inf"):
            result = invoke("render", mesh, "-o", tmp_path / "x.png", flag, value)
            assert result.exit_code == 2 and "not a finite number" in result.output
    assert not (tmp_path / "x.png").exists()
    for flag in ("--lr", "--smooth-weight", "--radius"):
        result = invoke("fit", mesh, "-o", tmp_path / "out", flag, "nan")
        assert result.exit_code == 2 and "not a finite number" in result.output, flag
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_two_runs_into_one_folder_never_leave_a_broken_result(tmp_path):
    meshes = sphere_folder(tmp_path / "m", 2, subdivisions=1)
    style = write_style(tmp_path / "style.png")
    preset = tmp_path / "p.toml"
    preset.write_text(
        "iterations = 8\nimage_size = 32\nviews = 1\ntexture_size = 2\npreview_size = 32\n"
    )
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "meshstyle", "stylize", str(meshes), str(style)]
    cmd += ["-o", str(out), "--preset", str(preset), "-q"]
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    runs = [subprocess.Popen(cmd, cwd=REPO, env=env) for _ in range(2)]
    assert [run.wait(600) for run in runs] == [0, 0]
    for i in range(2):
        folder = out / f"s{i}__style"
        marker = read_marker(folder)
        assert marker is not None
        assert all((folder / name).is_file() for name in marker["outputs"].values())
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []
    statuses = [j["status"] for j in strict_json(out / "report.json")["jobs"]]
    assert set(statuses) <= {"done", "skipped"}
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob(COMPLETE_MARKER)}
    result = invoke("stylize", meshes, style, "-o", out, "--preset", preset, "-q")
    assert result.exit_code == 0
    assert [j["status"] for j in strict_json(out / "report.json")["jobs"]] == ["skipped"] * 2
    assert {p: p.stat().st_mtime_ns for p in out.rglob(COMPLETE_MARKER)} == stamps

"""The command line through click's CliRunner: outputs, and clear errors for bad input."""

import json
import os
import re
import shutil
import stat
import subprocess
import sys

import pytest
from click.testing import CliRunner
from PIL import Image

from meshstyle.cli import cli
from meshstyle.jobfolder import COMPLETE_MARKER
from tests.clitools import tiny_preset, write_sphere, write_style


@pytest.fixture()
def runner():
    return CliRunner()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def invoke(runner, *args):
    return runner.invoke(cli, [str(a) for a in args], obj={}, catch_exceptions=False)


def test_version_imports_no_heavy_module():
    code = (
        "import sys; from meshstyle.cli import cli\n"
        "try:\n    cli.main(['--version'], obj={})\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'numba', 'trimesh') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "meshstyle, version" in out.stdout
    assert out.stdout.strip().endswith("[]")


def test_info_reports_the_installation(runner):
    result = invoke(runner, "info")
    assert result.exit_code == 0
    for key in ("torch", "numba", "backend (auto)", "threads", "cuda", "vgg19 weights"):
        assert key in result.output
    assert "found" in result.output
    assert re.search(r"numba \d+ \((omp|tbb|workqueue) layer\)", result.output), result.output


def test_render_png_and_gif(runner, tmp_path):
    mesh = write_sphere(tmp_path / "ball.obj")
    result = invoke(runner, "render", mesh, "-o", tmp_path / "ball.png", "--image-size", 32)
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "ball.png").size == (32, 32)
    result = invoke(
        runner, "render", mesh, "-o", tmp_path / "ball.gif", "--image-size", 24, "--frames", 5
    )
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "ball.gif").n_frames == 5


def test_render_keeps_what_the_user_had(runner, tmp_path):
    mesh = write_sphere(tmp_path / "ball.obj")
    painting = write_style(tmp_path / "painting.png")
    before = painting.read_bytes()
    result = invoke(runner, "render", mesh, "-o", painting, "--image-size", 16)
    assert result.exit_code == 1 and "already exists; use --overwrite" in result.output
    assert painting.read_bytes() == before
    result = invoke(runner, "render", mesh, "-o", painting, "--image-size", 16, "--overwrite")
    assert result.exit_code == 0 and Image.open(painting).size == (16, 16)


def test_render_never_replaces_the_meshs_texture_or_a_link(runner, tmp_path):
    import numpy as np

    from meshstyle.export import write_obj

    write_obj(tmp_path, "ball", np.eye(3), [[0, 1, 2]], np.full((1, 2, 2, 2, 3), 0.5))
    texture = tmp_path / "ball.png"
    before = texture.read_bytes()
    result = invoke(
        runner, "render", tmp_path / "ball.obj", "-o", texture, "--image-size", 16, "--overwrite"
    )
    assert result.exit_code == 1 and "is an input" in result.output
    assert texture.read_bytes() == before
    link = tmp_path / "link.png"
    link.symlink_to(tmp_path / "nowhere.png")
    result = invoke(runner, "render", tmp_path / "ball.obj", "-o", link, "--image-size", 16)
    assert result.exit_code == 1 and "already exists" in result.output and link.is_symlink()


def test_render_output_path_errors_name_the_output(runner, tmp_path):
    mesh = write_sphere(tmp_path / "ball.obj")
    blocker = tmp_path / "afile"
    blocker.write_text("a file, not a folder")
    result = invoke(runner, "render", mesh, "-o", blocker / "x.png", "--image-size", 16)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{blocker} is a file, not a folder" in result.output
    result = invoke(runner, "render", mesh, "-o", tmp_path, "--image-size", 16)
    assert result.exit_code == 2  # click: a folder is not a file name


def test_atomic_write_names_the_output_not_its_temporary(tmp_path):
    from meshstyle.fsutil import atomic_write_text

    blocker = tmp_path / "afile"
    blocker.write_text("")
    with pytest.raises(OSError) as caught:
        atomic_write_text(blocker / "x.json", "{}")
    assert str(caught.value).startswith(f"{blocker / 'x.json'}: cannot be written")
    assert ".tmp" not in str(caught.value)


def test_render_bad_input(runner, tmp_path):
    mesh = write_sphere(tmp_path / "ball.obj")
    result = invoke(runner, "render", mesh, "-o", tmp_path / "ball.jpg")
    assert result.exit_code == 2 and "must end in .png or .gif" in result.output
    result = invoke(runner, "render", tmp_path / "nothere.obj", "-o", tmp_path / "x.png")
    assert result.exit_code == 1
    assert "nothere.obj" in result.output and "Traceback" not in result.output
    junk = tmp_path / "junk.obj"
    junk.write_bytes(b"\x00\xff" * 100)
    result = invoke(runner, "render", junk, "-o", tmp_path / "x.png")
    assert result.exit_code == 1 and "junk.obj" in result.output
    assert not (tmp_path / "x.png").exists()


def test_stylize_writes_every_output(runner, tmp_path):
    mesh = write_sphere(tmp_path / "ball.obj")
    style = write_style(tmp_path / "noise.png")
    out = tmp_path / "out"
    result = invoke(
        runner, "stylize", mesh, style, "-o", out, "--preset", tiny_preset(tmp_path), "-q"
    )
    assert result.exit_code == 0, result.output
    job = out / "ball__noise"
    for name in (
        "ball.obj",
        "ball.mtl",
        "ball.png",
        "ball.glb",
        "turntable.gif",
        "before_after.png",
        "loss.csv",
        "settings.toml",
        COMPLETE_MARKER,
    ):
        assert (job / name).is_file(), name
    assert Image.open(job / "turntable.gif").n_frames >= 36
    assert "Kd 1 1 1" in (job / "ball.mtl").read_text()
    assert len((job / "loss.csv").read_text().strip().splitlines()) == 3  # header + 2 steps
    assert "iterations = 2" in (job / "settings.toml").read_text()
    report = json.loads((out / "report.json").read_text())
    assert report["jobs"][0]["status"] == "done"
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
    # The job folder is as readable as any new folder (not private like a temporary one).
    assert stat.S_IMODE(job.stat().st_mode) == 0o777 & ~_umask()


def test_summary_goes_to_stdout_whole(runner, tmp_path):
    # A log (not a terminal) gets the table on stdout, with names and paths not cut short.
    mesh = write_sphere(tmp_path / "a_sphere_with_a_rather_long_name_for_a_log_file.obj")
    style = write_style(tmp_path / "noise.png")
    out = tmp_path / "a_long_output_folder_name_that_would_not_fit_in_eighty_columns"
    junk = tmp_path / "junk.obj"
    junk.write_bytes(b"\x00\xff" * 50)
    preset = tiny_preset(tmp_path)
    result = invoke(runner, "stylize", mesh, junk, style, "-o", out, "--preset", preset)
    assert result.exit_code == 1, result.output
    job = "a_sphere_with_a_rather_long_name_for_a_log_file__noise"
    assert f"│ {job} │ done" in result.stdout
    assert str(out / job) in result.stdout
    # The table says "see below" for a failure: its message is below, in the same stream.
    assert any(
        "│ junk__noise " in line and "│ failed" in line for line in result.stdout.splitlines()
    )
    assert f"failed junk__noise: {junk}" in result.stdout
    assert f"report: {out / 'report.json'}" in result.stdout


def test_deepdream_writes_its_folder(runner, tmp_path):
    mesh = write_sphere(tmp_path / "ball.obj")
    out = tmp_path / "out"
    result = invoke(
        runner,
        "deepdream",
        mesh,
        "-o",
        out,
        "--preset",
        tiny_preset(tmp_path),
        "--layer",
        "relu3_1",
        "-q",
    )
    assert result.exit_code == 0, result.output
    assert (out / "ball__deepdream-relu3_1" / COMPLETE_MARKER).is_file()
    header = (out / "ball__deepdream-relu3_1" / "loss.csv").read_text().splitlines()[0]
    assert "activation" in header


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--iterations", "-1"], "--iterations"),
        (["--preset", "nope"], "unknown preset"),
        (["--device", "tpu"], "--device"),
        (["--shard", "3/2"], "--shard"),
        (["--views", "0"], "--views"),
    ],
)
def test_bad_flags_are_usage_errors(runner, tmp_path, args, message):
    mesh = write_sphere(tmp_path / "ball.obj")
    style = write_style(tmp_path / "s.png")
    result = invoke(runner, "stylize", mesh, style, "-o", tmp_path / "out", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_unknown_layer_is_a_usage_error(runner, tmp_path):
    mesh = write_sphere(tmp_path / "ball.obj")
    result = invoke(runner, "deepdream", mesh, "--layer", "conv9_9", "-o", tmp_path / "o")
    assert result.exit_code == 2 and "--layer: unknown layer 'conv9_9'" in result.output


def test_preset_errors_name_the_file_and_the_key(runner, tmp_path):
    mesh = write_sphere(tmp_path / "ball.obj")
    style = write_style(tmp_path / "s.png")
    out = tmp_path / "o"
    missing = tmp_path / "nosuch.toml"
    result = invoke(runner, "stylize", mesh, style, "-o", out, "--preset", missing)
    assert result.exit_code == 2 and f"{missing}: preset file not found" in result.output
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    result = invoke(runner, "stylize", mesh, style, "-o", out, "--preset", folder)
    assert result.exit_code == 2 and f"{folder}: preset file cannot be read" in result.output
    binary = tmp_path / "BINARY.TOML"
    binary.write_bytes(b"\xff\xfe iterations = 3")
    result = invoke(runner, "stylize", mesh, style, "-o", out, "--preset", binary)
    assert result.exit_code == 2 and f"{binary}: a preset file must be UTF-8" in result.output
    preset = tmp_path / "layers.toml"
    preset.write_text('style_layers = ["relu1_2", "nosuch"]\n')
    result = invoke(runner, "stylize", mesh, style, "-o", out, "--preset", preset)
    assert result.exit_code == 2
    assert f"{preset}: style_layers: unknown layer 'nosuch'" in result.output
    assert not out.exists()


def test_style_that_is_not_an_image(runner, tmp_path):
    mesh = write_sphere(tmp_path / "ball.obj")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    result = invoke(runner, "stylize", mesh, notes, "-o", tmp_path / "out")
    assert result.exit_code == 2 and "notes.txt" in result.output
    fake = tmp_path / "fake.jpg"
    fake.write_text("not really a picture")
    result = invoke(
        runner, "stylize", mesh, fake, "-o", tmp_path / "out", "--preset", tiny_preset(tmp_path)
    )
    assert result.exit_code == 1
    assert "fake.jpg" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out" / "ball__fake").exists()


def test_missing_style_and_mesh(runner, tmp_path):
    mesh = write_sphere(tmp_path / "ball.obj")
    result = invoke(runner, "stylize", mesh, "-o", tmp_path / "out")
    assert result.exit_code == 2 and "no style image" in result.output
    style = write_style(tmp_path / "s.png")
    result = invoke(runner, "stylize", style, "-o", tmp_path / "out")
    assert result.exit_code == 2 and "no mesh" in result.output
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    write_sphere(mixed / "ball.obj")
    write_style(mixed / "s.png")
    result = invoke(runner, "stylize", mixed, "-o", tmp_path / "out")
    assert result.exit_code == 2 and "no style image" in result.output
    assert "a folder holding meshes is a folder of meshes" in result.output
    assert "--recursive" in result.output


def test_folders_are_told_apart_by_what_they_hold(tmp_path):
    from meshstyle.commands.edit import classify_inputs

    for name in ("meshes", "styles", "nested/deeper", "empty"):
        (tmp_path / name).mkdir(parents=True)
    write_sphere(tmp_path / "meshes" / "ball.obj")
    write_style(tmp_path / "styles" / "noise.png")
    write_style(tmp_path / "nested" / "deeper" / "noise.png")
    folders = [str(tmp_path / name) for name in ("meshes", "styles", "nested", "empty")]
    meshes, images = classify_inputs(tuple(folders), ())
    assert meshes == [folders[0], folders[2], folders[3]] and images == [folders[1]]
    meshes, images = classify_inputs(tuple(folders), (), recursive=True)
    assert meshes == [folders[0], folders[3]] and images == [folders[1], folders[2]]


@pytest.mark.slow
def test_fit_recovers_the_teapot_from_silhouettes(runner, tmp_path, teapot_fit):
    result, out, target = teapot_fit.result, teapot_fit.out, teapot_fit.target
    assert result.exit_code == 0, result.output
    job = teapot_fit.job
    for name in (
        "teapot_fit.obj",
        "teapot_fit.mtl",
        "teapot_fit.png",
        "teapot_fit.glb",
        "turntable.gif",
        "target_fit.png",
        "loss.csv",
        COMPLETE_MARKER,
    ):
        assert (job / name).is_file(), name
    summary = json.loads((job / COMPLETE_MARKER).read_text())
    assert summary["held_out_iou_before"] < 0.5
    assert summary["held_out_iou_after"] > 0.8, summary
    assert f"{summary['held_out_iou_after']:.3f}" in result.output
    assert [p.name for p in out.iterdir()] == ["teapot__fit"]  # the leftover is gone
    assert len((job / "loss.csv").read_text().splitlines()) == 151
    # The fitted mesh is written in the target's own frame: bounding boxes agree.
    import trimesh

    fitted = trimesh.load(job / "teapot_fit.obj", force="mesh")
    original = trimesh.load(target, force="mesh")
    extent = original.extents.max()
    assert abs(fitted.bounds - original.bounds).max() < 0.15 * extent
    # A finished result is kept unless --overwrite; checked on a copy with a 2-step rerun.
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    args = ["fit", target, "-o", copy, "--iterations", 2, "--image-size", 48, "-q"]
    again = invoke(runner, *args)
    assert again.exit_code == 1 and "--overwrite" in again.output
    assert invoke(runner, *args, "--overwrite").exit_code == 0
    assert len((copy / "teapot__fit" / "loss.csv").read_text().splitlines()) == 3


def test_fit_bad_input(runner, tmp_path):
    junk = tmp_path / "junk.obj"
    junk.write_text("v 0 0 0\n")
    result = invoke(runner, "fit", junk, "-o", tmp_path / "out", "-q")
    assert result.exit_code == 1 and "junk.obj" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out" / "junk__fit").exists()
    result = invoke(runner, "fit", junk, "--radius", "0")
    assert result.exit_code == 2 and "--radius" in result.output

"""``meshstyle reconstruct``: make-data, check-data, train, eval and predict end to end."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from meshstyle.cli import cli


def run(*args: str):
    return CliRunner().invoke(cli, ["reconstruct", *map(str, args)], obj={})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("recon_cli")
    data, model = root / "data", root / "run"
    made = run(
        "make-data",
        data,
        "--classes",
        "chair,lamp",
        "--train",
        2,
        "--val",
        1,
        "--test",
        1,
        "--seed",
        5,
        "-q",
    )
    assert made.exit_code == 0, made.output
    trained = run(
        "train",
        data,
        "-o",
        model,
        "--iterations",
        2,
        "--batch-size",
        2,
        "--eval-every",
        1,
        "-q",
        "--device",
        "cpu",
    )
    assert trained.exit_code == 0, trained.output
    return data, model


def test_make_data_writes_the_layout(trained):
    data, _ = trained
    names = sorted(p.name for p in data.iterdir())
    assert names == sorted(
        f"{c}_{s}_{k}.npz"
        for c in ("chair", "lamp")
        for s in ("train", "val", "test")
        for k in ("images", "voxels")
    )
    with np.load(data / "lamp_train_images.npz") as f:
        assert f["arr_0"].shape == (2, 24, 4, 64, 64)


def test_make_data_never_overwrites(trained):
    data, _ = trained
    before = (data / "chair_train_images.npz").read_bytes()
    result = run("make-data", data, "--classes", "chair", "--train", 1, "--val", 1, "--test", 1)
    assert result.exit_code == 1
    assert "already exists" in result.output and "Traceback" not in result.output
    assert (data / "chair_train_images.npz").read_bytes() == before


def test_make_data_refuses_a_folder_that_is_not_a_data_set(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("precious")
    result = run("make-data", folder, "--classes", "lamp", "--train", 1, "--val", 1, "--test", 1)
    assert result.exit_code == 1, result.output
    assert "not a data set" in result.output and "notes.txt" in result.output
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
    assert (folder / "notes.txt").read_text() == "precious"


def test_make_data_adds_classes_to_a_data_set(trained, tmp_path):
    data, _ = trained
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    result = run("make-data", copy, "--classes", "table", "--train", 1, "--val", 1, "--test", 1)
    assert result.exit_code == 0, result.output
    assert (copy / "table_test_voxels.npz").is_file()
    assert (copy / "chair_train_images.npz").read_bytes() == (
        data / "chair_train_images.npz"
    ).read_bytes()


def test_check_data_passes_ours_and_fails_original(trained):
    data, _ = trained
    ok = run("check-data", data, "--objects", 1, "--json")
    assert ok.exit_code == 0, ok.output
    report = json.loads(ok.output)
    assert report["passed"] and report["mean"] > 0.85
    wrong = run("check-data", data, "--objects", 1, "--layout", "original")
    assert wrong.exit_code == 1
    assert "do not follow the 'original' layout" in wrong.output


def test_train_writes_the_run(trained):
    _, model = trained
    for name in ("config.json", "model.pt", "checkpoint.pt", "log.csv", "curves.png"):
        assert (model / name).is_file()
    state = torch.load(model / "model.pt", weights_only=True)
    assert state["decoder.bias.weight"].shape == (642 * 3, 2048)
    assert Image.open(model / "curves.png").size[0] > 100


def test_train_refuses_a_folder_that_is_not_a_run(trained, tmp_path):
    data, _ = trained
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "log.csv").write_text("precious\n")
    (folder / "model.pt").write_text("x\n")
    result = run("train", data, "-o", folder, "--iterations", 1, "--batch-size", 2, "-q")
    assert result.exit_code == 1, result.output
    assert "holds no run" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in folder.iterdir()) == ["log.csv", "model.pt"]
    assert (folder / "log.csv").read_text() == "precious\n"
    assert (folder / "model.pt").read_text() == "x\n"


def test_resume_refuses_settings_that_differ_from_the_run(trained):
    data, model = trained
    before = (model / "config.json").read_text()
    result = run(
        "train",
        data,
        "-o",
        model,
        "--iterations",
        3,
        "--decoder",
        "voxel",
        "--lr",
        5,
        "--batch-size",
        2,
        "--classes",
        "lamp",
        "--precision",
        "fp32",
        "-q",
    )
    assert result.exit_code == 1, result.output
    for listed in (
        "--precision (run: auto, given: fp32)",
        "--decoder (run: mesh, given: voxel)",
        "--lr (run: 0.001, given: 5)",
        "--classes (run: chair,lamp, given: lamp)",
    ):
        assert listed in result.output, result.output
    assert "--batch-size" not in result.output  # the run's own value, given again
    assert "new -o" in result.output and result.output.strip().count("\n") == 0
    assert (model / "config.json").read_text() == before
    # The run's own values given explicitly (classes in any order) are no conflict: the
    # command goes on to the length check.
    same = run(
        "train",
        data,
        "-o",
        model,
        "--iterations",
        2,
        "--batch-size",
        2,
        "--eval-every",
        1,
        "--classes",
        "lamp,chair",
        "--no-batch-norm",
    )
    assert same.exit_code == 1 and "already trained for 2 steps" in same.output, same.output


def test_train_options_for_the_encoder_regularisers_and_warmup(trained, tmp_path):
    data, _ = trained
    normed, weighted = tmp_path / "normed", tmp_path / "weighted"
    normed.mkdir()  # an empty folder starts a new run
    result = run(
        "train", data, "-o", normed, "--iterations", 1, "--batch-size", 2, "-q", "--batch-norm"
    )
    assert result.exit_code == 0, result.output
    result = run(
        "train",
        data,
        "-o",
        weighted,
        "--iterations",
        1,
        "--batch-size",
        2,
        "-q",
        "--flatten-weight",
        0,
        "--laplacian-weight",
        1e-3,
        "--warmup",
        0,
    )
    assert result.exit_code == 0, result.output
    given = json.loads((weighted / "config.json").read_text())["settings"]
    assert given["batch_norm"] is False
    assert (given["flatten_weight"], given["laplacian_weight"]) == (0, 1e-3)
    assert given["warmup_steps"] == 0
    defaults = json.loads((normed / "config.json").read_text())["settings"]
    assert defaults["batch_norm"] is True
    assert (defaults["flatten_weight"], defaults["laplacian_weight"]) == (5e-4, 5e-3)
    assert defaults["warmup_steps"] == 100

    def has_norms(run_folder):
        state = torch.load(run_folder / "model.pt", weights_only=True)
        return any("running_mean" in key for key in state)

    assert has_norms(normed) and not has_norms(weighted)
    for run_folder in (normed, weighted):
        scored = run("eval", data, "--model", run_folder, "--json")
        assert scored.exit_code == 0, scored.output


def test_a_second_train_into_a_run_being_trained_is_refused(trained, tmp_path):
    from meshstyle.jobfolder import job_lock

    data, _ = trained
    folder = tmp_path / "busy"
    args = ("train", data, "-o", folder, "--iterations", 1, "--batch-size", 2, "-q")
    with job_lock(folder.parent, folder.name, wait=False):  # as a running train holds it
        result = run(*args)
    assert result.exit_code == 1, result.output
    assert "another meshstyle run is training into this folder" in result.output
    assert "Traceback" not in result.output and not folder.exists()
    result = run(*args)  # the lock released: the run trains, and leaves no lock behind
    assert result.exit_code == 0, result.output
    assert (folder / "checkpoint.pt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["busy"]


def test_the_default_rate_follows_the_decoder(trained, tmp_path):
    data, model = trained

    def rate(run_folder):
        return json.loads((run_folder / "config.json").read_text())["settings"]["learning_rate"]

    assert rate(model) == 1e-3
    voxel, given = tmp_path / "voxel", tmp_path / "given"
    args = ("--iterations", 1, "--batch-size", 2, "--decoder", "voxel", "--classes", "lamp", "-q")
    result = run("train", data, "-o", voxel, *args)
    assert result.exit_code == 0, result.output
    assert rate(voxel) == 3e-4
    result = run("train", data, "-o", given, *args, "--lr", 1e-3)
    assert result.exit_code == 0, result.output
    assert rate(given) == 1e-3
    # Resuming without --lr or --decoder keeps the run's own rate, not the mesh default's.
    resumed = run("train", data, "-o", voxel, "--iterations", 2, "-q")
    assert resumed.exit_code == 0, resumed.output
    assert rate(voxel) == 3e-4
    assert json.loads((voxel / "config.json").read_text())["steps"] == 2


def test_eval_prints_json_per_class(trained, tmp_path):
    data, model = trained
    out = tmp_path / "iou.json"
    result = run("eval", data, "--model", model, "--split", "test", "--json", "-o", out)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report["iou"]) == {"chair", "lamp", "mean"}
    assert all(0.0 <= v <= 1.0 for v in report["iou"].values())
    assert set(report["silhouette_ceiling"]) == {"chair", "lamp", "mean"}
    assert all(0.2 < v < 1.0 for v in report["silhouette_ceiling"].values())
    assert report["views_per_object"] == 24 and report["objects"] == 2
    assert json.loads(out.read_text()) == report
    assert report["inside"] == "nonzero"
    parity = run("eval", data, "--model", model, "--split", "test", "--json", "--inside", "parity")
    assert parity.exit_code == 0, parity.output
    assert json.loads(parity.output)["inside"] == "parity"
    sheet = tmp_path / "sheet.png"
    table = run("eval", data, "--model", model, "--sheet", sheet)
    assert table.exit_code == 0 and "mean" in table.output
    picture = Image.open(sheet).convert("L")
    # one test object per class: two rows of 128 px under a band naming the columns
    band = picture.height - 2 * 128
    assert picture.width == 512 and 10 < band < 40
    titles = np.asarray(picture.crop((0, 0, 512, band)))
    assert titles.max() == 255 and titles.min() < 100  # dark captions on white


def test_eval_never_replaces_a_file_it_did_not_write(trained, tmp_path, monkeypatch):
    data, model = trained
    mesh = tmp_path / "mesh.obj"
    mesh.write_text("v 0 0 0\n")
    result = run("eval", data, "--model", model, "-o", mesh, "--overwrite")
    assert result.exit_code == 1, result.output
    assert "not a report written by 'reconstruct eval'" in result.output
    assert mesh.read_text() == "v 0 0 0\n"
    report = tmp_path / "iou.json"
    assert run("eval", data, "--model", model, "-o", report).exit_code == 0
    again = run("eval", data, "--model", model, "-o", report)
    assert again.exit_code == 1 and "--overwrite" in again.output, again.output
    assert run("eval", data, "--model", model, "-o", report, "--overwrite").exit_code == 0
    # Output paths are checked before the evaluation runs.
    import meshstyle.reconstruct.evaluate as evaluate

    def never(*args, **kwargs):
        raise AssertionError("the evaluation ran")

    monkeypatch.setattr(evaluate, "score", never)
    afile = tmp_path / "afile"
    afile.write_text("")
    early = run("eval", data, "--model", model, "-o", afile / "x.json")
    assert early.exit_code == 1 and "cannot be written" in early.output, early.output
    sheet = run("eval", data, "--model", model, "--sheet", mesh, "--overwrite")
    assert sheet.exit_code == 2 and "ending in .png" in sheet.output, sheet.output
    assert mesh.read_text() == "v 0 0 0\n"


def _never(*args, **kwargs):
    raise AssertionError("the work ran before the outputs were checked")


def test_eval_never_writes_over_or_into_its_inputs(trained, tmp_path, monkeypatch):
    # Copies: without the checks, these calls would replace the shared fixture's files.
    data, model = shutil.copytree(trained[0], tmp_path / "data"), tmp_path / "run"
    shutil.copytree(trained[1], model)
    before = {p: p.read_bytes() for folder in (data, model) for p in folder.iterdir()}
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture")
    import meshstyle.reconstruct.evaluate as evaluate
    import meshstyle.reconstruct.train as train

    monkeypatch.setattr(evaluate, "score", _never)
    monkeypatch.setattr(train, "load_model", _never)
    refused = [
        (("--sheet", data / "chair_test_images.npz"), 2, "ending in .png"),
        (("--sheet", tmp_path / "sheet.jpg"), 2, "ending in .png"),
        (("--sheet", model / "curves.png"), 1, "is the run's own curves.png"),
        (("--sheet", data / "new.png"), 1, "is in the data folder"),
        (("--sheet", model / ".." / "data" / "new.png"), 1, "is in the data folder"),
        (("--sheet", notes), 1, "exists and is not a PNG"),
        (("-o", model / "config.json"), 1, "is the run's own config.json"),
        (("-o", model / "model.pt"), 1, "is the run's own model.pt"),
        (("-o", data / "report.json"), 1, "is in the data folder"),
    ]
    for args, code, message in refused:
        result = run("eval", data, "--model", model, *args, "--overwrite")
        assert result.exit_code == code, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output and "ran before" not in result.output
    assert {p: p.read_bytes() for folder in (data, model) for p in folder.iterdir()} == before
    assert notes.read_text() == "not a picture"
    assert not (tmp_path / "sheet.jpg").exists()
    # A report beside the run's files is fine, and an earlier PNG sheet is replaced, but
    # only with --overwrite.
    monkeypatch.undo()
    sheet = tmp_path / "sheet.png"
    Image.new("RGB", (4, 4)).save(sheet)
    kept = run("eval", data, "--model", model, "--sheet", sheet)
    assert kept.exit_code == 1 and "--overwrite" in kept.output, kept.output
    assert Image.open(sheet).size == (4, 4)
    args = ("-o", model / "eval.json", "--sheet", sheet, "--overwrite")
    result = run("eval", data, "--model", model, *args)
    assert result.exit_code == 0, result.output
    assert Image.open(sheet).width == 512 and (model / "eval.json").is_file()


@pytest.mark.parametrize("command", ["train", "predict", "make-data"])
def test_an_output_folder_under_a_file_is_a_one_line_error(trained, tmp_path, monkeypatch, command):
    data, model = trained
    afile = tmp_path / "afile"
    afile.write_text("precious")
    out = afile / "sub"
    import meshstyle.reconstruct.procedural as procedural
    import meshstyle.reconstruct.train as train

    # Checked before any work: the data, the model and the objects are never reached.
    monkeypatch.setattr(train, "load_split", _never)
    monkeypatch.setattr(train, "load_model", _never)
    monkeypatch.setattr(procedural, "make_object", _never)
    args = {
        "train": ("train", data, "-o", out, "--iterations", 1, "--batch-size", 2, "-q"),
        "predict": ("predict", _image(tmp_path / "img.png", data), "--model", model, "-o", out),
        "make-data": ("make-data", out, "--classes", "lamp", "--train", 1, "-q"),
    }[command]
    result = run(*args)
    assert result.exit_code == 1, result.output
    assert f"{out}: output folder cannot be written ({afile} is a file, not a folder)" in (
        result.output
    )
    assert result.output.strip().count("\n") == 0 and "Traceback" not in result.output
    assert afile.read_text() == "precious"


def test_predict_never_replaces_its_input(trained, tmp_path):
    data, model = trained
    image = _image(tmp_path / "img.png", data)
    before = image.read_bytes()
    for extra in ([], ["--overwrite"]):
        result = run("predict", image, "--model", model, "-o", tmp_path, *extra)
        assert result.exit_code == 1, result.output
        assert "output texture" in result.output
        assert "would replace the input image" in result.output
        assert "another -o" in result.output
        assert image.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.png"]


def _image(path, data):
    with np.load(data / "chair_test_images.npz") as f:
        rgba = f["arr_0"][0, 3].transpose(1, 2, 0)
    Image.fromarray(rgba, "RGBA").save(path)
    return path


@pytest.mark.parametrize("explicit", [True, False])
def test_predict_writes_obj_and_glb(trained, tmp_path, explicit):
    data, model = trained
    image = _image(tmp_path / "chair view.png", data)
    words = ["predict"] if explicit else []
    result = run(*words, image, "--model", model, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    obj, glb = tmp_path / "out" / "chair_view.obj", tmp_path / "out" / "chair_view.glb"
    assert obj.is_file() and glb.is_file()
    import trimesh

    mesh = trimesh.load(obj, force="mesh")
    assert len(mesh.faces) == 1280 and np.abs(mesh.vertices).max() <= 0.5
    again = run(*words, image, "--model", model, "-o", tmp_path / "out")
    assert again.exit_code == 1 and "--overwrite" in again.output
    assert f"{obj}: already exists (the output mesh for {image})" in again.output


def test_bad_inputs_give_one_line_errors(trained, tmp_path):
    data, model = trained
    cases = [
        (("train", tmp_path / "missing", "-o", tmp_path / "r", "--iterations", 1), "not found"),
        (("eval", data, "--model", tmp_path), "config.json: not found"),
        (("predict", tmp_path / "nope.png", "--model", model), "image not found"),
        (("train", data, "-o", model, "--iterations", 1), "already trained for 2 steps"),
    ]
    (tmp_path / "text.png").write_text("not an image")
    cases.append((("predict", tmp_path / "text.png", "--model", model), "not a readable image"))
    for args, message in cases:
        result = run(*args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output
        assert result.output.strip().count("\n") == 0, result.output

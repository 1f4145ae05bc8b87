"""The reconstruction networks, their losses, and the training loop's checkpoints."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest
import torch

from meshstyle.reconstruct import procedural
from meshstyle.reconstruct.layout import MESHSTYLE
from meshstyle.reconstruct.model import (
    Reconstructor,
    adjacent_face_pairs,
    flatten_loss,
    laplacian_loss,
    mean_neighbours,
    project_voxels,
    sphere_template,
    view_rays,
)
from meshstyle.reconstruct.train import Trainer, TrainSettings, load_model, train


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recon_tiny")
    for kind in ("chair", "table"):
        for split, count in (("train", 2), ("val", 1)):
            images, voxels = procedural.make_split(kind, split, count, seed=0)
            procedural.write_split(folder, kind, split, images, voxels)
    return folder


def test_template_is_the_642_vertex_sphere():
    vertices, faces = sphere_template()
    assert vertices.shape == (642, 3) and faces.shape == (1280, 3)
    assert torch.allclose(vertices.norm(dim=1), torch.ones(642), atol=1e-5)
    assert (vertices.abs() > 1e-4).all()  # no coordinate stuck at zero in the logit


def test_mesh_decoder_shapes_and_bounds():
    torch.manual_seed(0)
    model = Reconstructor("mesh")
    vertices = model(torch.rand(3, 4, 64, 64))
    assert vertices.shape == (3, 642, 3)
    assert vertices.abs().max() < 0.5
    # An untrained decoder starts near the template: a sphere of radius 0.25.
    assert torch.allclose(vertices.norm(dim=-1).mean(), torch.tensor(0.25), atol=0.05)
    encoder_convs = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in encoder_convs] == [64, 128, 256]
    assert all(c.kernel_size == (5, 5) and c.stride == (2, 2) for c in encoder_convs)
    linears = [m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears == [1024, 1024, 512, 1024, 2048, 3, 642 * 3]


def test_voxel_decoder_shapes():
    with torch.no_grad():
        occupancy = Reconstructor("voxel")(torch.rand(2, 4, 64, 64))
    assert occupancy.shape == (2, 32, 32, 32)
    assert 0 <= float(occupancy.min()) and float(occupancy.max()) <= 1


def test_mesh_model_starts_as_the_original_and_the_voxel_model_as_pytorch():
    torch.manual_seed(0)
    kinds = (torch.nn.Linear, torch.nn.Conv2d)
    mesh = Reconstructor("mesh")
    layers = [m for m in mesh.modules() if isinstance(m, kinds)]
    assert len(layers) == 10
    for layer in layers:
        std = float(layer.weight.detach().std()) * layer.weight[0].numel() ** 0.5
        assert abs(std - 1.0) < 0.2, (layer, std)  # variance 1 / fan-in
        assert torch.all(layer.bias == 0)
    voxel = Reconstructor("voxel")
    for layer in [m for m in voxel.encoder.modules() if isinstance(m, kinds)]:
        std = float(layer.weight.detach().std()) * layer.weight[0].numel() ** 0.5
        assert abs(std - 3**-0.5) < 0.1, (layer, std)  # PyTorch's: variance 1 / (3 fan-in)
    assert torch.all(voxel.decoder.deconvs[-1].bias == -5.0)


def test_untrained_mesh_decoder_tells_images_apart():
    # The input must reach the output at the start: different images, different meshes.
    torch.manual_seed(0)
    model = Reconstructor("mesh")
    images = torch.zeros(2, 4, 64, 64)
    images[0, :, 8:40, 8:40] = 1.0
    images[1, :, 30:60, 20:34] = 1.0
    with torch.no_grad():
        bias = model.decoder.bias(model.decoder.fcs(model.encoder(images)))
    assert float((bias[0] - bias[1]).abs().mean()) > 1e-3


def test_regularisers_prefer_smooth_meshes():
    vertices, faces = sphere_template()
    pairs = adjacent_face_pairs(faces)
    assert pairs.shape == (1920, 4)  # every edge of a closed 1280-face mesh, once
    neighbours = mean_neighbours(faces, 642)
    smooth = vertices[None] * 0.25
    rough = smooth * (1 + 0.2 * torch.rand(1, 642, 1, generator=torch.Generator().manual_seed(0)))
    assert flatten_loss(rough, pairs) > 3 * flatten_loss(smooth, pairs)
    assert laplacian_loss(rough, neighbours) > 3 * laplacian_loss(smooth, neighbours)


def test_voxel_projection_matches_the_rendered_masks():
    images, voxels = procedural.make_split("chair", "test", 1, seed=0)
    views = np.arange(0, 24, 6)
    rays = view_rays(MESHSTYLE.cameras(views), 64, 64)
    silhouettes = project_voxels(torch.tensor(voxels).float().expand(4, -1, -1, -1), rays)
    alpha = torch.tensor(images[0, views, 3] / 255.0).float()
    iou = (silhouettes * alpha).sum() / (silhouettes + alpha - silhouettes * alpha).sum()
    assert iou > 0.8


@pytest.mark.parametrize("decoder", ["mesh", "voxel"])
def test_training_steps_reduce_the_silhouette_loss_on_a_fixed_batch(tiny_data, tmp_path, decoder):
    # The mesh decoder's vertices move far with every step of Adam: 1e-3 crumples the mesh.
    # On one fixed batch of four objects the mesh bends to fit it, so its regularisers rise
    # (0.8 after 10 steps) while the silhouettes close in: the silhouette term is what the
    # renderer's gradient must reduce.
    rate = {"mesh": 1e-4, "voxel": 1e-3}[decoder]
    settings = TrainSettings(decoder=decoder, batch_size=4, learning_rate=rate, seed=0)
    trainer = Trainer(tiny_data, tmp_path / "run", settings)
    objects, views = np.array([0, 1, 2, 3]), np.array([0, 5, 10, 20])
    with torch.no_grad():
        before = trainer.loss(objects, views, (views + 7) % 24)[1]
    for _ in range(10):
        loss, _, _ = trainer.loss(objects, views, (views + 7) % 24)
        trainer.optimizer.zero_grad()
        loss.backward()
        trainer.optimizer.step()
    with torch.no_grad():
        after = trainer.loss(objects, views, (views + 7) % 24)[1]
    assert np.isfinite(after) and after < before - 0.01, (before, after)


def test_resume_continues_the_run(tiny_data, tmp_path):
    run = tmp_path / "run"
    settings = TrainSettings(batch_size=2, eval_every=2, val_objects=2, seed=1)
    first = train(tiny_data, run, settings, iterations=2)
    assert first.steps == 2 and not first.resumed
    for name in ("config.json", "model.pt", "checkpoint.pt", "log.csv", "curves.png"):
        assert (run / name).is_file(), name
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    assert checkpoint["step"] == 2
    # A second call resumes with the run's own settings, whatever it is given.
    other = TrainSettings(batch_size=3, decoder="voxel")
    second = train(tiny_data, run, other, iterations=3)
    assert second.resumed and second.steps == 3 and second.steps_now == 1
    with open(run / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert rows[1]["val_iou"] and rows[2]["val_iou"]
    config = json.loads((run / "config.json").read_text())
    assert config["settings"]["batch_size"] == 2 and config["steps"] == 3
    model, _ = load_model(run)
    assert model.kind == "mesh"


def test_resume_keeps_the_classes_the_run_was_trained_on(tiny_data, tmp_path):
    # A run of "every class" (chair, table), then the data folder gains a class.
    data = tmp_path / "data"
    data.mkdir()
    for path in tiny_data.iterdir():
        (data / path.name).write_bytes(path.read_bytes())
    run = tmp_path / "run"
    settings = TrainSettings(batch_size=2, val_objects=1)
    train(data, run, settings, iterations=1)
    for split, count in (("train", 2), ("val", 1)):
        images, voxels = procedural.make_split("lamp", split, count, seed=0)
        procedural.write_split(data, "lamp", split, images, voxels)
    assert sorted(Trainer(data, run, settings).train_split.classes) == ["chair", "table"]
    # A checkpoint from before the classes were recorded in it: config.json says.
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    del checkpoint["classes"]
    torch.save(checkpoint, run / "checkpoint.pt")
    assert sorted(Trainer(data, run, settings).train_split.classes) == ["chair", "table"]


def test_trainer_never_trains_into_a_folder_of_other_files(tiny_data, tmp_path):
    settings = TrainSettings(batch_size=2, val_objects=1)
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "log.csv").write_text("precious\n")
    with pytest.raises(FileExistsError, match="holds no run"):
        Trainer(tiny_data, folder, settings)
    assert (folder / "log.csv").read_text() == "precious\n"
    # A checkpoint.pt of another program is named, not a traceback from its missing keys.
    torch.save({"state_dict": {}}, folder / "checkpoint.pt")
    with pytest.raises(ValueError, match="not a checkpoint of 'meshstyle reconstruct train'"):
        Trainer(tiny_data, folder, settings)
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.pt", "log.csv"]


def test_resumed_run_matches_an_uninterrupted_one(tiny_data, tmp_path):
    settings = TrainSettings(batch_size=2, eval_every=100, val_objects=1, seed=2)
    train(tiny_data, tmp_path / "a", settings, iterations=2)
    train(tiny_data, tmp_path / "a", settings, iterations=3)
    train(tiny_data, tmp_path / "b", settings, iterations=3)
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


@pytest.mark.parametrize("decoder", ["mesh", "voxel"])
def test_a_run_saved_in_the_contiguous_layout_resumes_as_an_uninterrupted_one(
    tiny_data, tmp_path, decoder
):
    # Runs saved before the convolutions went channels_last hold NCHW weights and moments.
    settings = TrainSettings(decoder=decoder, batch_size=2, eval_every=100, val_objects=1, seed=2)
    train(tiny_data, tmp_path / "a", settings, iterations=2)
    path = tmp_path / "a" / "checkpoint.pt"
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["model"] = {k: v.contiguous() for k, v in checkpoint["model"].items()}
    for state in checkpoint["optimizer"]["state"].values():
        for key, value in state.items():
            state[key] = value.contiguous()
    assert any(not v.is_contiguous() for v in torch.load(path, weights_only=True)["model"].values())
    torch.save(checkpoint, path)
    train(tiny_data, tmp_path / "a", settings, iterations=4)
    train(tiny_data, tmp_path / "b", settings, iterations=4)
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_cosine_schedule_anneals_over_the_call_and_restarts_on_resume(tiny_data, tmp_path):
    settings = TrainSettings(
        batch_size=2, eval_every=100, val_objects=1, learning_rate=1e-3, lr_schedule="cosine"
    )
    train(tiny_data, tmp_path / "run", settings, iterations=5)
    train(tiny_data, tmp_path / "run", settings, iterations=7)
    with open(tmp_path / "run" / "log.csv") as fh:
        rates = [float(r["lr"]) for r in csv.DictReader(fh)]
    # 1e-3 * (1 + cos(pi k / 5)) / 2 for k = 0..4, then a new call over 2 steps.
    expected = [1e-3 * 0.5 * (1 + np.cos(np.pi * k / 5)) for k in range(5)] + [1e-3, 5e-4]
    assert np.allclose(rates, expected, rtol=1e-2), rates
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainSettings(lr_schedule="linear")


def test_warmup_raises_the_rate_over_the_run_not_again_on_resume(tiny_data, tmp_path):
    settings = TrainSettings(
        batch_size=2, eval_every=100, val_objects=1, learning_rate=1e-3, warmup_steps=4
    )
    train(tiny_data, tmp_path / "run", settings, iterations=2)
    train(tiny_data, tmp_path / "run", settings, iterations=6)
    with open(tmp_path / "run" / "log.csv") as fh:
        rates = [float(r["lr"]) for r in csv.DictReader(fh)]
    assert np.allclose(rates, [2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3]), rates
    # With the cosine schedule the two factors multiply.
    cosine = dataclasses.replace(settings, lr_schedule="cosine")
    train(tiny_data, tmp_path / "cos", cosine, iterations=4)
    with open(tmp_path / "cos" / "log.csv") as fh:
        rates = [float(r["lr"]) for r in csv.DictReader(fh)]
    expected = [1e-3 * (k + 1) / 4 * 0.5 * (1 + np.cos(np.pi * k / 4)) for k in range(4)]
    assert np.allclose(rates, expected, rtol=1e-2), rates
    assert TrainSettings().warmup_steps == 0  # the original has none
    assert TrainSettings.from_json({"decoder": "mesh"}).warmup_steps == 0
    with pytest.raises(ValueError, match="warmup_steps"):
        TrainSettings(warmup_steps=-1)


def test_encoder_batch_norm_is_a_setting():
    def norms(model):
        return [m for m in model.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]

    assert [n.num_features for n in norms(Reconstructor("mesh", batch_norm=True))] == [64, 128, 256]
    assert norms(Reconstructor("voxel")) == []
    # Evaluation normalises with the running statistics: one image alone gives the same
    # output as inside a batch.
    torch.manual_seed(0)
    model = Reconstructor("mesh", batch_norm=True).eval()
    images = torch.rand(3, 4, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(images)[:1], model(images[:1]), atol=1e-5)


def test_bf16_runs_the_voxel_decoder_in_bf16_with_float32_probabilities(tiny_data, tmp_path):
    seen = {}
    settings = TrainSettings(decoder="voxel", batch_size=2, val_objects=1, precision="bf16", seed=3)
    trainer = Trainer(tiny_data, tmp_path / "run", settings)
    decoder = trainer.model.decoder

    def record(module, inputs, output):
        seen.setdefault("deconv", output.dtype)

    decoder.deconvs[0].register_forward_hook(record)
    images = torch.rand(2, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    output = trainer.forward(images)
    assert seen == {"deconv": torch.bfloat16}
    assert output.dtype == torch.float32 and output.shape == (2, 32, 32, 32)
    with torch.no_grad():
        reference = trainer.model(images)  # float32 throughout, as eval runs
    assert (output - reference).abs().max() < 0.02
    loss, _, _ = trainer.step()
    assert np.isfinite(loss)
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())


def test_encoder_runs_channels_last_and_gives_the_contiguous_result():
    torch.manual_seed(0)
    model = Reconstructor("mesh")
    convs = [m for m in model.encoder.convs if isinstance(m, torch.nn.Conv2d)]
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    images = torch.rand(2, 4, 64, 64)
    # The same layers in NCHW, flattened in (C, H, W) order as the first layer expects.
    x = images
    for c in convs:
        x = torch.relu(
            torch.nn.functional.conv2d(x, c.weight.contiguous(), c.bias, stride=2, padding=2)
        )
    with torch.no_grad():
        expected = model.encoder.fcs(x.flatten(1))
        torch.testing.assert_close(model.encoder(images), expected, rtol=1e-4, atol=1e-5)
    # A state dict saved in NCHW loads into the NHWC weights without changing their layout.
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    fresh = Reconstructor("mesh")
    fresh.load_state_dict(state)
    assert all(
        m.weight.is_contiguous(memory_format=torch.channels_last)
        for m in fresh.encoder.convs
        if isinstance(m, torch.nn.Conv2d)
    )
    with torch.no_grad():
        assert torch.equal(fresh.encoder(images), model.encoder(images))


def test_settings_round_trip_batch_norm():
    assert not TrainSettings().batch_norm
    old = {"decoder": "mesh", "batch_size": 16, "classes": ["lamp"]}
    assert not TrainSettings.from_json(old).batch_norm
    assert TrainSettings.from_json(TrainSettings(batch_norm=True).to_json()).batch_norm


def test_settings_round_trip_precision():
    assert TrainSettings().precision == "auto"
    assert TrainSettings.from_json(TrainSettings(precision="bf16").to_json()).precision == "bf16"
    # A run saved before the setting existed trained in fp32, and resumes so.
    assert TrainSettings.from_json({"decoder": "mesh", "batch_size": 16}).precision == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainSettings(precision="fp16")


def test_bf16_runs_the_encoder_only_in_bf16(tiny_data, tmp_path):
    seen = {}
    settings = TrainSettings(batch_size=2, val_objects=1, precision="bf16", seed=3)
    trainer = Trainer(tiny_data, tmp_path / "run", settings)
    assert trainer.precision.name == "bf16"

    def record(name):
        def hook(module, inputs, output):
            seen.setdefault(name, output.dtype)

        return hook

    trainer.model.encoder.convs[0].register_forward_hook(record("encoder"))
    trainer.model.decoder.bias.register_forward_hook(record("decoder"))
    images = torch.rand(2, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    output = trainer.forward(images)
    assert seen == {"encoder": torch.bfloat16, "decoder": torch.float32}
    assert output.dtype == torch.float32
    with torch.no_grad():
        reference = trainer.model(images)  # the same weights in float32 throughout
    assert (output - reference).abs().max() < 0.02
    # A step trains (float32 weights, finite loss).
    loss, _, _ = trainer.step()
    assert np.isfinite(loss)
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())

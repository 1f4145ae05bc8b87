"""The feature network's precision: how ``auto`` resolves, bf16 features close to fp32,
Gram matrices and losses in fp32 whatever the trunk runs in, and the NHWC layout."""

from __future__ import annotations

import pytest
import torch

import meshstyle.precision as precision
from meshstyle.features import STYLE_LAYERS, load_feature_network
from meshstyle.losses import gram_matrix, style_grams, style_loss
from meshstyle.precision import cpu_bf16_flags, resolve_precision
from meshstyle.settings import resolve_settings

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu sse2 avx2 avx512f {extra}
"""


def test_explicit_precisions_are_honoured():
    assert resolve_precision("fp32").name == "fp32"
    assert resolve_precision("fp32").dtype == torch.float32
    bf16 = resolve_precision("bf16", "cpu")
    assert bf16.name == "bf16" and bf16.dtype == torch.bfloat16
    assert "requested" in bf16.reason


def test_unknown_precision_names_the_choices():
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16; got 'fp16'"):
        resolve_precision("fp16")


@pytest.mark.parametrize(
    ("extra", "flags"),
    [
        ("amx_bf16 amx_tile avx512_bf16", ("amx_bf16", "avx512_bf16")),
        ("avx512_bf16", ("avx512_bf16",)),
        ("avx512_vnni", ()),
    ],
)
def test_cpu_flags_are_read_from_cpuinfo(tmp_path, extra, flags):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO.format(extra=extra))
    assert cpu_bf16_flags(str(path)) == flags
    assert cpu_bf16_flags(str(tmp_path / "missing")) == ()


@pytest.mark.parametrize(
    ("flags", "expected"), [(("amx_bf16",), "bf16"), (("avx512_bf16",), "bf16"), ((), "fp32")]
)
def test_auto_on_cpu_follows_the_bf16_flags(monkeypatch, flags, expected):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: flags)
    chosen = resolve_precision("auto", "cpu")
    assert chosen.name == expected
    if flags:
        assert flags[0] in chosen.reason
    else:
        assert "no AMX or AVX512-BF16" in chosen.reason


def test_auto_on_cpu_without_onednn_stays_fp32(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ("amx_bf16",))
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert resolve_precision("auto", "cpu").name == "fp32"


@pytest.mark.parametrize(("capability", "expected"), [((8, 0), "bf16"), ((7, 5), "fp32")])
def test_auto_on_cuda_follows_the_compute_capability(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Test GPU")
    chosen = resolve_precision("auto", "cuda")
    assert chosen.name == expected
    assert "Test GPU" in chosen.reason


@pytest.mark.parametrize(("flags", "noted"), [((), True), (("amx_bf16",), False)])
def test_an_explicit_bf16_where_auto_avoids_it_gets_a_note(monkeypatch, flags, noted):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: flags)
    note = precision.slow_request("bf16", "cpu")
    assert (note is not None) == noted
    if noted:
        assert "no AMX or AVX512-BF16" in note and "--precision auto would use fp32" in note
    assert precision.slow_request("fp32", "cpu") is None
    assert precision.slow_request("auto", "cpu") is None


@pytest.mark.parametrize("flags", [(), ("amx_bf16",)])
def test_stylize_prints_the_note_before_its_jobs(monkeypatch, tmp_path, flags):
    from click.testing import CliRunner

    from meshstyle.cli import cli
    from tests.clitools import tiny_preset, write_sphere, write_style

    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: flags)
    args = [
        "stylize",
        write_sphere(tmp_path / "ball.obj", subdivisions=0),
        write_style(tmp_path / "noise.png"),
        "-o",
        tmp_path / "out",
        "--preset",
        tiny_preset(tmp_path),
        "--precision",
        "bf16",
    ]
    result = CliRunner().invoke(cli, [str(a) for a in args], obj={})
    assert result.exit_code == 0, result.output
    assert ("note: --precision bf16 runs here" in result.output) == (not flags)


def test_precision_is_a_setting_and_a_preset_key(tmp_path):
    assert resolve_settings("fast").precision == "auto"
    assert resolve_settings("fast", {"precision": "bf16"}).precision == "bf16"
    preset = tmp_path / "mine.toml"
    preset.write_text('precision = "fp32"\n')
    assert resolve_settings(str(preset), base="fast").precision == "fp32"
    with pytest.raises(ValueError, match="precision must be auto, fp32 or bf16; got 'half'"):
        resolve_settings("fast", {"precision": "half"})


def test_cli_rejects_an_unknown_precision(tmp_path):
    from click.testing import CliRunner

    from meshstyle.cli import cli

    result = CliRunner().invoke(
        cli, ["stylize", "mesh.obj", "style.png", "--precision", "fp16"], obj={}
    )
    assert result.exit_code == 2
    assert "'fp16' is not one of 'auto', 'fp32', 'bf16'" in result.output


def test_info_reports_the_auto_precision():
    from meshstyle.commands.info import collect_info

    choice = collect_info()["precision (auto)"]
    assert choice.split()[0] in ("fp32", "bf16") and "(" in choice


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().flatten(), b.detach().double().flatten()
    return float(a @ b / (a.norm() * b.norm()))


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    # Small: bf16 convolutions are emulated (slow) on CPUs without bf16 units.
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def _features_and_grad(network, images, targets=None, widen=True):
    x = images.clone().requires_grad_(True)
    features = network(x, widen=widen)
    if targets is None:
        loss = sum(f.square().mean() for f in features.values())
    else:
        loss = style_loss(features, targets, torch.ones(x.shape[0], *x.shape[-2:]))
    loss.backward()
    return features, x.grad, loss


def test_bf16_features_and_image_gradients_are_close_to_fp32(images):
    fp32 = load_feature_network("vgg19", STYLE_LAYERS, precision="fp32")
    bf16 = load_feature_network("vgg19", STYLE_LAYERS, precision="bf16")
    assert fp32.dtype == torch.float32 and bf16.dtype == torch.bfloat16
    assert all(p.dtype == torch.bfloat16 for p in bf16.parameters())
    ref, ref_grad, _ = _features_and_grad(fp32, images)
    out, grad, _ = _features_and_grad(bf16, images)
    for name in STYLE_LAYERS:
        assert _cosine(out[name], ref[name]) > 0.999, name
    assert grad.dtype == torch.float32
    assert _cosine(grad, ref_grad) > 0.99


def test_grams_and_losses_stay_fp32_under_bf16(images):
    bf16 = load_feature_network("vgg19", STYLE_LAYERS, precision="bf16")
    targets = style_grams(bf16, images[:1])
    assert all(g.dtype == torch.float32 for g in targets.values())
    features, grad, loss = _features_and_grad(bf16, images, targets)
    assert all(f.dtype == torch.float32 for f in features.values())
    assert gram_matrix(features["relu2_2"]).dtype == torch.float32
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert torch.isfinite(grad).all()


def test_unwidened_maps_keep_the_trunk_dtype_and_the_style_loss(images):
    bf16 = load_feature_network("vgg19", STYLE_LAYERS, precision="bf16")
    targets = style_grams(bf16, images[:1])
    losses, grads = [], []
    for widen in (True, False):
        features, grad, loss = _features_and_grad(bf16, images, targets, widen=widen)
        expected = torch.float32 if widen else torch.bfloat16
        assert all(f.dtype == expected for f in features.values())
        assert loss.dtype == torch.float32
        losses.append(loss.item())
        grads.append(grad)
    # The Grams are the same float32 Grams; only the backward product's rounding differs.
    assert losses[0] == losses[1]
    assert grads[1].dtype == torch.float32
    assert _cosine(grads[0], grads[1]) > 0.999


def test_channels_last_matches_contiguous(images):
    contiguous = load_feature_network("vgg19", STYLE_LAYERS, precision="fp32", channels_last=False)
    nhwc = load_feature_network("vgg19", STYLE_LAYERS, precision="fp32", channels_last=True)
    assert nhwc.channels_last and not contiguous.channels_last
    ref, ref_grad, _ = _features_and_grad(contiguous, images)
    out, grad, _ = _features_and_grad(nhwc, images)
    assert out["relu1_2"].is_contiguous(memory_format=torch.channels_last)
    for name in STYLE_LAYERS:
        # Summation order differs between layouts: compare against the layer's scale.
        scale = ref[name].abs().max().item()
        torch.testing.assert_close(out[name], ref[name], rtol=1e-4, atol=1e-5 * scale)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-4 * ref_grad.abs().max().item())

"""Presets fill the settings; explicit values override them; bad values are named."""

import tomllib

import pytest

from meshstyle.settings import EditSettings, preset_names, resolve_settings


def test_every_shipped_preset_resolves():
    names = preset_names()
    for required in ("paper", "fast", "texture-only", "shape-only", "deepdream"):
        assert required in names
    for name in names:
        assert isinstance(resolve_settings(name), EditSettings)


def test_paper_preset_has_the_original_settings():
    s = resolve_settings("paper")
    assert (s.iterations, s.image_size, s.views, s.texture_size) == (1000, 224, 4, 4)
    assert (s.lr, s.vertex_lr_scale, s.texture_lr_scale) == (0.05, 0.01, 1.0)
    assert (s.style_weight, s.content_weight) == (1.0, 2e9)
    assert s.style_layers == ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
    assert (s.elevation_min, s.elevation_max, s.distance_noise) == (20.0, 40.0, 0.1)


def test_a_users_file_changes_only_its_keys(tmp_path):
    path = tmp_path / "few.toml"
    path.write_text("iterations = 3\n")
    s = resolve_settings(str(path), base="deepdream")
    assert s.iterations == 3
    assert s.background == resolve_settings("deepdream").background == "random-grey"


def test_texture_and_shape_only_layer_on_the_commands_preset():
    fast = resolve_settings("fast")
    texture_only = resolve_settings("texture-only", base="fast")
    assert not texture_only.optimise_vertices
    assert texture_only == resolve_settings("fast", {"optimise_vertices": False})
    shape_only = resolve_settings("shape-only", base="deepdream")
    assert not shape_only.optimise_textures
    assert shape_only.layer == resolve_settings("deepdream").layer
    assert fast.optimise_vertices and fast.optimise_textures


def test_overrides_win_and_none_is_ignored():
    s = resolve_settings("fast", {"iterations": 7, "lr": None, "style_layers": "relu1_1,relu2_1"})
    assert s.iterations == 7
    assert s.lr == resolve_settings("fast").lr
    assert s.style_layers == ("relu1_1", "relu2_1")


def test_toml_round_trip(tmp_path):
    s = resolve_settings("paper", {"seed": 3})
    path = tmp_path / "mine.toml"
    path.write_text(s.to_toml())
    assert tomllib.loads(path.read_text())["seed"] == 3
    assert resolve_settings(str(path)) == s


@pytest.mark.parametrize(
    ("preset_text", "message"),
    [
        ("iterations = 'many'", "iterations must be an integer"),
        ("colour = 3", "unknown setting 'colour'"),
        ("views = 0", "views must be in"),
        ("background = 'plaid'", "background must be"),
        ("iterations = [", "not valid TOML"),
        ("optimise_vertices = false\noptimise_textures = false", "at least one"),
        ("seam_weight = 1e30", "bad.toml: seam_weight must be at most 1e4"),
        ("seam_weight = -1", "seam_weight must be a finite number >= 0"),
    ],
)
def test_bad_presets_name_the_rule(tmp_path, preset_text, message):
    path = tmp_path / "bad.toml"
    path.write_text(preset_text)
    with pytest.raises(ValueError, match=message):
        resolve_settings(str(path))


def test_unknown_preset_lists_the_choices():
    with pytest.raises(ValueError, match="unknown preset 'nope'.*paper"):
        resolve_settings("nope")

"""The paper presets keep the paper's parameterisation; the defaults use the smooth ones."""

import pytest

from meshstyle.settings import resolve_settings


@pytest.mark.parametrize("name", ["paper", "deepdream-paper"])
def test_paper_presets_keep_cubes_rgb_and_raw_vertices(name):
    s = resolve_settings(name)
    assert (s.texture_mode, s.colour_space, s.vertex_mode) == ("cubes", "rgb", "raw")
    assert s.initial_colour == "mesh"


@pytest.mark.parametrize("name", ["fast", "deepdream"])
def test_default_presets_use_uv_textures_and_smooth_shapes(name):
    s = resolve_settings(name)
    assert (s.texture_mode, s.colour_space, s.vertex_mode) == ("uv", "decorrelated", "smooth")
    assert s.smoothness > 0


@pytest.mark.parametrize(
    "key, value, rule",
    [
        ("texture_mode", "atlas", "texture_mode must be uv or cubes"),
        ("colour_space", "hsv", "colour_space must be decorrelated or rgb"),
        ("vertex_mode", "soft", "vertex_mode must be smooth or raw"),
        ("initial_colour", "red", "initial_colour must be mesh, style-mean or grey"),
        ("texture_resolution", 8, "texture_resolution must be in"),
        ("smoothness", -1.0, "smoothness must be a finite number >= 0"),
    ],
)
def test_bad_parameterisation_settings_name_the_rule(key, value, rule):
    with pytest.raises(ValueError, match=rule):
        resolve_settings("fast", {key: value})

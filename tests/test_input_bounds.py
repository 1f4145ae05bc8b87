"""Every image side and every size setting is bounded; a result's settings.toml is a preset."""

import tomllib

import numpy as np
import pytest
from PIL import Image

from meshstyle.images import MAX_SIDE, load_image
from meshstyle.settings import EditSettings, job_table, resolve_settings


@pytest.mark.parametrize(("shape", "size"), [((1, 3000), 128), ((3000, 2), 224), ((5, 9000), 16)])
def test_a_shorter_side_target_never_makes_a_side_above_the_bound(tmp_path, shape, size):
    path = tmp_path / "strip.png"
    Image.fromarray(np.zeros((*shape, 3), np.uint8)).save(path)
    image = load_image(path, size=size)
    assert max(image.shape[1:]) <= MAX_SIDE
    assert min(image.shape[1:]) >= 1


def test_ordinary_images_keep_their_aspect(tmp_path):
    path = tmp_path / "wide.png"
    Image.fromarray(np.zeros((100, 300, 3), np.uint8)).save(path)
    assert tuple(load_image(path, size=128).shape) == (3, 128, 384)


@pytest.mark.parametrize("size", [0, MAX_SIDE + 1, (MAX_SIDE + 1, 4)])
def test_size_arguments_are_bounded(tmp_path, size):
    path = tmp_path / "x.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)
    with pytest.raises(ValueError, match="size must be"):
        load_image(path, size=size)


def test_settings_toml_round_trips_with_hostile_paths(tmp_path):
    settings = resolve_settings("fast", {"lr": 0.02, "seed": 3}, base="fast")
    mesh = tmp_path / 'a "quoted"\nname\\with\ttabs # and a hash.obj'
    text = "# meshstyle stylize\n" + settings.to_toml() + job_table(mesh, tmp_path / "s.png")
    table = tomllib.loads(text)
    assert table["job"]["mesh"] == str(mesh)
    path = tmp_path / "settings.toml"
    path.write_text(text)
    assert resolve_settings(str(path), base="fast") == settings


def test_undecodable_file_names_still_write_valid_toml(tmp_path):
    name = b"caf\xe9.obj".decode("utf-8", "surrogateescape")
    text = job_table(tmp_path / name)
    text.encode("utf-8")  # no lone surrogate left
    assert tomllib.loads(text)["job"]["mesh"].endswith("caf\ufffd.obj")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("preview_size", 0),
        ("preview_size", 100_000),
        ("style_image_size", 8),
        ("turntable_frames", 10_000),
        ("iterations", 10**9),
        ("seed", -1),
        ("channel", -2),
        ("viewing_angle", float("nan")),
        ("ambient", float("inf")),
    ],
)
def test_size_and_number_settings_are_bounded(field, value):
    with pytest.raises(ValueError, match=field):
        EditSettings(**{field: value})

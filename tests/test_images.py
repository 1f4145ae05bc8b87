"""Image reading (conversions, every kind of bad file) and atomic PNG/GIF/sheet writing."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from meshstyle import fsutil
from meshstyle.images import (
    ImageError,
    contact_sheet,
    load_image,
    mean_colour,
    save_gif,
    save_png,
    to_uint8,
)
from tests.testdata import shared_styles


def _write(path, array, **kwargs):
    Image.fromarray(array).save(path, **kwargs)
    return path


@pytest.mark.parametrize("name", ["swirls.jpg", "circles.png", *shared_styles("munch1.jpg")])
def test_load_style_image(style_path, name):
    image = load_image(style_path(name))
    assert image.dtype == torch.float32 and image.shape[0] == 3
    assert 0.0 <= image.min() and image.max() <= 1.0
    small = load_image(style_path(name), size=224)
    assert min(small.shape[1:]) == 224
    exact = load_image(style_path(name), size=(64, 48))
    assert exact.shape == (3, 64, 48)
    # Antialiased resizing keeps the average colour.
    torch.testing.assert_close(mean_colour(small), mean_colour(image), atol=0.01, rtol=0)


def test_shorter_side_keeps_aspect(tmp_path):
    path = _write(tmp_path / "wide.png", np.zeros((40, 100, 3), np.uint8))
    assert load_image(path, size=20).shape == (3, 20, 50)
    with pytest.raises(ValueError, match="size must be"):
        load_image(path, size=0)
    with pytest.raises(ValueError, match="size must be"):
        load_image(path, size=(10, 2.5))


def test_greyscale_palette_and_cmyk_become_rgb(tmp_path):
    grey = _write(tmp_path / "grey.png", np.full((4, 5), 51, np.uint8))
    image = load_image(grey)
    assert image.shape == (3, 4, 5)
    torch.testing.assert_close(image, torch.full((3, 4, 5), 0.2))
    palette = tmp_path / "palette.gif"
    Image.new("RGB", (3, 3), (255, 0, 0)).convert("P").save(palette)
    torch.testing.assert_close(load_image(palette)[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    cmyk = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 8), (0, 0, 0, 0)).save(cmyk)
    assert load_image(cmyk).min() > 0.95  # no ink: white


def test_transparency_is_composited_over_white(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0] = 255  # red hidden under alpha 0 ...
    rgba[0, 0, 3] = 255  # ... except one opaque red pixel
    image = load_image(_write(tmp_path / "alpha.png", rgba))
    torch.testing.assert_close(image[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(image[:, 1, 1], torch.ones(3))


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    values = np.array([[0, 32768], [65535, 1000]], np.uint16)
    image = load_image(_write(tmp_path / "deep.png", values))
    assert image.shape == (3, 2, 2)
    assert image[0, 1, 0].item() == pytest.approx(1.0)
    assert image[0, 0, 1].item() == pytest.approx(0.5, abs=1e-4)
    assert image[0, 1, 1].item() == pytest.approx(1000 / 65535, abs=1e-6)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageError, match="image file not found: .*nope.jpg"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="is a directory"):
        load_image(tmp_path)


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / "style.jpg"
    path.write_text("this is not a picture\n")
    with pytest.raises(ImageError, match=r"style\.jpg is not an image file") as info:
        load_image(path)
    assert isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["swirls.jpg", *shared_styles("munch1.jpg")])
def test_truncated_jpeg(tmp_path, style_path, name):
    data = style_path(name).read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"cut\.jpg is corrupt or truncated") as info:
        load_image(path)
    assert "\n" not in str(info.value)


def test_decompression_bomb_guard(tmp_path, monkeypatch):
    path = _write(tmp_path / "big.png", np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ImageError, match=r"10x10 = 100 pixels; the limit is 99 pixels"):
        load_image(path, max_pixels=99)
    assert load_image(path, max_pixels=100).shape == (3, 10, 10)
    # PIL's own guard, warning and error alike, becomes an ImageError too.
    for limit in (60, 40):  # 100 pixels: warning above 60, error above 2 x 40
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
        with pytest.raises(ImageError, match="decompression-bomb guard"):
            load_image(path)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file(tmp_path):
    path = _write(tmp_path / "locked.png", np.zeros((2, 2, 3), np.uint8))
    path.chmod(0)
    try:
        with pytest.raises(ImageError, match="permission denied"):
            load_image(path)
    finally:
        path.chmod(0o644)


def test_permission_error_is_reported(tmp_path, monkeypatch):
    # The same path as test_unreadable_file, reachable when the tests run as root.
    path = _write(tmp_path / "locked.png", np.zeros((2, 2, 3), np.uint8))

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(Image, "open", denied)
    with pytest.raises(
        ImageError, match=r"cannot read image file .*locked\.png: permission denied"
    ):
        load_image(path)


def test_mean_colour():
    image = torch.zeros(3, 2, 2)
    image[0] = 1.0
    image[2, 0, 0] = 0.4
    torch.testing.assert_close(mean_colour(image), torch.tensor([1.0, 0.0, 0.1]))
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        mean_colour(torch.zeros(2, 2, 3))


def test_to_uint8_layouts_and_cleaning():
    chw = torch.tensor([[[0.0, float("nan")]], [[1.5, -2.0]], [[0.5, float("inf")]]])
    out = to_uint8(chw)
    assert out.dtype == np.uint8 and out.shape == (1, 2, 3)
    assert out.tolist() == [[[0, 255, 128], [0, 0, 255]]]
    hwc = np.zeros((4, 5, 3), np.float32)
    assert to_uint8(hwc).shape == (4, 5, 3)
    assert to_uint8(np.full((4, 5), 7, np.uint8)).shape == (4, 5, 3)
    # Ambiguous (3, 4, 3): torch is channels-first, NumPy channels-last.
    assert to_uint8(torch.zeros(3, 4, 3)).shape == (4, 3, 3)
    assert to_uint8(np.zeros((3, 4, 3))).shape == (3, 4, 3)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        to_uint8(np.zeros((5, 5, 5)))


def test_save_png_is_readable_and_atomic(tmp_path):
    image = torch.rand(3, 6, 7)
    image[0, 0, 0] = float("nan")
    path = save_png(tmp_path / "out" / "render.png", image)
    assert sorted(os.listdir(path.parent)) == ["render.png"]  # no temporary left over
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size == (7, 6) and img.mode == "RGB"
        back = np.asarray(img)
    assert back[0, 0, 0] == 0
    np.testing.assert_array_equal(back, to_uint8(image))


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = save_png(tmp_path / "keep.png", np.zeros((2, 2, 3), np.uint8))
    before = path.read_bytes()
    with pytest.raises(ValueError):
        save_png(path, np.zeros((2, 2, 5), np.uint8))  # rejected before touching the disk

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(fsutil.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save_png(path, np.full((2, 2, 3), 255, np.uint8))
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["keep.png"]


def test_save_gif_loops_with_the_right_timing(tmp_path):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    frames = [np.full((8, 10, 3), c, np.uint8) for c in colours]
    path = save_gif(tmp_path / "turntable.gif", frames, fps=20)
    assert sorted(os.listdir(tmp_path)) == ["turntable.gif"]
    with Image.open(path) as gif:
        assert gif.n_frames == 3 and gif.size == (10, 8)
        assert gif.info["loop"] == 0 and gif.info["duration"] == 50
        for index, colour in enumerate(colours):
            gif.seek(index)
            assert gif.convert("RGB").getpixel((4, 4)) == colour
    with pytest.raises(ValueError, match="at least one frame"):
        save_gif(tmp_path / "empty.gif", [])
    with pytest.raises(ValueError, match="frame 1 has"):
        save_gif(tmp_path / "mixed.gif", [frames[0], np.zeros((4, 4, 3), np.uint8)])
    for fps in (0, 60):
        with pytest.raises(ValueError, match=r"fps must be a number in \(0, 50\]"):
            save_gif(tmp_path / "x.gif", frames, fps=fps)


def test_contact_sheet_layout_and_labels():
    before = np.zeros((20, 30, 3), np.uint8)
    after = torch.ones(3, 10, 10)
    plain = contact_sheet([[before, before], [after]], margin=4)
    assert plain.dtype == np.uint8
    assert plain.shape == (4 + 2 * (20 + 4), 4 + 2 * (30 + 4), 3)
    assert (plain[4:24, 4:34] == 0).all()  # the first image, top-left
    labelled = contact_sheet([[before], [after]], labels=["before", "after"], margin=4)
    text_h = labelled.shape[0] - (4 + 2 * (20 + 4))
    assert text_h // 2 > 0 and labelled.shape[1] == 4 + 30 + 4
    assert (labelled[4 : 4 + text_h // 2, 4:34] < 128).any()  # a dark caption above row 0
    per_image = contact_sheet([[before, before]], labels=[["a", "b"]])
    assert per_image.shape[1] == 8 + 2 * (30 + 8)  # default margin 8
    # A caption wider than its image widens the cells rather than running into the next.
    wide = contact_sheet([[before, before]], labels=[["a very long caption indeed", "b"]])
    assert wide.shape[1] > per_image.shape[1]
    with pytest.raises(ValueError, match="one entry per row"):
        contact_sheet([[before]], labels=["a", "b"])
    with pytest.raises(ValueError, match="non-empty"):
        contact_sheet([])

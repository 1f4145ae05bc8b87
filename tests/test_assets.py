"""The bundled assets load, are small, and are exactly what assets/make_assets.py makes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from meshstyle.mesh import load_mesh, normalise

ASSETS = Path(__file__).resolve().parents[1] / "assets"
MESHES = ["teapot.obj", "knot.obj"]
PAINTINGS = ["swirls.png", "circles.png"]


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("assets")
    subprocess.run(
        [sys.executable, str(ASSETS / "make_assets.py"), str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out


@pytest.mark.parametrize("name", MESHES)
def test_mesh_assets_load_and_are_closed(name):
    path = ASSETS / name
    assert path.stat().st_size < 1_000_000
    mesh = load_mesh(path)
    assert 1000 <= mesh.num_faces <= 6000
    assert mesh.name == Path(name).stem
    normalised, _ = normalise(mesh)
    assert np.ptp(normalised.vertices, axis=0).max() == pytest.approx(2.0)
    # every part is a closed, consistently wound surface enclosing positive volume
    for part in trimesh.Trimesh(mesh.vertices, mesh.faces, process=False).split(
        only_watertight=False
    ):
        assert part.is_watertight and part.is_winding_consistent
        assert part.volume > 0


@pytest.mark.parametrize("name", PAINTINGS)
def test_painting_assets_are_images(name):
    path = ASSETS / name
    assert path.stat().st_size < 1_000_000
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "RGB" and image.size == (512, 512)
        pixels = np.asarray(image)
    # a painting, not a flat fill: many colours and real contrast
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 1000
    assert pixels.std() > 30


@pytest.mark.parametrize("name", MESHES)
def test_script_regenerates_the_meshes(regenerated, name):
    assert (regenerated / name).read_bytes() == (ASSETS / name).read_bytes()


@pytest.mark.parametrize("name", PAINTINGS)
def test_script_regenerates_the_paintings(regenerated, name):
    # pixels, not bytes: another zlib build may compress the same pixels differently
    with Image.open(regenerated / name) as new, Image.open(ASSETS / name) as committed:
        np.testing.assert_array_equal(np.asarray(new), np.asarray(committed))


def test_script_writes_nothing_else(regenerated):
    assert sorted(p.name for p in regenerated.iterdir()) == sorted(MESHES + PAINTINGS)

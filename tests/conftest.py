"""Shared fixtures: test meshes and paintings generated once per session.

Every test runs from the repository alone. The meshes and paintings come from
``assets/make_assets.py`` (our teapot, a torus knot, swirling brush strokes, circles) and
trimesh (an icosphere), written into a session temporary folder.

Where the sibling folder ``../shared/data`` exists, tests may add cases from it (see
:mod:`tests.testdata`); a missing folder means fewer cases, never a skip.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import Result

from tests.testdata import (
    GENERATED_MESHES,
    GENERATED_STYLES,
    SHARED,
    SHARED_DATA,
    make_assets_module,
)


@pytest.fixture(autouse=True)
def _no_kept_uv_layouts():
    """Each test unwraps for itself: no layout kept from an earlier test (``unwrap`` keeps
    them for the process), so stand-in workers are really called."""
    import sys

    uvtexture = sys.modules.get("meshstyle.uvtexture")
    if uvtexture is not None:
        uvtexture._LAYOUTS.clear()


@pytest.fixture(scope="session")
def generated_data(tmp_path_factory) -> Path:
    """A folder with ``meshes/{teapot,knot,sphere}.obj`` and ``styles/{swirls.jpg,circles.png}``.

    teapot: about 4.8k faces, 1 unit tall, spout at +x; knot: a (2, 3) torus knot tube,
    3840 faces; sphere: trimesh's icosphere of 642 vertices and 1280 faces. swirls.jpg is
    the swirls painting at 256 x 256 as a JPEG (quality 90); circles.png at 256 x 256.
    """
    import trimesh
    from PIL import Image

    assets = make_assets_module()
    root = tmp_path_factory.mktemp("generated_data")
    meshes = root / "meshes"
    styles = root / "styles"
    meshes.mkdir()
    styles.mkdir()
    for name, (vertices, faces) in (
        ("teapot", assets.make_teapot()),
        ("knot", assets.make_knot()),
    ):
        (meshes / f"{name}.obj").write_text(assets.obj_text(name, vertices, faces))
    sphere = trimesh.creation.icosphere(subdivisions=3)
    (meshes / "sphere.obj").write_text(
        assets.obj_text("sphere", sphere.vertices, sphere.faces.astype(int))
    )
    Image.fromarray(assets.make_swirls(256)).save(styles / "swirls.jpg", quality=90)
    Image.fromarray(assets.make_circles(256)).save(styles / "circles.png")
    return root


@pytest.fixture(scope="session")
def mesh_path(generated_data):
    """Return a function mapping a mesh name to its path: a generated mesh (``"teapot"``,
    ``"knot"``, ``"sphere"``) or a shared one (``"shared:bunny"``)."""

    def get(name: str) -> Path:
        if name.startswith(SHARED):
            return SHARED_DATA / "meshes" / f"{name.removeprefix(SHARED)}.obj"
        if name not in GENERATED_MESHES:
            raise KeyError(f"no generated mesh {name!r}; have {GENERATED_MESHES}")
        return generated_data / "meshes" / f"{name}.obj"

    return get


@pytest.fixture(scope="session")
def style_path(generated_data):
    """Return a function mapping a painting's file name to its path: a generated one
    (``"swirls.jpg"``, ``"circles.png"``) or a shared one (``"shared:munch1.jpg"``)."""

    def get(name: str) -> Path:
        if name.startswith(SHARED):
            return SHARED_DATA / "styles" / name.removeprefix(SHARED)
        if name not in GENERATED_STYLES:
            raise KeyError(f"no generated painting {name!r}; have {GENERATED_STYLES}")
        return generated_data / "styles" / name

    return get


@dataclass(frozen=True)
class FitRun:
    """A finished ``meshstyle fit`` run: its output folder and click's result."""

    out: Path
    target: Path
    result: Result

    @property
    def job(self) -> Path:
        return self.out / "teapot__fit"


@pytest.fixture(scope="session")
def teapot_fit(mesh_path, tmp_path_factory) -> FitRun:
    """One silhouette fit of an icosphere to the generated teapot (150 steps at 48 x 48),
    run once through the command line and checked by several tests (it takes the longest
    of any test input). OUT starts with the leftover of an interrupted run, which the fit
    must clear away."""
    from click.testing import CliRunner

    from meshstyle.cli import cli

    target = mesh_path("teapot")
    out = tmp_path_factory.mktemp("teapot_fit")
    (out / ".teapot__fit.killed.partial").mkdir()
    args = ["fit", target, "-o", out, "--iterations", 150, "--image-size", 48, "-q"]
    result = CliRunner().invoke(cli, [str(a) for a in args], obj={}, catch_exceptions=False)
    return FitRun(out=out, target=target, result=result)

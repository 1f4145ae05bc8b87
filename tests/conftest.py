"""Shared fixtures: the test meshes and style images live in ``../shared/data``.

They are never copied into the repository. Where the folder is missing (a plain clone),
the tests that need it are skipped; under CI (``CI`` set) a missing folder is an error, so
that a green CI can never mean those tests silently did not run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MESHSTYLE_SHARED_DATA", REPO.parent / "shared" / "data"))


def _require(path: Path) -> Path:
    if not path.exists():
        message = f"test data not found: {path} (set MESHSTYLE_SHARED_DATA)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder holding ``meshes/`` and ``styles/``."""
    return _require(SHARED_DATA)


@pytest.fixture(scope="session")
def mesh_path(shared_data):
    """Return a function mapping a mesh name (``"teapot"``) to its path."""

    def get(name: str) -> Path:
        return _require(shared_data / "meshes" / f"{name}.obj")

    return get


@pytest.fixture(scope="session")
def style_path(shared_data):
    """Return a function mapping a style file name (``"munch1.jpg"``) to its path."""

    def get(name: str) -> Path:
        return _require(shared_data / "styles" / name)

    return get

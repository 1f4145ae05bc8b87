"""Where test data comes from: meshes and paintings the tests generate, plus optional
cases from the sibling folder ``../shared/data`` (or ``MESHSTYLE_SHARED_DATA``).

:func:`shared_meshes` and :func:`shared_styles` return the case names of the shared files
present, for ``pytest.mark.parametrize``: a missing folder means fewer cases, never a skip.
The fixtures that resolve case names to paths are in ``tests/conftest.py``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MESHSTYLE_SHARED_DATA", REPO.parent / "shared" / "data"))
SHARED = "shared:"  # prefix of a case name that refers to a file of SHARED_DATA

#: Names of the generated meshes (``conftest.generated_data`` says what each is).
GENERATED_MESHES = ("teapot", "knot", "sphere")
#: Generated paintings, by file name.
GENERATED_STYLES = ("swirls.jpg", "circles.png")


def shared_meshes(*names: str) -> list[str]:
    """Case names (``"shared:bunny"``) of the shared meshes present, for ``parametrize``."""
    return [SHARED + name for name in names if (SHARED_DATA / "meshes" / f"{name}.obj").is_file()]


def shared_styles(*names: str) -> list[str]:
    """Case names (``"shared:munch1.jpg"``) of the shared paintings present."""
    return [SHARED + name for name in names if (SHARED_DATA / "styles" / name).is_file()]


def make_assets_module():
    """``assets/make_assets.py`` imported as a module (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location("make_assets", REPO / "assets" / "make_assets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

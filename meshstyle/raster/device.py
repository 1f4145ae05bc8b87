"""How the rasterizer's shared math becomes compiled code for a backend.

The per-face and per-pixel math is written once, in plain Python over scalars, tuples and
element access into arrays that the caller passes in: no allocation, no NumPy calls, no
parallel loops, no globals other than ``math``, the constants of :mod:`.layout` and the
functions listed in :data:`DEVICE_FUNCTIONS`. It lives in

- :mod:`.screen`: face setup, edge functions, coverage and depth at a pixel;
- :mod:`.texturing`: texture lookup and the shading of a pixel;
- :mod:`.scanlines`: packing pixels into scan lines, linking their active runs;
- :mod:`.edge_gradient`: the approximate gradient of an edge along a screen axis;
- :mod:`.interior_gradient`: the exact texture and depth gradients;
- :mod:`.face_gradient`: one face's whole backward pass, as both backends run it.

That is what lets the same source run as ordinary Python, as ``numba.njit`` code in
:mod:`.cpu` and as CUDA device functions in :mod:`.cuda`: :func:`compile_functions` builds
a compiled copy of all of them for any numba decorator.
"""

from __future__ import annotations

import hashlib
import importlib
import math
import types
from pathlib import Path

#: The modules of shared math, in dependency order.
MATH_MODULES = (
    "screen",
    "texturing",
    "scanlines",
    "edge_gradient",
    "interior_gradient",
    "face_gradient",
)

# Functions that call one another and therefore must be compiled together.
DEVICE_FUNCTIONS = (
    "unsigned",
    "setup_face",
    "edge_functions",
    "edge_weights",
    "fragment",
    "plane_inverse_depth",
    "texel_coords",
    "texel_weight",
    "sample_texture",
    "shade_pixel",
    "is_colour_channel",
    "pack_alpha_channels",
    "pack_pixel",
    "is_active",
    "change_dot",
    "link_line",
    "lever_step",
    "expansion_run",
    "long_expansion_run",
    "far_crossing",
    "edge_in_scan_coordinates",
    "crossed_lines",
    "edge_crossing",
    "levers",
    "occlusion_plane",
    "expansion_along_line",
    "contraction_along_line",
    "edge_axis_gradient",
    "kato_face_gradient",
    "interior_face_gradient",
    "finite_or_zero",
    "clear_face_gradients",
    "face_gradient",
)


def unsigned(index):
    """An array index known to be >= 0, unchanged.

    Backends may replace it by a cast to an unsigned integer: numba then skips the
    negative-index wraparound, whose per-access select keeps loops from vectorising (a
    measured 10x on the expansion scan).
    """
    return index


def _modules() -> list[types.ModuleType]:
    # Imported here: the math modules import ``unsigned`` from this one.
    return [importlib.import_module(f"{__package__}.{name}") for name in MATH_MODULES]


def source_digest() -> str:
    """A hash of the shared math's source files, for caches keyed on other files."""
    digest = hashlib.sha256()
    for path in [Path(__file__)] + [Path(module.__file__) for module in _modules()]:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def compile_functions(jit, decorators=None, replacements=None) -> types.SimpleNamespace:
    """Compile the shared math's functions with a numba decorator.

    Each function is re-created over one private globals dict in which the names of the
    other device functions refer to their compiled versions, so that calls between them
    resolve inside compiled code (numba cannot call a plain Python function from nopython
    code); the dict also holds ``math`` and the constants of :mod:`.layout`.

    Args:
        jit: a decorator such as ``numba.njit(inline="always")`` or ``cuda.jit(device=True)``.
        decorators: optional per-name decorators used instead of ``jit`` (for instance
            fast-math flags on :func:`~.edge_gradient.long_expansion_run` alone).
        replacements: optional per-name compiled functions used as they are (for instance an
            :func:`unsigned` that casts to an unsigned integer type).

    Returns:
        A namespace with one compiled function per name in ``DEVICE_FUNCTIONS``.
    """
    from . import layout

    decorators = decorators or {}
    replacements = replacements or {}
    originals = {"unsigned": unsigned}
    for module in _modules():
        for name, value in vars(module).items():
            # Only what the module defines, not the names it imports.
            if name in DEVICE_FUNCTIONS and getattr(value, "__module__", "") == module.__name__:
                originals[name] = value
    missing = set(DEVICE_FUNCTIONS) - set(originals)
    if missing:
        raise RuntimeError(f"device functions not found: {sorted(missing)}")
    namespace = {"math": math}
    namespace.update({name: value for name, value in vars(layout).items() if name.isupper()})
    for name in DEVICE_FUNCTIONS:
        if name in replacements:
            namespace[name] = replacements[name]
            continue
        original = originals[name]
        clone = types.FunctionType(
            original.__code__, namespace, name, original.__defaults__, original.__closure__
        )
        clone.__qualname__ = original.__qualname__
        clone.__module__ = original.__module__
        clone.__doc__ = original.__doc__
        namespace[name] = decorators.get(name, jit)(clone)
    return types.SimpleNamespace(**{name: namespace[name] for name in DEVICE_FUNCTIONS})

"""meshstyle: edit 3D meshes with 2D supervision.

Style transfer and DeepDream on polygon meshes through a differentiable rasterizer whose
backward pass is the approximate gradient of "Neural 3D Mesh Renderer" (Kato et al. 2018).

This module stays import-light on purpose: ``meshstyle --version`` must not import torch
or numba.
"""

from meshstyle.runtime import prefer_openmp_threads as _prefer_openmp_threads

__version__ = "0.1.0"

_prefer_openmp_threads()

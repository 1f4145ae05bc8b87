"""Small inputs for command-line tests: tiny meshes, style images and settings."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

#: Settings small enough that a whole stylize job runs in seconds.
TINY_PRESET = """
iterations = 2
image_size = 32
views = 1
texture_size = 2
preview_size = 32
turntable_frames = 36
"""


def tiny_preset(folder: Path) -> Path:
    path = folder / "tiny.toml"
    path.write_text(TINY_PRESET)
    return path


def write_sphere(path: Path, subdivisions: int = 1) -> Path:
    trimesh.creation.icosphere(subdivisions=subdivisions).export(path)
    return path


def sphere_folder(folder: Path, count: int, subdivisions: int = 0) -> Path:
    """A new folder of ``count`` spheres named ``s0.obj``, ``s1.obj``, ..."""
    folder.mkdir()
    for i in range(count):
        write_sphere(folder / f"s{i}.obj", subdivisions=subdivisions)
    return folder


def write_style(path: Path, size: int = 48, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def digest(folder: Path) -> dict[str, str]:
    """File name -> sha256 for every file below ``folder``."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }

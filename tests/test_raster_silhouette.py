"""Silhouettes of real meshes against an independent pixel-centre coverage test.

The meshes are normalised (bounding-box centre at 0, longest side spanning [-1, 1]) and
projected here, with a small perspective camera written for the test: distance 2.732,
elevation 30, azimuth 45, vertical half-angle 30 degrees. The expected silhouette marks
every pixel centre inside (or on) any projected triangle, from a vectorised point-in-triangle
test with its own formula (signs of cross products in NDC).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from meshstyle.raster import rasterize_silhouettes
from tests.testdata import shared_meshes

trimesh = pytest.importorskip("trimesh")


def project(path, height: int, width: int, azimuth: float = 45.0) -> np.ndarray:
    """Face vertices (1, F, 3, 3) float32: NDC x, NDC y, camera depth."""
    mesh = trimesh.load(path, force="mesh", process=False)
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    low, high = vertices.min(0), vertices.max(0)
    vertices = (vertices - (low + high) / 2) * (2.0 / (high - low).max())
    e, a = math.radians(30.0), math.radians(azimuth)
    eye = 2.732 * np.array([math.cos(e) * math.sin(a), math.sin(e), math.cos(e) * math.cos(a)])
    forward = -eye / np.linalg.norm(eye)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    camera = (vertices - eye) @ np.stack([right, up, forward]).T
    focal = 1.0 / math.tan(math.radians(30.0))
    z = camera[:, 2]
    projected = np.stack(
        [camera[:, 0] * focal / z * height / width, camera[:, 1] * focal / z, z], -1
    )
    return projected[np.asarray(mesh.faces)][None].astype(np.float32)


def coverage(face_vertices: np.ndarray, height: int, width: int):
    """Pixel-centre coverage and, per pixel, the distance (NDC) to the nearest edge."""
    xs = (2.0 * np.arange(width) + 1 - width) / width
    ys = (height - 1 - 2.0 * np.arange(height)) / height
    covered = np.zeros((height, width), dtype=bool)
    nearest = np.full((height, width), np.inf)
    for face in face_vertices[0].astype(np.float64):
        p = face[:, :2]
        cols = np.nonzero((xs >= p[:, 0].min() - 0.01) & (xs <= p[:, 0].max() + 0.01))[0]
        rows = np.nonzero((ys >= p[:, 1].min() - 0.01) & (ys <= p[:, 1].max() + 0.01))[0]
        if cols.size == 0 or rows.size == 0:
            continue
        x, y = np.meshgrid(xs[cols], ys[rows])
        signs = []
        for i in range(3):
            a, b = p[i], p[(i + 1) % 3]
            edge = b - a
            cross = edge[0] * (y - a[1]) - edge[1] * (x - a[0])
            signs.append(cross)
            length = math.hypot(*edge)
            if length > 0:
                t = np.clip(((x - a[0]) * edge[0] + (y - a[1]) * edge[1]) / length**2, 0, 1)
                distance = np.hypot(x - a[0] - t * edge[0], y - a[1] - t * edge[1])
                block = nearest[np.ix_(rows, cols)]
                nearest[np.ix_(rows, cols)] = np.minimum(block, distance)
        signs = np.stack(signs)
        inside = np.all(signs >= 0, 0) | np.all(signs <= 0, 0)
        if np.all(signs == 0):
            inside[:] = False  # degenerate face
        covered[np.ix_(rows, cols)] |= inside
    return covered, nearest


@pytest.mark.parametrize("name", ["teapot", "knot", *shared_meshes("teapot", "bunny")])
@pytest.mark.parametrize("size", [(128, 128), (96, 160)])
def test_silhouette_equals_pixel_centre_coverage(mesh_path, name, size):
    height, width = size
    face_vertices = project(mesh_path(name), height, width)
    assert face_vertices[..., 2].min() > 0.5  # every corner well in front of the camera
    alpha = rasterize_silhouettes(
        torch.from_numpy(face_vertices), image_size=size, anti_aliasing=False
    )[0].numpy()
    expected, nearest = coverage(face_vertices, height, width)
    assert 0.05 < expected.mean() < 0.8
    differ = (alpha > 0.5) != expected
    assert differ.sum() <= 5
    assert np.all(nearest[differ] < 1e-4), nearest[differ]


def test_anti_aliased_silhouette_is_the_average_of_the_double_resolution_one(mesh_path):
    face_vertices = torch.from_numpy(project(mesh_path("teapot"), 64, 64))
    fine = rasterize_silhouettes(face_vertices, image_size=128, anti_aliasing=False)
    coarse = rasterize_silhouettes(face_vertices, image_size=64, anti_aliasing=True)
    expected = torch.nn.functional.avg_pool2d(fine[:, None], 2)[:, 0]
    assert torch.equal(coarse, expected)
    assert ((coarse > 0) & (coarse < 1)).any()

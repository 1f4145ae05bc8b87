"""Hand-derived gradients of single triangles: Kato's rule worked out in the test itself.

Every expected value below comes from the rule in docs/architecture.md, section 4, written
out here in pixel units: the edge from ``p`` to ``q`` crosses scan line ``line`` at
``cross``; moving vertex ``p`` alone by ``s`` moves that crossing by
``s * (q - line) / (q - p)`` (measured along the scan line's axis), so bringing the crossing
to pixel centre ``target`` takes ``s = (target - cross) * (q - p) / (q - line)`` pixels. In
NDC that is ``2 s / W`` along x and ``-2 s / H`` along y (rows grow downwards); eps is added
away from zero and the vertex receives ``dL/dI . dI / s``.

Images are 8 x 8 without anti-aliasing, so pixel centres sit at integer pixel coordinates
``u = col`` and ``v = row``, ``x = (2u + 1 - 8) / 8`` and ``y = (8 - 1 - 2v) / 8``.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from meshstyle.raster import rasterize, rasterize_silhouettes

SIZE = 8
EPS = 1e-3

# Triangle in pixel coordinates (u, v): a vertical right edge A-B at u = 3.5 and a vertex C
# to the left. On row 4 it covers columns 2 and 3 (edge C-B crosses row 4 at u = 1.24).
A = (3.5, 1.2)
B = (3.5, 6.7)
C = (0.4, 3.0)


def ndc(u: float, v: float, z: float = 2.0) -> list[float]:
    return [(2 * u + 1 - SIZE) / SIZE, (SIZE - 1 - 2 * v) / SIZE, z]


def pixel(vertex: torch.Tensor) -> tuple[float, float]:
    """Pixel coordinates of an NDC vertex as stored in float32 (what the kernels see)."""
    x, y = float(vertex[0]), float(vertex[1])
    return (x * SIZE + SIZE - 1) / 2, (SIZE - 1 - y * SIZE) / 2


def faces(*corners_per_face, z=2.0) -> torch.Tensor:
    rows = [
        [ndc(*corner, z=z[i] if isinstance(z, tuple) else z) for corner in face]
        for i, face in enumerate(corners_per_face)
    ]
    return torch.tensor([rows], dtype=torch.float32)


def step(p: tuple[float, float], q: tuple[float, float], line: float, target: float, axis: int):
    """NDC displacement of vertex p alone (q fixed) bringing the edge's crossing of scan
    line ``line`` to pixel centre ``target``. axis 0: rows are scanned, x moves; axis 1:
    columns are scanned, y moves."""
    across, along = (1, 0) if axis == 0 else (0, 1)
    cross = p[along] + (q[along] - p[along]) * (line - p[across]) / (q[across] - p[across])
    pixels = (target - cross) * (q[across] - p[across]) / (q[across] - line)
    value = 2 * pixels / SIZE if axis == 0 else -2 * pixels / SIZE
    return value + EPS if value > 0 else value - EPS


def silhouette_gradient(face_vertices: torch.Tensor, weights: torch.Tensor, **kw) -> torch.Tensor:
    """d(sum(weights * alpha)) / d(corners) of a single face, 8 x 8 image without AA."""
    leaf = face_vertices.clone().requires_grad_()
    alpha = rasterize_silhouettes(leaf, image_size=SIZE, anti_aliasing=False, **kw)
    (alpha * weights).sum().backward()
    return leaf.grad[0, 0]


def one_pixel(row: int, col: int, value: float) -> torch.Tensor:
    weights = torch.zeros(1, SIZE, SIZE)
    weights[0, row, col] = value
    return weights


ORDERS = list(itertools.permutations(range(3)))  # both windings, every starting vertex


def test_triangle_covers_the_expected_pixels():
    alpha = rasterize_silhouettes(faces((A, B, C)), image_size=SIZE, anti_aliasing=False)
    assert alpha[0, 4].tolist() == [0, 0, 1, 1, 0, 0, 0, 0]
    assert alpha[0, :, 2].tolist() == [0, 0, 0, 1, 1, 0, 0, 0]


@pytest.mark.parametrize("order", ORDERS)
def test_expansion_moves_the_near_edge_right_by_the_lever_rule(order):
    corners = [(A, B, C)[i] for i in order]
    fv = faces(corners)
    a, b = (pixel(fv[0, 0, order.index(k)]) for k in (0, 1))
    # Pixel (row 4, col 6) is empty; the loss wants it covered: dL/dalpha = -1, dI = 1 - 0.
    grad = silhouette_gradient(fv, one_pixel(4, 6, -1.0))
    expected = torch.zeros(3, 3)
    expected[order.index(0), 0] = -1.0 / step(a, b, 4.0, 6.0, axis=0)
    expected[order.index(1), 0] = -1.0 / step(b, a, 4.0, 6.0, axis=0)
    torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-6)
    # Both endpoints of the right edge move right (descent increases x), C does not move.
    assert grad[order.index(0), 0] < 0 and grad[order.index(1), 0] < 0


@pytest.mark.parametrize("order", ORDERS)
def test_expansion_moves_the_near_edge_down_along_y(order):
    # Horizontal bottom edge P-Q at v = 5.5 (row coordinate) and apex R above it.
    P, Q, R = (1.2, 5.5), (6.3, 5.5), (3.1, 0.7)
    corners = [(P, Q, R)[i] for i in order]
    fv = faces(corners)
    p, q = (pixel(fv[0, 0, order.index(k)]) for k in (0, 1))
    grad = silhouette_gradient(fv, one_pixel(7, 3, -1.0))
    expected = torch.zeros(3, 3)
    expected[order.index(0), 1] = -1.0 / step(p, q, 3.0, 7.0, axis=1)
    expected[order.index(1), 1] = -1.0 / step(q, p, 3.0, 7.0, axis=1)
    torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-6)
    # Moving down in the image is moving to lower NDC y: descent lowers y.
    assert grad[order.index(0), 1] > 0 and grad[order.index(1), 1] > 0


@pytest.mark.parametrize("order", ORDERS)
def test_contraction_pushes_every_edge_across_an_unwanted_pixel(order):
    corners = [(A, B, C)[i] for i in order]
    fv = faces(corners)
    a, b, c = (pixel(fv[0, 0, order.index(k)]) for k in range(3))
    # Pixel (row 4, col 2) is covered; the loss wants it empty: dL/dalpha = +1 and the edge
    # passing it reveals the empty pixel just outside, dI = 0 - 1, so dL/dI . dI = -1.
    grad = silhouette_gradient(fv, one_pixel(4, 2, 1.0))
    expected = torch.zeros(3, 3)
    ia, ib, ic = (order.index(k) for k in range(3))
    # Row 4 (x moves): edge C-B from the left, edge A-B from the right.
    expected[ib, 0] += -1.0 / step(b, c, 4.0, 2.0, axis=0)
    expected[ic, 0] += -1.0 / step(c, b, 4.0, 2.0, axis=0)
    expected[ia, 0] += -1.0 / step(a, b, 4.0, 2.0, axis=0)
    expected[ib, 0] += -1.0 / step(b, a, 4.0, 2.0, axis=0)
    # Column 2 (y moves): edge C-A from above, edge B-C from below.
    expected[ic, 1] += -1.0 / step(c, a, 2.0, 4.0, axis=1)
    expected[ia, 1] += -1.0 / step(a, c, 2.0, 4.0, axis=1)
    expected[ib, 1] += -1.0 / step(b, c, 2.0, 4.0, axis=1)
    expected[ic, 1] += -1.0 / step(c, b, 2.0, 4.0, axis=1)
    torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-6)
    # Descent moves the right edge's A left and the left vertex C right: the face shrinks.
    assert grad[ia, 0] > 0 > grad[ic, 0]


@pytest.mark.parametrize(
    ("row", "col", "value"),
    [(4, 6, 1.0), (4, 2, -1.0), (0, 0, 1.0), (3, 2, -1.0)],
    ids=["empty-wants-empty", "covered-wants-covered", "corner", "covered-top"],
)
def test_a_loss_already_satisfied_gets_no_gradient(row, col, value):
    grad = silhouette_gradient(faces((A, B, C)), one_pixel(row, col, value))
    assert torch.equal(grad, torch.zeros(3, 3))


def textured_gradient(face_vertices, colours, weights, **kw):
    """d(sum(weights * rgb)) / d(face_vertices), constant colour per face, 8 x 8, no AA."""
    textures = torch.tensor(colours, dtype=torch.float32)[None, :, None, None, None, :]
    leaf = face_vertices.clone().requires_grad_()
    rgb = rasterize(leaf, textures, image_size=SIZE, anti_aliasing=False, **kw).rgb
    (rgb * weights).sum().backward()
    return leaf.grad[0], rgb.detach()


RED, BLUE, GREEN = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0)
BACK = ((-10.0, -10.0), (30.0, -10.0), (4.0, 40.0))  # covers the image; edges far outside


@pytest.mark.parametrize("order", ORDERS)
def test_contraction_reveals_the_colour_of_the_face_behind(order):
    corners = [(A, B, C)[i] for i in order]
    front_only = faces(corners)
    both = faces(corners, BACK, z=(2.0, 5.0))
    a, b, c = (pixel(both[0, 0, order.index(k)]) for k in range(3))
    ia, ib, ic = (order.index(k) for k in range(3))
    # Pixel (row 4, col 3) is red (front face); the loss wants more blue there.
    weights = torch.zeros(1, 3, SIZE, SIZE)
    weights[0, 2, 4, 3] = -1.0
    grad, rgb = textured_gradient(both, [RED, BLUE], weights)
    assert rgb[0, :, 4, 3].tolist() == list(RED) and rgb[0, :, 4, 4].tolist() == list(BLUE)
    # Every front edge passing the pixel reveals the blue face behind it:
    # dL/dI . dI = -1 * (1 - 0) = -1. Row 4: edges A-B and B-C; column 3: C-A and B-C.
    expected = torch.zeros(3, 3)
    expected[ia, 0] += -1.0 / step(a, b, 4.0, 3.0, axis=0)
    expected[ib, 0] += -1.0 / step(b, a, 4.0, 3.0, axis=0)
    expected[ib, 0] += -1.0 / step(b, c, 4.0, 3.0, axis=0)
    expected[ic, 0] += -1.0 / step(c, b, 4.0, 3.0, axis=0)
    expected[ic, 1] += -1.0 / step(c, a, 3.0, 4.0, axis=1)
    expected[ia, 1] += -1.0 / step(a, c, 3.0, 4.0, axis=1)
    expected[ib, 1] += -1.0 / step(b, c, 3.0, 4.0, axis=1)
    expected[ic, 1] += -1.0 / step(c, b, 3.0, 4.0, axis=1)
    torch.testing.assert_close(grad[0], expected, rtol=1e-5, atol=1e-6)
    # The back face's edges are all off-screen: it gets nothing.
    assert torch.equal(grad[1], torch.zeros(3, 3))
    # Over the black background there is nothing blue to reveal: no gradient at all.
    grad_alone, _ = textured_gradient(front_only, [RED], weights)
    assert torch.equal(grad_alone[0], torch.zeros(3, 3))
    # Wanting more red where it is already red: nothing either.
    weights_red = torch.zeros(1, 3, SIZE, SIZE)
    weights_red[0, 0, 4, 3] = -1.0
    grad_red, _ = textured_gradient(both, [RED, BLUE], weights_red)
    assert torch.equal(grad_red[0], torch.zeros(3, 3))


# An occluder nearer than the triangle covers columns 5 and 6 of row 4.
OCCLUDER = ((4.4, 2.5), (7.2, 2.5), (5.8, 6.5))


@pytest.mark.parametrize("order", ORDERS)
def test_occlusion_aware_ignores_pixels_behind_a_nearer_surface(order):
    corners = [(A, B, C)[i] for i in order]
    fv = faces(corners, OCCLUDER, z=(3.0, 1.0))
    a, b = (pixel(fv[0, 0, order.index(k)]) for k in (0, 1))
    # Pixel (row 4, col 5) shows the green occluder; the loss wants it red, the colour the
    # red triangle would give it if its right edge expanded there.
    weights = torch.zeros(1, 3, SIZE, SIZE)
    weights[0, 0, 4, 5] = -1.0
    grad, rgb = textured_gradient(fv, [RED, GREEN], weights)
    assert rgb[0, :, 4, 5].tolist() == list(GREEN)
    expected = torch.zeros(3, 3)
    expected[order.index(0), 0] = -1.0 / step(a, b, 4.0, 5.0, axis=0)
    expected[order.index(1), 0] = -1.0 / step(b, a, 4.0, 5.0, axis=0)
    torch.testing.assert_close(grad[0], expected, rtol=1e-5, atol=1e-6)
    # The triangle lies behind the occluder there: occlusion-aware leaves it alone...
    grad_aware, _ = textured_gradient(fv, [RED, GREEN], weights, occlusion_aware=True)
    assert torch.equal(grad_aware, torch.zeros(2, 3, 3))
    # ...but still pulls it towards an empty pixel that nothing hides (row 4, col 7).
    weights_far = torch.zeros(1, 3, SIZE, SIZE)
    weights_far[0, 0, 4, 7] = -1.0
    grad_far, _ = textured_gradient(fv, [RED, GREEN], weights_far, occlusion_aware=True)
    expected_far = torch.zeros(3, 3)
    expected_far[order.index(0), 0] = -1.0 / step(a, b, 4.0, 7.0, axis=0)
    expected_far[order.index(1), 0] = -1.0 / step(b, a, 4.0, 7.0, axis=0)
    torch.testing.assert_close(grad_far[0], expected_far, rtol=1e-5, atol=1e-6)


def test_eps_bounds_the_gradient_of_a_pixel_at_the_edge():
    # Row 4 crosses edge A-B half a pixel from the empty pixel (4, 4): the step is small and
    # eps, added to it, visibly bounds the gradient.
    fv = faces((A, B, C))
    a, b = pixel(fv[0, 0, 0]), pixel(fv[0, 0, 1])
    for eps in (1e-3, 0.1):
        leaf = fv.clone().requires_grad_()
        alpha = rasterize_silhouettes(leaf, image_size=SIZE, anti_aliasing=False, eps=eps)
        (alpha * one_pixel(4, 4, -1.0)).sum().backward()
        pixels = (4.0 - a[0]) * (b[1] - a[1]) / (b[1] - 4.0)
        expected = -1.0 / (2 * pixels / SIZE + eps)
        assert leaf.grad[0, 0, 0, 0].item() == pytest.approx(expected, rel=1e-5)

"""Camera conventions of docs/architecture.md, section 3, checked without the rasterizer."""

import math

import pytest
import torch

from meshstyle.camera import Cameras, eye_from_angles, look_at, orthographic, perspective


@pytest.mark.parametrize(
    ("elevation", "azimuth", "expected"),
    [
        (0.0, 0.0, (0.0, 0.0, 2.0)),  # azimuth 0 sees the +z side
        (0.0, 90.0, (2.0, 0.0, 0.0)),  # azimuth 90 sees the +x side
        (90.0, 0.0, (0.0, 2.0, 0.0)),  # positive elevation is above
        (30.0, 180.0, (0.0, 1.0, -2.0 * math.cos(math.radians(30)))),
    ],
)
def test_eye_from_angles(elevation, azimuth, expected):
    eye = eye_from_angles(2.0, elevation, azimuth)
    assert eye.shape == (1, 3)
    torch.testing.assert_close(eye[0], torch.tensor(expected), atol=1e-5, rtol=0)


def test_look_at_axes_are_not_mirrored():
    eye = eye_from_angles(3.0, 0.0, 0.0)
    points = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    cam = look_at(points, eye)[0]
    assert cam[0, 0] > 0.9  # world +x is to the right when looking from +z
    assert cam[1, 1] > 0.9  # world +y is up
    assert cam[2, 2] == pytest.approx(3.0)  # depth is the distance in front of the eye


def test_look_at_from_the_side_and_from_above():
    # From +x (azimuth 90) the right of the image is world -z.
    cam = look_at(torch.tensor([[0.0, 0.0, -1.0]]), eye_from_angles(3.0, 0.0, 90.0))[0, 0]
    assert cam[0] > 0.9
    # Straight above: up is parallel to the view direction, and must not produce NaN.
    cam = look_at(torch.tensor([[0.5, 0.0, 0.0]]), eye_from_angles(3.0, 90.0, 0.0))[0, 0]
    assert torch.isfinite(cam).all()
    assert cam[2] == pytest.approx(3.0)


def test_perspective_fills_the_frame_at_default_distance():
    # A mesh normalised to [-1, 1] at distance 2.732 with a 30-degree half angle: the point
    # (0, 1, 0) at depth 1.732 (the front of the box) projects to y = 1.
    projected = perspective(torch.tensor([[[0.0, 1.0, math.sqrt(3.0)]]]), 30.0)
    assert projected[0, 0, 1].item() == pytest.approx(1.0, abs=1e-5)


def test_perspective_aspect_divides_x_only():
    point = torch.tensor([[[0.5, 0.5, 2.0]]])
    square = perspective(point, 30.0, aspect=1.0)
    wide = perspective(point, 30.0, aspect=2.0)
    assert wide[0, 0, 0] == pytest.approx(square[0, 0, 0].item() / 2)
    assert wide[0, 0, 1] == pytest.approx(square[0, 0, 1].item())


def test_perspective_is_finite_at_and_behind_the_eye():
    points = torch.tensor([[[1.0, 1.0, 0.0], [1.0, -1.0, -2.0], [0.0, 0.0, 1e-30]]])
    out = perspective(points)
    assert torch.isfinite(out).all()
    assert out[0, 1, 2] < 0  # behind stays behind, so the rasterizer can skip it


def test_orthographic_and_bad_arguments():
    out = orthographic(torch.tensor([[[0.5, -0.5, 3.0]]]), scale=0.5, aspect=2.0)
    torch.testing.assert_close(out[0, 0], torch.tensor([0.5, -1.0, 3.0]))
    with pytest.raises(ValueError, match="viewing_angle"):
        perspective(torch.zeros(1, 1, 3), 95.0)
    with pytest.raises(ValueError, match="scale"):
        orthographic(torch.zeros(1, 1, 3), scale=0.0)


def test_cameras_batch_transform():
    cams = Cameras.from_angles(2.732, torch.tensor([0.0, 30.0]), torch.tensor([0.0, 90.0]))
    assert cams.batch_size == 2
    out = cams.transform(torch.zeros(5, 3))
    assert out.shape == (2, 5, 3)
    torch.testing.assert_close(out[..., 2], torch.full((2, 5), 2.732))
    torch.testing.assert_close(out[..., :2], torch.zeros(2, 5, 2), atol=1e-6, rtol=0)

"""Random views for one optimisation step: cameras, lights and backgrounds."""

from __future__ import annotations

import math

import numpy as np
import torch

from meshstyle.camera import Cameras
from meshstyle.settings import EditSettings
from meshstyle.shading import Lights


def sample_cameras(settings: EditSettings, rng: np.random.Generator) -> Cameras:
    """B cameras at noisy distances with elevation and azimuth drawn uniformly.

    Args:
        settings: supplies views (B), distance and its noise, and the angle ranges.
        rng: the run's random generator (so a seed repeats a run).

    Returns:
        B perspective cameras looking at the origin.
    """
    b = settings.views
    distance = settings.distance + settings.distance_noise * rng.standard_normal(b)
    # A noisy distance must never put the eye inside the normalised mesh's bounding sphere.
    distance = np.maximum(distance, 0.5 * settings.distance)
    elevation = rng.uniform(settings.elevation_min, settings.elevation_max, b)
    azimuth = rng.uniform(settings.azimuth_min, settings.azimuth_max, b)
    return Cameras.from_angles(
        torch.as_tensor(distance, dtype=torch.float32),
        torch.as_tensor(elevation, dtype=torch.float32),
        torch.as_tensor(azimuth, dtype=torch.float32),
        viewing_angle=settings.viewing_angle,
    )


def tilted_lights(cameras: Cameras, settings: EditSettings, rng: np.random.Generator) -> Lights:
    """Lights tilted ``light_tilt`` degrees away from each view direction, at a random azimuth.

    The light comes from roughly behind the viewer, so the visible side is lit, with a
    random tilt that shows the shape from every side over the run.
    """
    b = cameras.batch_size
    to_eye = -cameras.forward  # (B, 3)
    helper = torch.where(
        to_eye[:, 1:2].abs() < 0.9, torch.tensor([0.0, 1.0, 0.0]), torch.tensor([1.0, 0.0, 0.0])
    )
    u = torch.linalg.cross(to_eye, helper, dim=-1)
    u = u / u.norm(dim=-1, keepdim=True)
    w = torch.linalg.cross(to_eye, u, dim=-1)
    phi = torch.as_tensor(rng.uniform(0.0, 2.0 * math.pi, b), dtype=torch.float32)[:, None]
    tilt = math.radians(settings.light_tilt)
    direction = math.cos(tilt) * to_eye + math.sin(tilt) * (torch.cos(phi) * u + torch.sin(phi) * w)
    return Lights(
        ambient=torch.full((b,), settings.ambient),
        directional=torch.full((b,), settings.directional),
        direction=direction / direction.norm(dim=-1, keepdim=True),
    )


def backgrounds(
    settings: EditSettings, rng: np.random.Generator, style_mean: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, 3) background colours for one step, by the settings' background rule."""
    b = settings.views
    rule = settings.background
    if rule == "style-mean":
        if style_mean is None:
            raise ValueError("background 'style-mean' needs a style image")
        return style_mean.reshape(1, 3).expand(b, 3).clone()
    if rule == "random-grey":
        grey = torch.as_tensor(rng.uniform(0.0, 1.0, b), dtype=torch.float32)
        return grey[:, None].expand(b, 3).clone()
    value = 1.0 if rule == "white" else 0.0
    return torch.full((b, 3), value)

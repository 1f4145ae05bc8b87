"""The edit loop shared by stylize and deepdream.

Each step renders the mesh from a batch of random cameras, asks the objective for a loss,
and takes one Adam step on the shape's and the texture's parameters (each with its own
rate). What those parameters are is a setting:

- texture: a smooth UV texture image (:class:`meshstyle.uvtexture.PyramidTexture`) sampled
  into the rasterizer's cubes, or the paper's independent per-face cube logits;
- shape: Laplacian-preconditioned offsets (:class:`meshstyle.smoothshape.SmoothOffsets`) or
  the paper's raw per-vertex offsets.

The original Adam leaves elements whose gradient is exactly zero untouched, so faces no
camera saw keep their colour; :class:`meshstyle.optim.ZeroSkipAdam` does the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from meshstyle.renderer import RenderSettings, render
from meshstyle.settings import EditSettings
from meshstyle.views import sample_cameras


@dataclass(frozen=True)
class StepReport:
    """Passed to the progress callback after every step.

    Attributes:
        step: 1-based step number.
        total_steps: the run's iterations.
        parts: the step's loss parts (``loss`` is the total).
    """

    step: int
    total_steps: int
    parts: dict[str, float]


@dataclass(frozen=True)
class EditResult:
    """An edited mesh in the normalised frame.

    Attributes:
        vertices: (V, 3) edited vertices.
        colours: (F, T, T, T, 3) edited face colours in [0, 1].
        history: one dict of loss parts per step (with ``step`` and ``seconds``).
        seconds: wall time of the loop.
        timing: seconds spent in ``render`` (forward and backward), ``network`` (features
            and loss, forward and backward) and ``other`` (sampling, optimiser).
        skipped_steps: steps whose loss was not finite and were not applied.
        texture: ``(image, face_uvs)`` of a UV-texture run: (R, R, 3) uint8 texture, row 0 at
            the top, and (F, 3, 2) float32 UVs; None for per-face cube runs.
    """

    vertices: torch.Tensor
    colours: torch.Tensor
    history: list[dict[str, float]]
    seconds: float
    timing: dict[str, float] = field(default_factory=dict)
    skipped_steps: int = 0
    texture: tuple[np.ndarray, np.ndarray] | None = None


class _BackwardClock:
    """Times the backward pass at two boundaries using tensor hooks.

    The hook on the images fires when the network's backward reaches them; the hooks on the
    renderer's inputs fire when the renderer's backward is done. Their difference is the
    renderer's share of the backward, without touching the renderer.
    """

    def __init__(self):
        self.images_at: float | None = None
        self.inputs_at: float | None = None

    def watch_images(self, images: torch.Tensor) -> None:
        images.register_hook(self._mark_images)

    def watch_inputs(self, *tensors: torch.Tensor) -> None:
        for t in tensors:
            if t.requires_grad:
                t.register_hook(self._mark_inputs)

    def _mark_images(self, grad):
        self.images_at = time.perf_counter()

    def _mark_inputs(self, grad):
        self.inputs_at = time.perf_counter()


def edit_mesh(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    colours: torch.Tensor,
    objective,
    settings: EditSettings,
    *,
    backend: str = "auto",
    progress: Callable[[StepReport], None] | None = None,
    on_phase: Callable[[str], None] | None = None,
    face_uvs: np.ndarray | None = None,
    image: np.ndarray | None = None,
) -> EditResult:
    """Optimise a normalised mesh's vertices and face colours against an objective.

    Args:
        vertices: (V, 3) normalised vertices (on the target device).
        faces: (F, 3) int64 faces.
        colours: (F, T, T, T, 3) initial colours in [0, 1].
        objective: a :class:`meshstyle.objectives.StyleObjective` or ``DreamObjective``.
        settings: the run's settings (iterations, views, rates, seed, ...).
        backend: rasterizer backend.
        progress: called after every step.
        on_phase: called with what the run is busy with before its first step when that
            can take long (the automatic UV unwrap: minutes for a mesh of 300 000 faces),
            and with "" when it is done.
        face_uvs: (F, 3, 2) the mesh's own texture coordinates, used by the UV texture mode
            (else the mesh is unwrapped automatically).
        image: (H, W, 3) uint8 texture that ``face_uvs`` index, the UV mode's start.

    Returns:
        The edited mesh, its loss history and timing.
    """
    from meshstyle.optim import ZeroSkipAdam

    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)
    device = vertices.device
    base = vertices.detach().clone()
    shape = _shape_parameters(base, faces, settings)
    texture = _texture_parameters(
        base, faces, colours, objective, settings, face_uvs, image, on_phase or (lambda _: None)
    )
    groups = []
    if settings.optimise_vertices:
        groups.append({"params": shape.parameters(), "lr": settings.lr * settings.vertex_lr_scale})
    if settings.optimise_textures:
        groups.append(
            {"params": texture.parameters(), "lr": settings.lr * settings.texture_lr_scale}
        )
    optimiser = ZeroSkipAdam(groups, lr=settings.lr)
    seams = None
    if settings.seam_weight > 0 and settings.texture_mode == "uv":
        from meshstyle.uvtexture import SeamPoints

        seams = SeamPoints(faces.cpu().numpy(), texture.face_uvs, settings.texture_size)
    render_settings = RenderSettings(
        image_size=settings.image_size,
        anti_aliasing=settings.anti_aliasing,
        backend=backend,
        occlusion_aware=settings.occlusion_aware,
    )

    history: list[dict[str, float]] = []
    timing = {"render": 0.0, "network": 0.0, "other": 0.0}
    skipped = 0
    start = time.perf_counter()
    for step in range(1, settings.iterations + 1):
        t0 = time.perf_counter()
        cameras = sample_cameras(settings, rng).to(device)
        lights = objective.lights(cameras, rng).to(device)
        background = objective.backgrounds(rng).to(device)
        current = base + shape.offsets()
        textures = texture.cubes()
        t1 = time.perf_counter()
        clock = _BackwardClock()
        clock.watch_inputs(current, textures)
        out = render(current, faces, textures, cameras, lights, render_settings, background)
        t2 = time.perf_counter()
        if out.images.requires_grad:
            clock.watch_images(out.images)
        features = objective.features(out.images)
        result = objective.loss(features, out.images, out.silhouettes, current, base)
        if seams is not None:
            result = _with_seam_term(result, seams.gap(textures), settings.seam_weight)
        t3 = time.perf_counter()
        optimiser.zero_grad(set_to_none=True)
        if torch.isfinite(result.total):
            result.total.backward()
            t4 = time.perf_counter()
            optimiser.step()
        else:
            # A non-finite loss would poison Adam's moments; drop the step instead.
            skipped += 1
            t4 = time.perf_counter()
        t5 = time.perf_counter()
        images_at = clock.images_at or t3
        inputs_at = clock.inputs_at or images_at
        timing["render"] += (t2 - t1) + max(0.0, inputs_at - images_at)
        timing["network"] += (t3 - t2) + max(0.0, images_at - t3)
        timing["other"] += (t1 - t0) + max(0.0, t4 - inputs_at) + (t5 - t4)
        record = {"step": step, **result.parts, "seconds": time.perf_counter() - start}
        history.append(record)
        if progress is not None:
            progress(StepReport(step, settings.iterations, result.parts))
    with torch.no_grad():
        final_vertices = torch.nan_to_num(base + shape.offsets()).detach()
        final_colours = texture.cubes().detach()
    return EditResult(
        vertices=final_vertices,
        colours=final_colours,
        history=history,
        seconds=time.perf_counter() - start,
        timing=timing,
        skipped_steps=skipped,
        texture=texture.export(),
    )


def _with_seam_term(result, gap: torch.Tensor, weight: float):
    """``result`` plus ``weight · |loss| · gap``: scaled by the loss itself (not a gradient
    path) so that one weight holds for objectives whose values differ by orders of
    magnitude (a style loss of 1e11, an activation of 40)."""
    from meshstyle.objectives import LossParts

    seam = weight * result.total.detach().abs() * gap
    total = result.total + seam
    parts = {**result.parts, "loss": float(total.detach()), "seam": float(seam.detach())}
    return LossParts(total, parts)


class _RawOffsets:
    """The paper's shape parameters: one free offset per vertex."""

    def __init__(self, base: torch.Tensor, trainable: bool):
        self.delta = torch.zeros_like(base, requires_grad=trainable)

    def parameters(self) -> list[torch.Tensor]:
        return [self.delta]

    def offsets(self) -> torch.Tensor:
        return self.delta


class _CubeParameters:
    """The paper's texture parameters: independent per-face cubes (logits, or colours in the
    decorrelated space)."""

    def __init__(self, colours: torch.Tensor, space: str, trainable: bool):
        from meshstyle.colourspace import from_colour

        self.space = space
        self.values = from_colour(colours.float(), space).detach().requires_grad_(trainable)

    def parameters(self) -> list[torch.Tensor]:
        return [self.values]

    def cubes(self) -> torch.Tensor:
        from meshstyle.colourspace import to_colour

        return to_colour(self.values, self.space)

    def export(self) -> None:
        return None


class _SizeKept:
    """Offsets without their mean and uniform-scale part (``keep_size``).

    Left free, a style loss shrinks the object: a uniform shrink of 6 to 8% made most of the
    shape change in our runs (bench/quality.py), moving the outline everywhere without
    changing its form. The projection is linear, so its gradient is itself: the optimiser
    never sees the removed directions.
    """

    def __init__(self, shape, base: torch.Tensor):
        self.shape = shape
        self.centred = base - base.mean(dim=0)
        self.norm_sq = (self.centred * self.centred).sum().clamp_min(1e-12)

    def parameters(self) -> list[torch.Tensor]:
        return self.shape.parameters()

    def offsets(self) -> torch.Tensor:
        return remove_move_and_scale(self.shape.offsets(), self.centred, self.norm_sq)


def remove_move_and_scale(
    offsets: torch.Tensor, centred: torch.Tensor, norm_sq: torch.Tensor
) -> torch.Tensor:
    """(V, 3) offsets minus their mean and their projection on the centred vertices.

    Args:
        offsets: (V, 3).
        centred: (V, 3) the base vertices minus their mean.
        norm_sq: scalar ``Σ centred²``.
    """
    offsets = offsets - offsets.mean(dim=0)
    scale = (offsets * centred).sum() / norm_sq
    return offsets - scale * centred


def _shape_parameters(base: torch.Tensor, faces: torch.Tensor, settings: EditSettings):
    if settings.vertex_mode == "raw" or not settings.optimise_vertices:
        shape = _RawOffsets(base, settings.optimise_vertices)
    else:
        from meshstyle.smoothshape import SmoothOffsets

        shape = SmoothOffsets(
            faces.cpu().numpy(), len(base), settings.smoothness, device=base.device
        )
    return _SizeKept(shape, base) if settings.keep_size else shape


def _texture_parameters(
    base, faces, colours, objective, settings: EditSettings, face_uvs, image, on_phase
):
    """The run's texture parameters, starting from the colour ``initial_colour`` asks for."""
    start = colours.reshape(-1, 3).mean(dim=0)
    if settings.initial_colour == "grey":
        start, image = torch.full((3,), 0.5, device=colours.device), None
    elif settings.initial_colour == "style-mean" and hasattr(objective, "style_mean"):
        start, image = objective.style_mean.to(colours.device), None
    if settings.texture_mode == "cubes":
        if settings.initial_colour != "mesh" and image is None:
            colours = start.expand_as(colours).contiguous()
        return _CubeParameters(colours, settings.colour_space, settings.optimise_textures)
    from meshstyle.uvtexture import PyramidTexture, unwrap

    # The mesh's own UVs are kept when they stay inside the image (no tiling); else unwrap.
    if face_uvs is None or not (np.all(face_uvs >= 0.0) and np.all(face_uvs <= 1.0)):
        on_phase(f"unwrapping UVs of {len(faces)} faces")
        face_uvs = unwrap(base.cpu().numpy(), faces.cpu().numpy(), settings.texture_resolution)
        on_phase("")
        image = None
    initial = start if image is None else torch.as_tensor(image, dtype=torch.float32) / 255.0
    texture = PyramidTexture(
        face_uvs,
        settings.texture_resolution,
        settings.texture_size,
        initial,
        settings.colour_space,
        device=base.device,
    )
    if not settings.optimise_textures:
        for level in texture.levels:
            level.requires_grad_(False)
    return texture

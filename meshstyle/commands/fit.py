"""``meshstyle fit``: deform a template until its silhouettes match a mesh's.

This is the renderer's proof that its approximate gradient carries shape (the paper's
single-image reconstruction, without the network): the template sees nothing of the target
but its silhouettes from a ring of views. The fit is scored on views it never used.

The job holds its lock, writes into a hidden temporary folder inside OUT and renames it into
place as ``OUT/<mesh>__fit/`` once complete, with the completion marker (which records the
inputs' hashes and the settings) written last; see :mod:`meshstyle.jobfolder`:

- ``<mesh>_fit.obj`` / ``.mtl`` / ``.png`` and ``<mesh>_fit.glb``: the fitted template in the
  target's own coordinates;
- ``turntable.gif``: the fitted mesh from 36 views;
- ``target_fit.png``: four views of the target (top) and the fit (bottom);
- ``loss.csv``: every step's loss.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from meshstyle.camera import DEFAULT_DISTANCE, Cameras
from meshstyle.fit import FitSettings
from meshstyle.mesh import Mesh, Normalisation
from meshstyle.runtime import Device

#: Views the fit is scored on, none of them a training view: (elevations, azimuths).
HELD_OUT = ((0.0, 30.0, 60.0), tuple(22.5 + 45.0 * k for k in range(8)))
#: Elevations the training views alternate between.
TRAIN_ELEVATIONS = (15.0, 45.0)
#: Sub-divisions of the default template: an icosphere of 642 vertices.
SPHERE_SUBDIVISIONS = 3


@dataclass(frozen=True)
class FitOutcome:
    """A finished fit.

    Attributes:
        folder: the job's folder, ``OUT/<mesh>__fit``.
        iou_before: mean silhouette IoU of the template on the held-out views.
        iou_after: the same for the fitted mesh.
        seconds: wall time of the whole job.
    """

    folder: Path
    iou_before: float
    iou_after: float
    seconds: float


def training_cameras(views: int, distance: float = DEFAULT_DISTANCE) -> Cameras:
    """``views`` cameras evenly around the mesh, alternately low and high.

    Returns:
        Cameras with batch ``views``: azimuth ``360 k / views``, elevation 15 or 45 degrees.
    """
    azimuths = torch.arange(views, dtype=torch.float32) * (360.0 / views)
    elevations = torch.tensor(
        [TRAIN_ELEVATIONS[k % len(TRAIN_ELEVATIONS)] for k in range(views)], dtype=torch.float32
    )
    return Cameras.from_angles(distance, elevations, azimuths)


def held_out_cameras(distance: float = DEFAULT_DISTANCE) -> Cameras:
    """The 24 scoring views: three elevations times eight azimuths between training ones."""
    elevations, azimuths = np.meshgrid(*HELD_OUT, indexing="ij")
    return Cameras.from_angles(
        distance,
        torch.tensor(elevations.ravel(), dtype=torch.float32),
        torch.tensor(azimuths.ravel(), dtype=torch.float32),
    )


def template_vertices_faces(template: Path | None, radius: float):
    """The template, centred at the origin with its longest half-extent ``radius``.

    Returns:
        (vertices (V, 3) float32, faces (F, 3) int64) tensors.

    Raises:
        MeshError: the template file cannot be used.
    """
    from meshstyle.mesh import load_mesh, normalise

    if template is None:
        import trimesh

        sphere = trimesh.creation.icosphere(subdivisions=SPHERE_SUBDIVISIONS, radius=1.0)
        vertices, faces = np.asarray(sphere.vertices), np.asarray(sphere.faces)
    else:
        mesh, _ = normalise(load_mesh(template))
        vertices, faces = mesh.vertices, mesh.faces
    return (
        torch.as_tensor(vertices * radius, dtype=torch.float32),
        torch.as_tensor(faces, dtype=torch.int64),
    )


def fit_to_folder(
    target: Path,
    out: Path,
    *,
    template: Path | None,
    radius: float,
    views: int,
    settings: FitSettings,
    device: Device,
    overwrite: bool = False,
    progress: Callable[[int, float], None] | None = None,
) -> FitOutcome:
    """Fit the template to ``target``'s silhouettes and write ``OUT/<mesh>__fit/``.

    Args:
        target: the mesh whose silhouettes are matched (never modified).
        out: the output folder.
        template: mesh to deform; None for an icosphere of 642 vertices.
        radius: the template's longest half-extent in the target's normalised frame,
            where the target spans [-1, 1].
        views: training views (at least 1).
        settings: iterations, learning rate, smoothing and silhouette size.
        device: where to compute.
        overwrite: replace a complete earlier result.
        progress: called with (step, loss) after every step.

    Raises:
        MeshError: the target or template cannot be used.
        FileExistsError: a complete result exists and ``overwrite`` is off.
    """
    from meshstyle.fsutil import check_writable
    from meshstyle.jobfolder import check_replaceable, file_record, job_lock, write_job_folder
    from meshstyle.mesh import sanitise_name

    start = time.perf_counter()
    stem = sanitise_name(target.stem)
    final = out / f"{stem}__fit"
    made_from = {
        "kind": "fit",
        "inputs": {
            "target": file_record(target),
            **({} if template is None else {"template": file_record(template)}),
        },
        "settings": {**dataclasses.asdict(settings), "radius": radius, "views": views},
    }
    check_writable(out)
    with job_lock(out, final.name, wait=False):
        existing = check_replaceable(final, made_from, overwrite=overwrite)
        if existing.state == "same" and not overwrite:
            raise FileExistsError(f"{final}: output exists (use --overwrite)")
        fitted = _fit(target, template, radius, views, settings, device, progress)
        write_job_folder(
            out,
            final.name,
            made_from,
            lambda tmp: (
                _write_outputs(tmp, stem, fitted, start, device)
                | {
                    "target": str(target),
                    "template": "icosphere-642" if template is None else str(template),
                    "views": views,
                    "settings": {**dataclasses.asdict(settings), "radius": radius},
                }
            ),
            overwrite=overwrite,
        )
    return FitOutcome(
        folder=final,
        iou_before=fitted.iou_before,
        iou_after=fitted.iou_after,
        seconds=time.perf_counter() - start,
    )


@dataclass(frozen=True)
class _Fitted:
    """A fit's results in memory, before they are written.

    Attributes:
        mesh: the target, normalised.
        transform: from the target's own frame to the normalised one.
        t_vertices: (V, 3) float32 target vertices, normalised frame.
        t_faces: (F, 3) int64 target faces.
        vertices: (V', 3) float32 fitted template vertices, normalised frame.
        faces: (F', 3) int64 template faces.
        losses: the loss of every step.
        iou_before: mean held-out silhouette IoU of the template.
        iou_after: the same for the fitted mesh.
    """

    mesh: Mesh
    transform: Normalisation
    t_vertices: torch.Tensor
    t_faces: torch.Tensor
    vertices: torch.Tensor
    faces: torch.Tensor
    losses: list[float]
    iou_before: float
    iou_after: float


def _fit(target, template, radius, views, settings, device, progress) -> _Fitted:
    """Load the target, fit the template to its silhouettes and score it on held-out views."""
    from meshstyle.fit import fit_silhouettes, iou
    from meshstyle.mesh import load_mesh, normalise
    from meshstyle.renderer import RenderSettings, render

    mesh, transform = normalise(load_mesh(target))
    dev = device.torch_device
    t_vertices = torch.as_tensor(mesh.vertices, dtype=torch.float32, device=dev)
    t_faces = torch.as_tensor(mesh.faces, dtype=torch.int64, device=dev)
    s_vertices, s_faces = template_vertices_faces(template, radius)
    s_vertices, s_faces = s_vertices.to(dev), s_faces.to(dev)

    raster = RenderSettings(
        image_size=settings.image_size, anti_aliasing=False, backend=device.backend
    )
    train = training_cameras(views).to(dev)
    scoring = held_out_cameras().to(dev)
    with torch.no_grad():
        targets = render(t_vertices, t_faces, None, train, settings=raster).silhouettes
        reference = render(t_vertices, t_faces, None, scoring, settings=raster).silhouettes
        before = iou(
            render(s_vertices, s_faces, None, scoring, settings=raster).silhouettes, reference
        )
    losses: list[float] = []

    def record(step: int, loss: float) -> None:
        losses.append(loss)
        if progress is not None:
            progress(step + 1, loss)

    fitted = fit_silhouettes(
        s_vertices, s_faces, targets, train, settings, progress=record, backend=device.backend
    )
    if not bool(torch.isfinite(fitted).all()):
        raise ValueError(
            f"the fit diverged: vertices are not finite; lower the learning rate "
            f"(lr = {settings.lr:g})"
        )
    with torch.no_grad():
        after = iou(render(fitted, s_faces, None, scoring, settings=raster).silhouettes, reference)
    return _Fitted(
        mesh,
        transform,
        t_vertices,
        t_faces,
        fitted,
        s_faces,
        losses,
        float(before.mean()),
        float(after.mean()),
    )


def _write_outputs(folder: Path, stem: str, fit: _Fitted, start: float, device: Device) -> dict:
    """The fitted mesh (OBJ+MTL+PNG, GLB), turntable, comparison sheet and loss log.

    Returns:
        The marker's summary: held-out IoUs, seconds and output file names by kind.
    """
    from meshstyle import export
    from meshstyle.fsutil import atomic_write_text
    from meshstyle.images import contact_sheet, save_gif, save_png
    from meshstyle.losslog import loss_csv
    from meshstyle.preview import CLAY, render_frames, sheet_frames, turntable_angles
    from meshstyle.textures import initial_colours, uniform_cubes

    backend = device.backend
    fitted, s_faces = fit.vertices, fit.faces
    colours = torch.as_tensor(uniform_cubes(len(s_faces), 1, CLAY), device=fitted.device)
    target_colours = initial_colours(fit.mesh, 1).to(fitted.device)
    rows = [
        sheet_frames(fit.t_vertices, fit.t_faces, target_colours, backend=backend),
        sheet_frames(fitted, s_faces, colours, backend=backend),
    ]
    save_png(folder / "target_fit.png", contact_sheet(rows, ["target", "fit"]))
    elevations, azimuths = turntable_angles(36, 30.0)
    turntable = render_frames(
        fitted, s_faces, colours, elevations=elevations, azimuths=azimuths, backend=backend
    )
    save_gif(folder / "turntable.gif", turntable)

    vertices = fit.transform.invert(fitted.cpu().numpy().astype(np.float64))
    cubes = colours.cpu().numpy()
    outputs = export.write_mesh_files(folder, f"{stem}_fit", vertices, s_faces.cpu().numpy(), cubes)
    history = [{"step": i + 1, "loss": value} for i, value in enumerate(fit.losses)]
    atomic_write_text(folder / "loss.csv", loss_csv(history))
    outputs.update({"turntable": "turntable.gif", "sheet": "target_fit.png", "losses": "loss.csv"})
    return {
        "held_out_iou_before": round(fit.iou_before, 4),
        "held_out_iou_after": round(fit.iou_after, 4),
        "seconds": round(time.perf_counter() - start, 3),
        "outputs": outputs,
    }

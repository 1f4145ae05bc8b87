"""``meshstyle stylize`` and ``deepdream``: run edit jobs and write their outputs.

One job: load and normalise the mesh, run the edit loop, and write into a temporary folder
the edited mesh (OBJ+MTL+PNG and GLB, in the input's own frame), a turntable GIF, a
before/after sheet, the loss log and the resolved settings; then the completion marker, and
rename the folder into place.
"""

from __future__ import annotations

import csv
import io
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from meshstyle.jobs import COMPLETE_MARKER, Job, commit_folder, partial_folder, write_marker
from meshstyle.runtime import Device
from meshstyle.settings import EditSettings


@dataclass(frozen=True)
class JobOutcome:
    """What happened to one job, for the summary table and report.json.

    Attributes:
        job: the job.
        status: "done", "skipped" (already complete) or "failed".
        seconds: wall time.
        losses: first and final loss parts ({"first": {...}, "final": {...}}).
        outputs: output file paths by kind.
        error: one-line message when failed.
        timing: seconds per part of the loop (render, network, other).
    """

    job: Job
    status: str
    seconds: float = 0.0
    losses: dict = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    timing: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "name": self.job.name,
            "kind": self.job.kind,
            "mesh": str(self.job.mesh),
            "style": None if self.job.style is None else str(self.job.style),
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "losses": self.losses,
            "outputs": self.outputs,
            "error": self.error,
            "timing": {k: round(v, 3) for k, v in self.timing.items()},
        }


def loss_csv(history: list[dict[str, float]]) -> str:
    """The loss log as CSV: one row per step, floats to 6 significant digits."""
    if not history:
        return "step\n"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(history[0].keys()), lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
    return buffer.getvalue()


def build_objective(job: Job, settings: EditSettings, faces: torch.Tensor, device: Device):
    """The job's objective with its feature network (loaded once per process)."""
    from meshstyle.features import load_feature_network
    from meshstyle.objectives import DreamObjective, StyleObjective

    if job.kind == "stylize":
        from meshstyle.images import load_image

        style = load_image(job.style, size=settings.style_image_size).to(device.torch_device)
        network = load_feature_network(
            settings.network, settings.style_layers, device=device.torch_device
        )
        return StyleObjective(network, style, settings)
    network = load_feature_network(settings.network, [settings.layer], device=device.torch_device)
    return DreamObjective(network, faces, settings)


def run_job(
    job: Job,
    settings: EditSettings,
    out: Path,
    device: Device,
    *,
    max_faces: int | None = None,
    decimate: int | None = None,
    progress: Callable | None = None,
) -> JobOutcome:
    """Run one job and write its folder; errors propagate to the caller.

    The job writes into a hidden ``.partial`` folder inside OUT from its start (its settings
    first), which is renamed into place after the completion marker; whatever an earlier,
    interrupted run of the same job left there is removed first.

    Args:
        job: what to edit.
        settings: resolved settings.
        out: the run's output folder.
        device: where to compute.
        max_faces: refuse meshes with more faces (unless ``decimate`` brings them under).
        decimate: simplify meshes above this face count first.
        progress: called with each :class:`meshstyle.edit.StepReport`.
    """
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    tmp = partial_folder(out, job.name)
    try:
        outputs, losses, timing = _write_job(
            job, settings, tmp, device, max_faces, decimate, progress
        )
        seconds = time.perf_counter() - start
        write_marker(
            tmp,
            {
                "job": job.name,
                "seconds": round(seconds, 3),
                "losses": losses,
                "outputs": outputs,
                "timing": {k: round(v, 3) for k, v in timing.items()},
            },
        )
        commit_folder(tmp, job.folder(out), overwrite=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    folder = job.folder(out)
    return JobOutcome(
        job,
        "done",
        seconds=time.perf_counter() - start,
        losses=losses,
        outputs={k: str(folder / v) for k, v in outputs.items()},
        timing=timing,
    )


def _write_job(job, settings, folder: Path, device, max_faces, decimate, progress):
    """Edit the job's mesh and write every output but the marker into ``folder``.

    Returns:
        (output file names by kind, first/final losses, timing of the loop).
    """
    from meshstyle import export
    from meshstyle.commands.render import initial_colours
    from meshstyle.edit import edit_mesh
    from meshstyle.fsutil import atomic_write_text
    from meshstyle.images import contact_sheet, save_gif, save_png
    from meshstyle.mesh import decimate as decimate_mesh
    from meshstyle.mesh import load_mesh, normalise
    from meshstyle.preview import render_frames, sheet_frames, turntable_angles

    header = f'# meshstyle {job.kind}\nmesh = "{job.mesh}"\n'
    if job.style is not None:
        header += f'style = "{job.style}"\n'
    atomic_write_text(folder / "settings.toml", header + settings.to_toml())
    outputs = {"settings": "settings.toml"}

    mesh = load_mesh(job.mesh, max_faces=None if decimate else max_faces)
    if decimate and len(mesh.faces) > decimate:
        mesh = decimate_mesh(mesh, decimate)
    normalised, transform = normalise(mesh)
    dev = device.torch_device
    vertices = torch.as_tensor(normalised.vertices, dtype=torch.float32, device=dev)
    faces = torch.as_tensor(normalised.faces, dtype=torch.int64, device=dev)
    colours = initial_colours(normalised, settings.texture_size).to(dev)
    objective = build_objective(job, settings, faces, device)

    sheet = {
        "distance": settings.distance,
        "image_size": settings.preview_size,
        "backend": device.backend,
    }
    before = sheet_frames(vertices, faces, colours, **sheet)
    result = edit_mesh(
        vertices,
        faces,
        colours,
        objective,
        settings,
        backend=device.backend,
        progress=progress,
        face_uvs=normalised.face_uvs,
        image=normalised.texture,
    )
    after = sheet_frames(result.vertices, faces, result.colours, **sheet)
    elevations, azimuths = turntable_angles(settings.turntable_frames, 30.0)
    turntable = render_frames(
        result.vertices,
        faces,
        result.colours,
        elevations=elevations,
        azimuths=azimuths,
        distance=settings.distance,
        image_size=settings.preview_size,
        backend=device.backend,
    )

    stem = job.name.split("__")[0]
    edited = transform.invert(result.vertices.cpu().numpy().astype(np.float64))
    cubes = result.colours.cpu().numpy()
    outputs.update(
        export.write_mesh_files(folder, stem, edited, normalised.faces, cubes, baked=result.texture)
    )
    save_gif(folder / "turntable.gif", turntable)
    outputs["turntable"] = "turntable.gif"
    save_png(folder / "before_after.png", contact_sheet([before, after], ["before", "after"]))
    outputs["sheet"] = "before_after.png"
    atomic_write_text(folder / "loss.csv", loss_csv(result.history))
    outputs["losses"] = "loss.csv"
    first = result.history[0] if result.history else {}
    final = result.history[-1] if result.history else {}
    losses = {"first": first, "final": final, "skipped_steps": result.skipped_steps}
    return outputs, losses, result.timing


def skipped_outcome(job: Job, out: Path) -> JobOutcome:
    """The outcome of a job found complete from an earlier run."""
    import json

    marker = job.folder(out) / COMPLETE_MARKER
    try:
        summary = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = {}
    outputs = {k: str(job.folder(out) / v) for k, v in summary.get("outputs", {}).items()}
    return JobOutcome(job, "skipped", losses=summary.get("losses", {}), outputs=outputs)

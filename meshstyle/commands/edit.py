"""``meshstyle stylize`` and ``deepdream``: plan the jobs, run them, report.

One job: load and normalise the mesh, run the edit loop, and write into its partial folder
the edited mesh (OBJ+MTL+PNG and GLB, in the input's own frame), a turntable GIF, a
before/after sheet, the loss log and the resolved settings. The folder contract (locks,
markers, what may be replaced) is :mod:`meshstyle.jobfolder`'s; running many jobs is
:mod:`meshstyle.batch`'s; the reports are :mod:`meshstyle.report`'s.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import click
import numpy as np
import torch

from meshstyle.batch import JobOutcome, run_batch
from meshstyle.jobs import Job
from meshstyle.runtime import Device
from meshstyle.settings import EditSettings

MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: The command's own preset, under a user's preset file.
DEFAULT_PRESETS = {"stylize": "fast", "deepdream": "deepdream"}
#: A vertex of the edited mesh (normalised to [-1, 1] before editing) further out than this
#: means the optimisation ran away; the mesh is no result.
MAX_EDITED_EXTENT = 1e3
#: The style image's shorter side after resizing, at the least: the deepest style layers
#: see it through three 2x poolings.
MIN_STYLE_SIDE = 16


def classify_inputs(
    inputs: tuple[str, ...], styles: tuple[str, ...], *, recursive: bool = False
) -> tuple[list[str], list[str]]:
    """Split positional inputs into meshes and style images.

    Files and globs go by their suffix. A folder goes by what it holds: a folder with mesh
    files is a mesh folder, one with only images a folder of style images (so that
    ``stylize meshes/ styles/`` pairs every mesh with every painting); an empty folder is
    taken for meshes and reported when its meshes are looked for.
    """
    meshes, images = [], list(styles)
    for item in inputs:
        path = Path(item)
        suffix = path.suffix.lower()
        if path.is_dir():
            holds = _folder_suffixes(path, recursive)
            is_images = holds.isdisjoint(MESH_SUFFIXES) and not holds.isdisjoint(IMAGE_SUFFIXES)
            (images if is_images else meshes).append(item)
        elif suffix in IMAGE_SUFFIXES:
            images.append(item)
        elif suffix in MESH_SUFFIXES or not suffix:
            meshes.append(item)
        elif any(ch in item for ch in "*?["):
            meshes.append(item)
        else:
            raise click.BadParameter(
                f"{item}: neither a mesh ({', '.join(MESH_SUFFIXES)}) nor a style image "
                f"({', '.join(IMAGE_SUFFIXES)})",
                param_hint="INPUTS",
            )
    return meshes, images


def _folder_suffixes(folder: Path, recursive: bool) -> set[str]:
    """The lowercase suffixes of the files in a folder (and its sub-folders if recursive)."""
    from meshstyle.jobs import folder_files

    return {p.suffix.lower() for p in folder_files(folder, recursive)}


def check_layers(kind: str, settings: EditSettings, origin: Callable[[str], str]) -> None:
    """Refuse, before any job starts, a network without weights or an unknown layer or channel.

    ``origin(key)`` says where a setting came from (its flag, or a preset file or name and
    the key), so that the message points at what to change.
    """
    from meshstyle.features import layer_channels, layer_names, weights_available

    available, reason = weights_available(settings.network)
    if not available:
        raise ValueError(
            f"{origin('network')}: network {settings.network!r} cannot be used: {reason}"
        )
    valid = layer_names(settings.network)
    key = "style_layers" if kind == "stylize" else "layer"
    wanted = settings.style_layers if kind == "stylize" else (settings.layer,)
    for name in wanted:
        if name not in valid:
            raise ValueError(
                f"{origin(key)}: unknown layer {name!r}; choose one of {', '.join(valid)}"
            )
    if kind == "deepdream" and settings.channel >= 0:
        channels = layer_channels(settings.network, settings.layer)
        if settings.channel >= channels:
            raise ValueError(
                f"channel must be in [0, {channels - 1}] for layer {settings.layer}; "
                f"got {settings.channel}"
            )


def run_edit(
    kind: str,
    meshes: list[str],
    styles: list[str],
    opts: dict,
    overrides: dict,
    *,
    debug: bool,
    setup_runtime: Callable[[str, int | None], Device],
) -> int:
    """Plan, run and report a stylize or deepdream batch; returns the exit code.

    Args:
        kind: "stylize" or "deepdream".
        meshes, styles: what the user named (files, folders, globs).
        opts: the command's options (output, preset, recursive, shard, overwrite, ...).
        overrides: settings given as flags (None: take the preset's).
        debug: print failed jobs' tracebacks.
        setup_runtime: resolves ``--device``/``--threads``.

    Raises:
        click.UsageError: bad settings or inputs, before any job starts.
        FileExistsError: OUT holds a report.json or report.html that meshstyle did not write,
            before any job starts.
    """
    from meshstyle.console import BatchConsole
    from meshstyle.fsutil import check_writable
    from meshstyle.jobs import expand_inputs, parse_shard, plan_jobs, shard
    from meshstyle.precision import slow_request
    from meshstyle.report import check_reports_replaceable, write_reports
    from meshstyle.settings import resolve_settings

    out: Path = opts["output"]
    try:
        settings = resolve_settings(
            opts["preset"] or DEFAULT_PRESETS[kind], overrides, base=DEFAULT_PRESETS[kind]
        )
        mesh_paths = expand_inputs(meshes, MESH_SUFFIXES, recursive=opts["recursive"], exclude=out)
        style_paths = (
            expand_inputs(
                styles, IMAGE_SUFFIXES, recursive=opts["recursive"], what="image", exclude=out
            )
            if kind == "stylize"
            else None
        )
        preset = opts["preset"] or f"preset {DEFAULT_PRESETS[kind]}"
        check_layers(
            kind,
            settings,
            lambda key: (
                "--" + key.replace("_", "-")
                if overrides.get(key) is not None
                else f"{preset}: {key}"
            ),
        )
        jobs = plan_jobs(kind, mesh_paths, style_paths, layer=settings.layer)
        shard_of = parse_shard(opts["shard"]) if opts["shard"] else None
        if shard_of:
            jobs = shard(jobs, *shard_of)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    device = setup_runtime(opts["device"], opts["threads"])
    note = slow_request(settings.precision, device.torch_device)
    if note is not None and not opts["quiet"]:
        click.echo(f"note: {note}", err=True)
    check_writable(out)
    check_reports_replaceable(out, shard_of)
    limits = {"max_faces": opts["max_faces"], "decimate": opts["decimate"]}
    console = BatchConsole(
        len(jobs), settings.iterations, quiet=opts["quiet"], verbose=opts["verbose"]
    )

    def report(outcomes: list[JobOutcome]) -> None:
        write_reports(out, outcomes, settings.to_toml(), shard_of)

    with console:
        outcomes = run_batch(
            jobs,
            out,
            write=lambda job, folder: write_edit_job(
                job,
                settings,
                folder,
                device,
                progress=console.step,
                on_phase=console.phase,
                **limits,
            ),
            made_from=lambda job: made_from(job, settings, decimate=opts["decimate"]),
            overwrite=opts["overwrite"],
            debug=debug,
            on_job_start=console.job_started,
            on_job_end=console.job_ended,
            on_job_wait=console.job_waiting,
            on_interrupt=report,
        )
    report(outcomes)
    console.summary(outcomes, out)
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def made_from(job: Job, settings: EditSettings, *, decimate: int | None = None) -> dict:
    """What makes an edit job's result: its kind, its inputs' content and its settings."""
    from meshstyle.jobfolder import file_record

    inputs = {"mesh": file_record(job.mesh)}
    if job.style is not None:
        inputs["style"] = file_record(job.style)
    if Path(settings.network).is_file():
        inputs["network"] = file_record(Path(settings.network))
    values = {
        k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(settings).items()
    }
    return {"kind": job.kind, "inputs": inputs, "settings": {**values, "decimate": decimate}}


def build_objective(job: Job, settings: EditSettings, faces: torch.Tensor, device: Device):
    """The job's objective with its feature network (loaded once per process)."""
    from meshstyle.features import load_feature_network
    from meshstyle.objectives import DreamObjective, StyleObjective

    if job.kind == "stylize":
        from meshstyle.images import load_image

        style = load_image(job.style, size=settings.style_image_size).to(device.torch_device)
        check_style_shape(job.style, style)
        network = load_feature_network(
            settings.network,
            settings.style_layers,
            device=device.torch_device,
            precision=settings.precision,
        )
        return StyleObjective(network, style, settings)
    network = load_feature_network(
        settings.network,
        [settings.layer],
        device=device.torch_device,
        precision=settings.precision,
    )
    return DreamObjective(network, faces, settings)


def check_style_shape(path: Path, style: torch.Tensor) -> None:
    """Refuse a style image too narrow for the feature network's pooling.

    Raises:
        ImageError: its shorter side, once resized, is below ``MIN_STYLE_SIDE``.
    """
    from meshstyle.images import ImageError

    height, width = style.shape[-2:]
    if min(height, width) < MIN_STYLE_SIDE:
        raise ImageError(
            f"style image {path} is too narrow: resized to {width}x{height}, its shorter side "
            f"must be at least {MIN_STYLE_SIDE} pixels (crop it to an aspect ratio nearer 1:1)"
        )


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
    """Run one job into ``out`` (replacing an earlier result of it) and return its outcome.

    For scripts and benchmarks; the commands run :func:`meshstyle.batch.run_batch`.
    """
    from meshstyle.fsutil import check_writable

    check_writable(out)
    return run_batch(
        [job],
        out,
        write=lambda j, folder: write_edit_job(
            j, settings, folder, device, max_faces=max_faces, decimate=decimate, progress=progress
        ),
        made_from=lambda j: made_from(j, settings, decimate=decimate),
        overwrite=True,
    )[0]


def write_edit_job(
    job: Job,
    settings: EditSettings,
    folder: Path,
    device: Device,
    *,
    max_faces: int | None = None,
    decimate: int | None = None,
    progress: Callable | None = None,
    on_phase: Callable[[str], None] | None = None,
) -> dict:
    """Edit the job's mesh and write every output (but the marker) into ``folder``.

    Args:
        job: what to edit.
        settings: resolved settings.
        folder: the job's partial folder.
        device: where to compute.
        max_faces: refuse meshes with more faces (unless ``decimate`` brings them under).
        decimate: simplify meshes above this face count first.
        progress: called with each :class:`meshstyle.edit.StepReport`.
        on_phase: told what the job is busy with besides steps (see
            :func:`meshstyle.edit.edit_mesh`; here also the outputs after the last step).

    Returns:
        The marker's summary: ``outputs`` (file names by kind), ``losses`` (first and final
        parts), ``timing`` and ``seconds``.

    Raises:
        MeshError, ImageError: the inputs cannot be used.
        ValueError: the optimisation diverged (no output is a result then).
    """
    import time

    from meshstyle import export
    from meshstyle.edit import edit_mesh
    from meshstyle.fsutil import atomic_write_text
    from meshstyle.images import contact_sheet, save_gif, save_png
    from meshstyle.losslog import loss_csv
    from meshstyle.mesh import decimate as decimate_mesh
    from meshstyle.mesh import load_mesh, normalise
    from meshstyle.preview import render_frames, sheet_frames, turntable_angles
    from meshstyle.settings import job_table
    from meshstyle.textures import initial_colours

    start = time.perf_counter()
    # The inputs go in a [job] table after the settings, so the file is a preset as it is.
    atomic_write_text(
        folder / "settings.toml",
        f"# meshstyle {job.kind}\n" + settings.to_toml() + job_table(job.mesh, job.style),
    )
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
    result = edit_mesh(
        vertices,
        faces,
        colours,
        objective,
        settings,
        backend=device.backend,
        progress=progress,
        on_phase=on_phase,
        face_uvs=normalised.face_uvs,
        image=normalised.texture,
    )
    check_converged(result, settings)
    if on_phase is not None:
        on_phase("writing the mesh, turntable and sheet")
    # The "before" pictures are drawn after the run so that the first step comes sooner
    # (edit_mesh works on copies: vertices and colours are still the input's).
    before = sheet_frames(vertices, faces, colours, **sheet)
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
    if not np.all(np.isfinite(edited.astype(np.float32))):
        raise ValueError("the edited mesh has coordinates beyond float32 in the input's frame")
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
    return {
        "job": job.name,
        "seconds": round(time.perf_counter() - start, 3),
        "losses": {"first": first, "final": final, "skipped_steps": result.skipped_steps},
        "outputs": outputs,
        "timing": {k: round(v, 3) for k, v in result.timing.items()},
    }


def check_converged(result, settings: EditSettings) -> None:
    """Refuse a diverged optimisation: its mesh and colours are no result.

    The edit loop drops single steps whose loss is not finite; a final loss that is not
    finite, or vertices or colours that are not finite or ran far away, mean it diverged.

    Raises:
        ValueError: with the step where the loss stopped being finite and the learning rate.
    """
    final = result.history[-1] if result.history else {}
    bad_loss = [k for k, v in final.items() if isinstance(v, float) and not math.isfinite(v)]
    vertices, colours = result.vertices, result.colours
    finite = bool(torch.isfinite(vertices).all()) and bool(torch.isfinite(colours).all())
    extent = float(vertices.abs().max()) if finite and vertices.numel() else 0.0
    if not bad_loss and finite and extent <= MAX_EDITED_EXTENT:
        return
    first_bad = next(
        (
            row.get("step")
            for row in result.history
            if not all(math.isfinite(v) for v in row.values() if isinstance(v, float))
        ),
        None,
    )
    if first_bad == 1:
        # No step has moved anything yet: the rate is not the cause, a term's size is.
        raise ValueError(
            "the optimisation diverged: the loss is not finite at step 1, before any update "
            f"(beyond float32's range); {_overflow_advice(result.history[0], settings)}"
        )
    where = f" from step {first_bad} on" if first_bad is not None else ""
    what = f"the loss is not finite{where}" if bad_loss else "the vertices ran away"
    raise ValueError(
        f"the optimisation diverged: {what}; lower the learning rate (lr = {settings.lr:g})"
    )


def _overflow_advice(parts: dict, settings: EditSettings) -> str:
    """What to lower when a step's loss ``parts`` are not finite: their weights."""
    bad = [k for k, v in parts.items() if k != "loss" and isinstance(v, float)]
    bad = [k for k in bad if not math.isfinite(parts[k])]
    # The seam term is scaled by the rest of the loss (edit._with_seam_term): it is not
    # finite whenever another part is not.
    bad = [k for k in bad if k != "seam"] or bad
    weights = [
        f"{k}_weight = {getattr(settings, k + '_weight'):g}"
        for k in bad
        if hasattr(settings, k + "_weight")
    ]
    return f"lower {', '.join(weights)}" if weights else f"not finite: {', '.join(bad)}"


def skipped_outcome(job: Job, out: Path) -> JobOutcome:
    """The outcome of a job found complete from an earlier run (as its marker records it)."""
    from meshstyle.jobfolder import read_marker

    summary = read_marker(job.folder(out)) or {}
    outputs = {k: str(job.folder(out) / v) for k, v in summary.get("outputs", {}).items()}
    return JobOutcome(job, "skipped", losses=summary.get("losses", {}), outputs=outputs)

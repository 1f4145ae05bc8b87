"""``meshstyle reconstruct``: the glue between the click commands and meshstyle.reconstruct.

Each function here does one command's work and returns what the command prints; progress
is drawn with rich on stderr.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import numpy as np

from meshstyle.fsutil import atomic_write_text, check_writable

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def _console():
    from rich.console import Console

    return Console(stderr=True)


def make_data(out: Path, classes: list[str], counts: dict[str, int], seed: int, quiet: bool):
    """Write the procedural data set; returns the list of files written.

    ``out`` is new, empty, or a data set that the classes or splits are added to; nothing in
    it is replaced (FileExistsError otherwise). It is created, and checked writable
    (PermissionError), before any object is rendered.
    """
    from meshstyle.console import step_progress
    from meshstyle.reconstruct.layout import IMAGE_SIZE, VIEWS, VOXEL_SIZE
    from meshstyle.reconstruct.outputs import check_data_folder
    from meshstyle.reconstruct.procedural import CLASSES, make_object, split_rng, write_split

    unknown = [c for c in classes if c not in CLASSES]
    if unknown:
        raise ValueError(f"unknown class {unknown[0]!r}; procedural classes are {list(CLASSES)}")
    check_data_folder(out)
    # Creates the folder, or says in one line why it cannot (a file on the way, say).
    check_writable(out)
    existing = [
        p.name
        for c in classes
        for s in counts
        for p in (out / f"{c}_{s}_images.npz", out / f"{c}_{s}_voxels.npz")
        if p.exists()
    ]
    if existing:
        raise FileExistsError(
            f"{out / existing[0]}: already exists; make-data never overwrites "
            "(choose an empty folder or remove the old files)"
        )
    total = len(classes) * sum(counts.values())
    written = []
    done = 0
    with step_progress("rendering objects", total=total, quiet=quiet) as advance:
        for kind in classes:
            for split, count in counts.items():
                rng = split_rng(kind, split, seed)
                images = np.zeros((count, VIEWS, 4, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
                voxels = np.zeros((count, VOXEL_SIZE, VOXEL_SIZE, VOXEL_SIZE), dtype=bool)
                for n in range(count):
                    images[n], voxels[n] = make_object(rng, kind)
                    done += 1
                    advance(done)
                written += write_split(out, kind, split, images, voxels)
    return written


def check_data(data: Path, layout_name: str, split: str, classes, per_class: int):
    """Check a layout on a sample; returns the :class:`LayoutCheck`."""
    from meshstyle.reconstruct.check import check_layout
    from meshstyle.reconstruct.data import load_split
    from meshstyle.reconstruct.layout import get_layout

    layout = get_layout(layout_name)
    loaded = load_split(data, split, layout, classes)
    return check_layout(loaded, per_class=per_class)


def _shown(value) -> str:
    """A setting's value as the command line spells it."""
    if isinstance(value, tuple):
        return ",".join(value) if value else "all"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _same(field: str, run_value, given_value) -> bool:
    if field == "classes":
        # The order of --classes names changes nothing the run is trained on.
        return sorted(run_value) == sorted(given_value)
    return run_value == given_value


def resume_conflicts(run_settings, run_classes, given: dict[str, tuple[str, object]]):
    """The options given for a resumed run that differ from the run's own settings.

    Args:
        run_settings: the run's :class:`~meshstyle.reconstruct.train.TrainSettings`.
        run_classes: the classes it trains on (its settings' classes, or every class of
            the data when those are empty).
        given: option (e.g. ``"--lr"``) -> (settings field, value given) for the options
            given explicitly on the command line.

    Returns:
        (option, run's value, given value) triples, spelt as on the command line.
    """
    conflicts = []
    for option, (field, value) in given.items():
        theirs = tuple(run_classes) if field == "classes" else getattr(run_settings, field)
        if not _same(field, theirs, value):
            conflicts.append((option, _shown(theirs), _shown(value)))
    return conflicts


def train_run(
    data: Path,
    run: Path,
    settings,
    iterations,
    minutes,
    device,
    quiet: bool,
    given: dict[str, tuple[str, object]] | None = None,
):
    """Train with a rich progress line (loss, validation IoU, images/s).

    ``given``: the settings options given explicitly (see :func:`resume_conflicts`); a
    resumed run keeps its own settings, so one that differs is an error (ValueError) rather
    than silently ignored.

    The run is trained under a lock (``.<run>.lock`` beside it, as a stylize job's in OUT):
    a second ``train`` into the same folder while one runs is refused (ValueError) instead
    of both writing its files. Where that lock file cannot be made (a read-only parent
    folder) the run trains without it.
    """
    from meshstyle.jobfolder import JobBusy, job_lock

    with contextlib.ExitStack() as stack:
        try:
            run.parent.mkdir(parents=True, exist_ok=True)
            stack.enter_context(job_lock(run.parent, run.name, wait=False))
        except JobBusy:
            raise ValueError(
                f"{run}: another meshstyle run is training into this folder; wait for it to "
                "end, or give another -o"
            ) from None
        except OSError:
            pass  # no lock file can be made there: train without it (the run's checks say why)
        return _train_unlocked(data, run, settings, iterations, minutes, device, quiet, given)


def _train_unlocked(data, run, settings, iterations, minutes, device, quiet, given):
    """:func:`train_run` once its lock is held (or cannot be made)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from meshstyle.reconstruct.train import Trainer, train

    console = _console()
    trainer = Trainer(data, run, settings, (device.torch_device, device.backend))
    conflicts = []
    if trainer.resumed:
        conflicts = resume_conflicts(trainer.settings, trainer.train_split.classes, given or {})
    if conflicts:
        listed = ", ".join(f"{o} (run: {theirs}, given: {ours})" for o, theirs, ours in conflicts)
        raise ValueError(
            f"{run}: resuming keeps the run's own settings, and these options differ: {listed}; "
            "drop them to resume, or give a new -o to train a run with them"
        )
    if iterations is not None and trainer.step_count >= iterations:
        raise ValueError(
            f"{run}: already trained for {trainer.step_count} steps; give --iterations above "
            "that, or --minutes, to train further"
        )
    if trainer.resumed and not quiet:
        console.print(f"resuming {run} at step {trainer.step_count}")
    if not quiet:
        from meshstyle.precision import slow_request

        note = slow_request(trainer.settings.precision, device.torch_device)
        if note is not None:
            console.print(f"note: {note}")
        console.print(f"encoder precision: {trainer.precision.name} ({trainer.precision.reason})")
    by_time = iterations is None
    total = 60.0 * minutes if by_time else iterations - trainer.step_count
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn() if not by_time else TextColumn("{task.fields[steps]} steps"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=quiet,
    )
    state = {"val": "", "start": time.perf_counter(), "first": trainer.step_count}

    def on_step(report) -> None:
        if report.val_iou is not None:
            state["val"] = f" val IoU {report.val_iou:.3f}"
        done = time.perf_counter() - state["start"] if by_time else report.step - state["first"]
        progress.update(
            task,
            completed=min(done, total),
            steps=report.step,
            status=f"loss {report.loss:.4f}{state['val']} {report.images_per_s:.0f} img/s",
        )

    with progress:
        task = progress.add_task(
            f"training {trainer.settings.decoder}", total=total, steps=0, status="loss -"
        )
        outcome = train(
            data,
            run,
            trainer.settings,
            iterations=iterations,
            minutes=minutes,
            on_step=on_step,
            trainer=trainer,
        )
    return outcome


def evaluate_run(
    data: Path,
    model_dir: Path,
    split: str,
    device,
    output: Path | None,
    sheet: Path | None = None,
    inside: str = "nonzero",
    overwrite: bool = False,
):
    """Score a run on a split; returns the result dict (also written to ``output``), and
    draws inputs beside reconstructions into ``sheet`` when given. ``inside``: how a mesh
    is voxelised (see :func:`meshstyle.reconstruct.voxelize.voxelize`).

    The outputs are checked before the evaluation (see
    :func:`meshstyle.reconstruct.outputs.check_eval_outputs`): an earlier report or sheet (a
    PNG) is replaced only with ``overwrite``; another file, anything in ``data`` and the
    run's own files never."""
    from rich.progress import Progress

    from meshstyle.reconstruct.check import silhouette_ceiling
    from meshstyle.reconstruct.data import load_split
    from meshstyle.reconstruct.evaluate import THRESHOLDS, per_class, score
    from meshstyle.reconstruct.layout import get_layout
    from meshstyle.reconstruct.outputs import check_eval_outputs
    from meshstyle.reconstruct.train import TrainSettings, load_model

    check_eval_outputs(output, sheet, overwrite, data=data, run=model_dir)
    model, config = load_model(model_dir, device.torch_device)
    settings = TrainSettings.from_json(config["settings"])
    loaded = load_split(data, split, get_layout(settings.layout), config["classes"])
    start = time.perf_counter()
    with Progress(console=_console(), transient=True) as progress:
        progress.add_task(f"reconstructing {len(loaded) * 24} views", total=None)
        threshold = config.get("voxel_threshold") or 0.5
        if settings.decoder == "voxel" and config.get("voxel_threshold") is None:
            # A run saved without one: choose it on the validation split, never on the test.
            val = load_split(data, "val", loaded.layout, config["classes"])
            by_cut = score(model, val, device=device.torch_device, thresholds=THRESHOLDS)
            threshold = THRESHOLDS[int(np.argmax(by_cut.reshape(len(THRESHOLDS), -1).mean(1)))]
        ious = score(
            model, loaded, device=device.torch_device, thresholds=(threshold,), inside=inside
        )[0]
    seconds = time.perf_counter() - start
    result = {
        "split": split,
        "decoder": settings.decoder,
        "steps": config.get("steps"),
        "objects": len(loaded),
        "views_per_object": int(ious.shape[1]),
        "voxel_threshold": threshold if settings.decoder == "voxel" else None,
        "inside": inside if settings.decoder == "mesh" else None,
        "iou": per_class(loaded, ious),
        "seconds": round(seconds, 2),
        # The test objects' own visual hulls scored the same way: about the best that
        # training on silhouettes can reach on these classes (see reconstruct/check.py).
        "silhouette_ceiling": per_class(loaded, silhouette_ceiling(loaded)),
    }
    if output is not None:
        atomic_write_text(output, json.dumps(result, indent=2) + "\n")
    if sheet is not None:
        from meshstyle.reconstruct.sheet import reconstruction_sheet

        reconstruction_sheet(model.cpu(), loaded, sheet, threshold=threshold)
    return result


def iou_table(result: dict):
    """A rich table of per-class IoUs."""
    from rich.table import Table

    table = Table(title=f"voxel IoU, {result['split']} split ({result['decoder']} decoder)")
    table.add_column("class")
    table.add_column("IoU", justify="right")
    ceiling = result.get("silhouette_ceiling")
    if ceiling:
        table.add_column("silhouette ceiling", justify="right")
    for name, value in result["iou"].items():
        if name != "mean":
            table.add_row(name, f"{value:.4f}", *([f"{ceiling[name]:.4f}"] if ceiling else []))
    mean = result["iou"]["mean"]
    extra = [f"[bold]{ceiling['mean']:.4f}[/bold]"] if ceiling else []
    table.add_row("[bold]mean[/bold]", f"[bold]{mean:.4f}[/bold]", *extra)
    return table


def read_image(path: Path) -> np.ndarray:
    """An input picture as the network's (4, 64, 64) float32 RGBA in [0, 1].

    RGBA images use their alpha; images without one are taken to be on black, the mask
    being the pixels that are not (nearly) black. Non-square images are padded with black
    to a square, then resized to 64 x 64.

    Raises:
        FileNotFoundError, ValueError: unreadable or unsupported file (named in the message).
    """
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise FileNotFoundError(f"{path}: image not found")
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGBA") if "A" in opened.getbands() else opened.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from None
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    if image.mode == "RGBA":
        alpha = np.asarray(image, dtype=np.float32)[..., 3] / 255.0
    else:
        alpha = (rgb.max(-1) > 0.02).astype(np.float32)
    rgba = np.concatenate([rgb * alpha[..., None], alpha[..., None]], -1)
    height, width = alpha.shape
    side = max(height, width)
    padded = np.zeros((side, side, 4), dtype=np.float32)
    top, left = (side - height) // 2, (side - width) // 2
    padded[top : top + height, left : left + width] = rgba
    if side != 64:
        channels = [
            np.asarray(Image.fromarray(padded[..., c]).resize((64, 64), Image.BILINEAR))
            for c in range(4)
        ]
        padded = np.stack(channels, -1)
    if not padded[..., 3].any():
        raise ValueError(f"{path}: the object mask is empty (transparent or all-black image)")
    return np.ascontiguousarray(padded.transpose(2, 0, 1))


#: What predict writes for each image, by suffix: ``OUT/<stem><suffix>``.
_OUTPUT_KINDS = {
    ".obj": "the output mesh",
    ".mtl": "the output material written next to {stem}.obj",
    ".png": "the output texture written next to {stem}.obj",
    ".glb": "the output GLB",
}


def predict_files(images: list[Path], model_dir: Path, out: Path, device, overwrite: bool):
    """Reconstruct each image; writes ``OUT/<stem>.obj`` (+ .mtl, .png) and ``.glb``.

    No output replaces an input (an image, or a file of the run), even with ``overwrite``;
    without it, no output replaces an existing file (FileExistsError). ``out`` is created,
    and checked writable (PermissionError), before the model is loaded.

    Returns:
        (image, files written) pairs.
    """
    import torch

    from meshstyle.export import write_mesh_files
    from meshstyle.fsutil import replaced_input
    from meshstyle.mesh import sanitise_name
    from meshstyle.reconstruct.outputs import RUN_FILES
    from meshstyle.reconstruct.train import load_model
    from meshstyle.reconstruct.voxelize import voxel_surface

    stems = [sanitise_name(p.stem) for p in images]
    # The run's own files are inputs too: an image named curves.jpg with -o RUN would
    # otherwise write its texture over the run's curves.png.
    inputs = list(images) + [model_dir / name for name in RUN_FILES]
    seen: dict[str, Path] = {}
    for path, stem in zip(images, stems, strict=True):
        if stem in seen:
            raise ValueError(f"{path}: same output name {stem!r} as {seen[stem]}; rename one")
        seen[stem] = path
        outputs = {suffix: out / f"{stem}{suffix}" for suffix in _OUTPUT_KINDS}
        # First, and whatever --overwrite says: an output never replaces an input.
        for suffix, output in outputs.items():
            replaced = replaced_input(output, inputs)
            if replaced is not None:
                what = "input image" if replaced in images else "file of the --model run"
                raise FileExistsError(
                    f"{output}: {_OUTPUT_KINDS[suffix].format(stem=stem)} would replace the "
                    f"{what} {replaced}; choose another -o (--overwrite never replaces an input)"
                )
        if not overwrite:
            for suffix, output in outputs.items():
                if output.exists():
                    raise FileExistsError(
                        f"{output}: already exists ({_OUTPUT_KINDS[suffix].format(stem=stem)} "
                        f"for {path}); use --overwrite to replace it, or choose another -o"
                    )
    batch = torch.from_numpy(np.stack([read_image(p) for p in images]))
    # After the images are read (a missing one should not leave an empty -o folder behind,
    # the default ./out included) and before the model is: creates OUT, or says in one line
    # why it cannot be written.
    check_writable(out)
    from meshstyle.reconstruct.layout import get_layout
    from meshstyle.reconstruct.train import TrainSettings

    model, config = load_model(model_dir, device.torch_device)
    extent = get_layout(TrainSettings.from_json(config["settings"]).layout).voxel_extent
    threshold = config.get("voxel_threshold") or 0.5
    with torch.no_grad():
        output = model(batch.to(device.torch_device)).cpu().numpy()
    written = []
    for path, stem, shape in zip(images, stems, output, strict=True):
        if model.kind == "mesh":
            vertices, faces = shape, model.faces.cpu().numpy()
        else:
            vertices, faces = voxel_surface(shape > threshold, extent)
            if len(faces) == 0:
                raise ValueError(f"{path}: the voxel decoder predicts an empty grid")
        grey = np.full((len(faces), 1, 1, 1, 3), 0.7, dtype=np.float32)
        files = write_mesh_files(out, stem, vertices, faces, grey)
        written.append((path, [out / name for name in files.values()]))
    return written

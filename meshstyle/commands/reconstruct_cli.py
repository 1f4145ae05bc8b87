"""The ``meshstyle reconstruct`` click group: predict (the default), train, eval, make-data
and check-data. Thin: each command parses its options and calls
:mod:`meshstyle.commands.reconstruct`.

``meshstyle reconstruct IMAGE... --model RUN -o OUT`` is short for
``meshstyle reconstruct predict IMAGE... --model RUN -o OUT``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

_DEVICES = click.Choice(["auto", "cpu", "cuda"])


def _runtime(device: str, threads: int | None):
    # Imported here: meshstyle.cli imports this module while it is being built.
    from meshstyle.cli import _setup_runtime
    from meshstyle.runtime import retain_freed_memory

    # Training frees and allocates the same large tensors every step (see the docstring).
    retain_freed_memory()
    return _setup_runtime(device, threads)


def _device_options(func):
    func = click.option(
        "--threads", type=click.IntRange(min=1), default=None, help="CPU threads (default: all)."
    )(func)
    return click.option(
        "--device", type=_DEVICES, default="auto", show_default=True, help="Where to compute."
    )(func)


def _class_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise click.BadParameter("give class names separated by commas", param_hint="--classes")
    return names


class ReconstructGroup(click.Group):
    """A group whose unknown first word is an image: it runs ``predict``."""

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "predict", self.commands["predict"], args
        return super().resolve_command(ctx, args)


@click.group(cls=ReconstructGroup)
def reconstruct() -> None:
    """Reconstruct a mesh from one image with a network trained on silhouettes.

    \b
    meshstyle reconstruct make-data DATA             a procedural data set
    meshstyle reconstruct check-data DATA            prove the cameras/voxels conventions
    meshstyle reconstruct train DATA -o RUN          train (resumes RUN if it exists)
    meshstyle reconstruct eval DATA --model RUN      per-class voxel IoU
    meshstyle reconstruct IMAGE... --model RUN -o OUT    one OBJ + GLB per image
    """


@reconstruct.command("predict")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--model", "model_dir", required=True, type=click.Path(path_type=Path), help="A run folder."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out"),
    show_default=True,
    help="Folder for <image>.obj/.mtl/.png and <image>.glb.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace earlier outputs of the same name (never an input image).",
)
@_device_options
def predict(images, model_dir, output, overwrite, device, threads) -> None:
    """Reconstruct each IMAGE (RGBA, or an object on black) as a mesh in the object's
    canonical frame (+y up, inside [-0.5, 0.5]^3)."""
    resolved = _runtime(device, threads)
    from meshstyle.commands.reconstruct import predict_files

    for image, files in predict_files(list(images), model_dir, output, resolved, overwrite):
        click.echo(f"{image} -> {', '.join(str(f) for f in files if f.suffix in ('.obj', '.glb'))}")


#: ``train``'s Adam rate for each decoder when --lr is not given. Runs of 15 minutes on two
#: cores (README, "Single-image reconstruction"): the mesh decoder learns at 1e-3; the voxel
#: decoder collapsed at 1e-3 (test voxel IoU 0.25 and 0.17, every image giving the same
#: grid) and learned at 3e-4 (0.59 to 0.62).
_LEARNING_RATES = {"mesh": 1e-3, "voxel": 3e-4}


#: The train options that set a run's :class:`~meshstyle.reconstruct.train.TrainSettings`:
#: click parameter name -> (option as typed, settings field). They are fixed for the life of
#: a run; --iterations, --minutes, --device, --threads and -q may change on every call.
_SETTING_OPTIONS = {
    "classes": ("--classes", "classes"),
    "decoder": ("--decoder", "decoder"),
    "batch_size": ("--batch-size", "batch_size"),
    "lr": ("--lr", "learning_rate"),
    "lr_schedule": ("--lr-schedule", "lr_schedule"),
    "warmup_steps": ("--warmup", "warmup_steps"),
    "batch_norm": ("--batch-norm/--no-batch-norm", "batch_norm"),
    "flatten_weight": ("--flatten-weight", "flatten_weight"),
    "laplacian_weight": ("--laplacian-weight", "laplacian_weight"),
    "seed": ("--seed", "seed"),
    "eval_every": ("--eval-every", "eval_every"),
    "layout": ("--layout", "layout"),
    "precision": ("--precision", "precision"),
}


def _given_settings(ctx: click.Context, settings) -> dict[str, tuple[str, object]]:
    """The settings options typed on the command line (not left at their defaults):
    option -> (settings field, value), for :func:`~meshstyle.commands.reconstruct.train_run`
    to compare with a resumed run's own."""
    from click.core import ParameterSource

    given = {}
    for name, (option, field) in _SETTING_OPTIONS.items():
        if ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT):
            if option.startswith("--batch-norm"):
                option = "--batch-norm" if settings.batch_norm else "--no-batch-norm"
            given[option] = (field, getattr(settings, field))
    return given


@reconstruct.command("train")
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    "run",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Run folder: new or empty, or an earlier run to resume with its own settings "
    "(options given that differ from them are an error).",
)
@click.option("--classes", default=None, help="Comma-separated class names (default: all).")
@click.option("--decoder", type=click.Choice(["mesh", "voxel"]), default="mesh", show_default=True)
@click.option(
    "--iterations",
    type=click.IntRange(min=1),
    default=None,
    help="Train up to this many steps in total (default 1000 when --minutes is not given).",
)
@click.option(
    "--minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Train for this long now (with --iterations: whichever ends first).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Adam learning rate (default 1e-3 for the mesh decoder, 3e-4 for the voxel one; "
    "the original: 1e-4 at batch 64 for a million GPU steps).",
)
@click.option(
    "--lr-schedule",
    type=click.Choice(["cosine", "constant"]),
    default="cosine",
    show_default=True,
    help="cosine: anneal the rate to 0 over this call's --iterations or --minutes "
    "(constant: the original's).",
)
@click.option(
    "--warmup",
    "warmup_steps",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Raise the rate linearly from 0 over the run's first N steps (0: none, the original's).",
)
@click.option(
    "--batch-norm/--no-batch-norm",
    default=False,
    show_default=True,
    help="Batch-normalise the encoder's convolutions (as SoftRas's port; the original has none).",
)
@click.option(
    "--flatten-weight",
    type=click.FloatRange(min=0),
    default=None,
    help="Weight of the flatten (dihedral angle) regulariser, mesh decoder (default 5e-4).",
)
@click.option(
    "--laplacian-weight",
    type=click.FloatRange(min=0),
    default=None,
    help="Weight of the Laplacian regulariser, mesh decoder (default 5e-3).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--eval-every", type=click.IntRange(min=1), default=50, show_default=True)
@click.option(
    "--layout",
    type=click.Choice(["meshstyle", "original"]),
    default="meshstyle",
    show_default=True,
    help="The data's conventions (original: Kato et al.'s ShapeNet files).",
)
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16"]),
    default="auto",
    show_default=True,
    help="What the encoder trains in: auto is bf16 where the CPU (AMX, AVX512-BF16) or GPU "
    "runs it fast, else fp32; the decoder and losses stay in fp32.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@_device_options
@click.pass_context
def train(
    ctx: click.Context,
    data,
    run,
    classes,
    decoder,
    iterations,
    minutes,
    batch_size,
    lr,
    lr_schedule,
    warmup_steps,
    batch_norm,
    flatten_weight,
    laplacian_weight,
    seed,
    eval_every,
    layout,
    precision,
    quiet,
    device,
    threads,
) -> None:
    """Train a reconstructor on DATA's train split, validating on its val split."""
    resolved = _runtime(device, threads)
    from meshstyle.commands.reconstruct import train_run
    from meshstyle.reconstruct.train import TrainSettings

    if iterations is None and minutes is None:
        iterations = 1000
    defaults = TrainSettings()  # for the weights not given
    if lr is None:
        lr = _LEARNING_RATES[decoder]
    if flatten_weight is None:
        flatten_weight = defaults.flatten_weight
    if laplacian_weight is None:
        laplacian_weight = defaults.laplacian_weight
    settings = TrainSettings(
        decoder=decoder,
        layout=layout,
        classes=tuple(_class_list(classes) or ()),
        batch_size=batch_size,
        learning_rate=lr,
        lr_schedule=lr_schedule,
        warmup_steps=warmup_steps,
        batch_norm=batch_norm,
        flatten_weight=flatten_weight,
        laplacian_weight=laplacian_weight,
        seed=seed,
        eval_every=eval_every,
        precision=precision,
    )
    given = _given_settings(ctx, settings)
    outcome = train_run(data, run, settings, iterations, minutes, resolved, quiet, given)
    val = "-" if outcome.val_iou is None else f"{outcome.val_iou:.4f}"
    click.echo(
        f"{outcome.steps_now} steps in {outcome.seconds_now:.0f}s "
        f"({outcome.steps} in total); validation IoU {val}; wrote {outcome.run}"
    )


def _png_name(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    # The sheet is PNG data whatever its name: under .jpg or the like it would be taken
    # for what it is not.
    if value is not None and value.suffix.lower() != ".png":
        raise click.BadParameter(f"{value}: the sheet is a PNG; give a name ending in .png")
    return value


@reconstruct.command("eval")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--model", "model_dir", required=True, type=click.Path(path_type=Path))
@click.option(
    "--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of the table.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the JSON to this file (a new one, or an earlier report with --overwrite).",
)
@click.option(
    "--sheet",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    callback=_png_name,
    help="Also draw a PNG (a name ending in .png): inputs beside renders of their "
    "reconstructions and the truth.",
)
@click.option(
    "--inside",
    type=click.Choice(["nonzero", "parity"]),
    default="nonzero",
    show_default=True,
    help="How a predicted mesh fills voxels: where its surface winds round a voxel's centre "
    "(nonzero), or where a ray crosses it an odd number of times (parity: a part that a "
    "folded surface wraps twice comes out empty).",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an earlier report (-o) or sheet (--sheet, a PNG) of the same name "
    "(never a file of DATA or of the run).",
)
@_device_options
def evaluate(
    data, model_dir, split, as_json, output, sheet, inside, overwrite, device, threads
) -> None:
    """Per-class voxel IoU of RUN's model on DATA's split (all objects, all 24 views)."""
    resolved = _runtime(device, threads)
    from meshstyle.commands.reconstruct import evaluate_run, iou_table

    result = evaluate_run(data, model_dir, split, resolved, output, sheet, inside, overwrite)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        from rich.console import Console

        Console().print(iou_table(result))


@reconstruct.command("make-data")
@click.argument("output", type=click.Path(file_okay=False, path_type=Path))
@click.option("--classes", default="chair,table,lamp,airplane,vessel", show_default=True)
@click.option("--train", "n_train", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--val", "n_val", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--test", "n_test", type=click.IntRange(min=1), default=40, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-q", "--quiet", is_flag=True)
def make_data(output, classes, n_train, n_val, n_test, seed, quiet) -> None:
    """Render a procedural data set (objects per class and split) into OUTPUT: a new or
    empty folder, or a data set that other classes or splits are added to."""
    from meshstyle.commands.reconstruct import make_data as run

    counts = {"train": n_train, "val": n_val, "test": n_test}
    written = run(output, _class_list(classes), counts, seed, quiet)
    click.echo(f"wrote {len(written)} files to {output}")


@reconstruct.command("check-data")
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--layout",
    type=click.Choice(["meshstyle", "original"]),
    default="meshstyle",
    show_default=True,
)
@click.option(
    "--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True
)
@click.option("--classes", default=None, help="Comma-separated class names (default: all).")
@click.option(
    "--objects",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Objects checked per class.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def check_data(data, layout, split, classes, objects, as_json) -> None:
    """Render the voxels' surface from the layout's cameras and compare with the masks."""
    from meshstyle.commands.reconstruct import check_data as run
    from meshstyle.reconstruct.check import PASS_IOU

    result = run(data, layout, split, _class_list(classes), objects)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "layout": layout,
                    "per_class": result.per_class,
                    "mean": result.mean,
                    "worst": result.worst,
                    "objects": result.objects,
                    "passed": result.passed,
                    "silhouette_ceiling": result.ceiling,
                },
                indent=2,
            )
        )
    else:
        click.echo(f"{'class':<16}{'mask IoU':>10}{'ceiling':>10}")
        for name, value in result.per_class.items():
            click.echo(f"{name:<16}{value:>10.4f}{result.ceiling[name]:>10.4f}")
        ceiling = sum(result.ceiling.values()) / len(result.ceiling)
        click.echo(
            f"{'mean':<16}{result.mean:>10.4f}{ceiling:>10.4f}  (worst object {result.worst:.4f})"
        )
        click.echo(
            "mask IoU: the voxels' surface rendered against the alpha masks; ceiling: voxel "
            "IoU of the 24 masks' visual hull, about the best silhouettes can reach"
        )
    if not result.passed:
        raise click.ClickException(
            f"{data}: voxels and masks disagree (mean IoU {result.mean:.3f} < {PASS_IOU}); "
            f"the files do not follow the '{layout}' layout"
        )
    if not as_json:
        click.echo(f"layout '{layout}' confirmed on {result.objects} objects")

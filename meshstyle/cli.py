"""The ``meshstyle`` command line: a click group with one thin function per subcommand.

Heavy modules (torch, numba, trimesh) are imported inside the commands so that
``meshstyle --version`` and ``--help`` answer at once.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import click

from meshstyle import __version__

DEVICE_CHOICE = click.Choice(["auto", "cpu", "cuda"])


class FiniteFloat(click.ParamType):
    """A float that is not NaN or infinite (``float("nan")`` parses, and renders nothing)."""

    name = "float"

    def convert(self, value, param, ctx):
        import math

        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


FINITE_FLOAT = FiniteFloat()


def _finite(ctx: click.Context, param: click.Parameter, value):
    """Option callback: a range type lets NaN through (every comparison with it is false)."""
    import math

    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value!r} is not a finite number.", ctx, param)
    return value


class UserError(click.ClickException):
    """A failure caused by the user's input or environment: one line, exit code 1."""

    exit_code = 1

    def show(self, file=None) -> None:
        click.secho(f"error: {self.format_message()}", err=True, fg="red")


def _user_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions that describe bad input; imported lazily to keep start-up fast."""
    types: list[type[BaseException]] = [ValueError, FileNotFoundError, PermissionError, OSError]
    return tuple(types)


class MeshstyleGroup(click.Group):
    """Turns errors into one-line messages; ``--debug`` shows the traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            click.secho("interrupted", err=True, fg="yellow")
            raise SystemExit(130) from None
        except _user_error_types() as exc:
            if ctx.obj and ctx.obj.get("debug"):
                traceback.print_exc()
            raise UserError(str(exc)) from None
        except Exception as exc:
            if ctx.obj and ctx.obj.get("debug"):
                traceback.print_exc()
            raise UserError(
                f"internal error: {type(exc).__name__}: {exc} (run with --debug for details)"
            ) from None


@click.group(cls=MeshstyleGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="meshstyle")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Edit 3D meshes with 2D supervision: style transfer and DeepDream on meshes."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def device_options(func):
    """``--device`` and ``--threads``, shared by every command that computes."""
    func = click.option(
        "--threads",
        type=click.IntRange(min=1),
        default=None,
        help="CPU threads for numba and torch (default: all cores).",
    )(func)
    return click.option(
        "--device",
        type=DEVICE_CHOICE,
        default="auto",
        show_default=True,
        help="Where to compute: a GPU when one is usable, else the CPU.",
    )(func)


def _setup_runtime(device: str, threads: int | None):
    from meshstyle.runtime import configure_threads, resolve_device

    try:
        resolved = resolve_device(device)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from None
    configure_threads(threads)
    return resolved


@cli.command()
@click.argument("mesh", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Output image: .png for one view, .gif for a turntable.",
)
@click.option("--image-size", type=click.IntRange(8, 4096), default=256, show_default=True)
@click.option("--elevation", type=FINITE_FLOAT, default=30.0, show_default=True, help="Degrees.")
@click.option("--azimuth", type=FINITE_FLOAT, default=45.0, show_default=True, help="Degrees.")
@click.option(
    "--distance",
    type=click.FloatRange(min=0.0, min_open=True),
    default=2.732,
    show_default=True,
    callback=_finite,
)
@click.option(
    "--frames",
    type=click.IntRange(1, 720),
    default=36,
    show_default=True,
    help="Turntable frames (GIF output).",
)
@click.option("--texture-size", type=click.IntRange(1, 16), default=4, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@device_options
def render(
    mesh: Path,
    output: Path,
    image_size: int,
    elevation: float,
    azimuth: float,
    distance: float,
    frames: int,
    texture_size: int,
    overwrite: bool,
    device: str,
    threads: int | None,
) -> None:
    """Render MESH to a PNG (one view) or a turntable GIF."""
    from meshstyle.fsutil import check_output_file
    from meshstyle.mesh import referenced_files

    suffix = output.suffix.lower()
    if suffix not in (".png", ".gif"):
        raise click.BadParameter(
            f"output must end in .png or .gif; got {output.name!r}", param_hint="-o/--output"
        )
    # The OBJ's material and texture files are inputs too.
    inputs = (mesh, *referenced_files(mesh).values())
    check_output_file(output, overwrite=overwrite, inputs=inputs)
    resolved = _setup_runtime(device, threads)
    from meshstyle.commands.render import render_mesh_to_file
    from meshstyle.console import step_progress

    with step_progress(
        f"rendering {mesh.name}", total=frames if suffix == ".gif" else 1
    ) as advance:
        render_mesh_to_file(
            mesh,
            output,
            image_size=image_size,
            elevation=elevation,
            azimuth=azimuth,
            distance=distance,
            frames=frames if suffix == ".gif" else 1,
            texture_size=texture_size,
            device=resolved,
            progress=advance,
        )
    click.echo(f"wrote {output}")


def edit_options(job_folder: str, default_preset: str):
    """Options shared by stylize and deepdream; ``None`` means: take the preset's value.

    Args:
        job_folder: how a job's folder is named, for the help text.
        default_preset: the command's own preset, for the help text.
    """
    from meshstyle.settings import preset_names

    options = [
        click.option(
            "-o",
            "--output",
            type=click.Path(file_okay=False, path_type=Path),
            default=Path("out"),
            show_default=True,
            help=f"Output folder; each job writes OUT/{job_folder}/.",
        ),
        click.option(
            "--preset",
            default=None,
            help=f"Named settings ({', '.join(preset_names())}) or a .toml file; "
            f"default: {default_preset}. Flags override it.",
        ),
        click.option(
            "--iterations", type=click.IntRange(min=0), default=None, help="Optimisation steps."
        ),
        click.option(
            "--image-size",
            type=click.IntRange(8, 2048),
            default=None,
            help="Rendered view size in pixels.",
        ),
        click.option("--views", type=click.IntRange(1, 64), default=None, help="Views per step."),
        click.option(
            "--texture-size",
            type=click.IntRange(1, 16),
            default=None,
            help="Texture cube size T per face (T x T x T colours).",
        ),
        click.option(
            "--texture-mode",
            type=click.Choice(["uv", "cubes"]),
            default=None,
            help="uv: one smooth texture image over the mesh's UVs (or an automatic unwrap); "
            "cubes: the paper's independent per-face cubes.",
        ),
        click.option(
            "--texture-resolution",
            type=click.IntRange(16, 4096),
            default=None,
            help="Side of the UV texture image in texels.",
        ),
        click.option(
            "--smoothness",
            type=click.FloatRange(min=0),
            default=None,
            help="How broadly a shape step bends the surface (λ of I + λL); 0: per vertex.",
        ),
        click.option(
            "--lr",
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            help="Adam learning rate.",
        ),
        click.option(
            "--vertex-lr-scale",
            type=click.FloatRange(min=0),
            default=None,
            help="Multiplier of --lr for the vertices.",
        ),
        click.option(
            "--texture-lr-scale",
            type=click.FloatRange(min=0),
            default=None,
            help="Multiplier of --lr for the colours.",
        ),
        click.option(
            "--seed", type=int, default=None, help="Random seed; CPU runs repeat exactly."
        ),
        click.option("--network", default=None, help="vgg19, torchvision-vgg16 or a file."),
        click.option(
            "--precision",
            type=click.Choice(["auto", "fp32", "bf16"]),
            default=None,
            help="The network's arithmetic: auto (bf16 where the CPU or GPU runs it fast, "
            "else fp32; see `meshstyle info`), fp32 or bf16.",
        ),
        click.option(
            "--occlusion-aware/--no-occlusion-aware",
            default=None,
            help="Pixels behind nearer surfaces do not pull edges (the paper: off).",
        ),
        click.option("--recursive", is_flag=True, help="Search folders recursively."),
        click.option("--overwrite", is_flag=True, help="Redo jobs that are already complete."),
        click.option("--shard", default=None, help="Run the K-th of N slices of the jobs: K/N."),
        click.option(
            "--max-faces",
            type=click.IntRange(min=1),
            default=300_000,
            show_default=True,
            help="Refuse meshes with more faces.",
        ),
        click.option(
            "--decimate",
            type=click.IntRange(min=4),
            default=None,
            help="Simplify meshes above N faces to N faces first.",
        ),
        click.option("-q", "--quiet", is_flag=True, help="No progress output."),
        click.option("-v", "--verbose", count=True, help="Print losses and timing."),
    ]

    def decorate(func):
        for option in reversed(options):
            func = option(func)
        return device_options(func)

    return decorate


def _run_edit(ctx: click.Context, kind: str, meshes, styles, opts: dict, overrides: dict) -> None:
    from meshstyle.commands.edit import run_edit

    debug = bool(ctx.obj and ctx.obj.get("debug"))
    code = run_edit(
        kind, meshes, styles, opts, overrides, debug=debug, setup_runtime=_setup_runtime
    )
    if code:
        ctx.exit(code)


_EDIT_KEYS = (
    "iterations",
    "image_size",
    "views",
    "texture_size",
    "texture_mode",
    "texture_resolution",
    "smoothness",
    "lr",
    "vertex_lr_scale",
    "texture_lr_scale",
    "seed",
    "network",
    "precision",
    "occlusion_aware",
)


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "-s", "--style", "styles", multiple=True, help="A style image (repeatable), any file name."
)
@click.option(
    "--style-weight", type=click.FloatRange(min=0), default=None, help="Weight of the Gram loss."
)
@click.option(
    "--content-weight",
    type=click.FloatRange(min=0),
    default=None,
    help="Weight of the squared vertex displacement.",
)
@click.option(
    "--tv-weight",
    type=click.FloatRange(min=0),
    default=None,
    help="Weight of the colour smoothness inside the silhouette.",
)
@click.option(
    "--colour-weight",
    type=click.FloatRange(min=0),
    default=None,
    help="Weight of the match between the rendered colours and the painting's (0: off).",
)
@edit_options("<mesh>__<style>", "fast")
@click.pass_context
def stylize(ctx: click.Context, inputs, styles, **opts) -> None:
    """Paint meshes in the style of images and bend their shape to match.

    INPUTS are meshes (files, folders, globs) and style images, told apart by suffix (a
    folder by what it holds); every mesh is paired with every style image.
    """
    from meshstyle.commands.edit import classify_inputs

    meshes, images = classify_inputs(inputs, styles, recursive=opts["recursive"])
    if not meshes:
        raise click.UsageError("no mesh given (MESH files, folders or globs)")
    if not images:
        hint = ""
        if any(Path(item).is_dir() for item in inputs):
            # Say how folders were read: the likely reason no painting was found.
            hint = (
                "; a folder holding meshes is a folder of meshes: give its paintings with "
                "--style"
                + ("" if opts["recursive"] else ", and --recursive looks into sub-folders")
            )
        raise click.UsageError(
            f"no style image given (a .jpg/.png file, a folder of them, or --style FILE){hint}"
        )
    keys = _EDIT_KEYS + ("style_weight", "content_weight", "tv_weight", "colour_weight")
    _run_edit(ctx, "stylize", meshes, images, opts, {k: opts[k] for k in keys})


@cli.command()
@click.argument("meshes", nargs=-1, required=True)
@click.option("--layer", default=None, help="Feature layer to amplify, e.g. conv4_3.")
@click.option("--channel", type=click.IntRange(min=0), default=None, help="One channel only.")
@click.option(
    "--edge-weight",
    type=click.FloatRange(min=0),
    default=None,
    help="Weight of the edge-length variance regulariser.",
)
@edit_options("<mesh>__deepdream-<layer>", "deepdream")
@click.pass_context
def deepdream(ctx: click.Context, meshes, **opts) -> None:
    """Grow on meshes what a network sees (MESHES: files, folders or globs)."""
    keys = _EDIT_KEYS + ("layer", "edge_weight")
    overrides = {k: opts[k] for k in keys}
    if opts["channel"] is not None:
        overrides["channel"] = opts["channel"]
    _run_edit(ctx, "deepdream", list(meshes), [], opts, overrides)


@cli.command()
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out"),
    show_default=True,
    help="Output folder; the job writes OUT/<mesh>__fit/.",
)
@click.option(
    "--template",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Mesh to deform (default: an icosphere of 642 vertices).",
)
@click.option(
    "--radius",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=0.3,
    show_default=True,
    callback=_finite,
    help="Template size: its longest half-extent, the target spanning [-1, 1].",
)
@click.option(
    "--views", type=click.IntRange(1, 64), default=8, show_default=True, help="Training views."
)
@click.option("--iterations", type=click.IntRange(min=1), default=300, show_default=True)
@click.option(
    "--image-size",
    type=click.IntRange(16, 1024),
    default=64,
    show_default=True,
    help="Silhouette size in pixels.",
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=0.01,
    show_default=True,
    callback=_finite,
)
@click.option(
    "--smooth-weight",
    type=click.FloatRange(min=0),
    default=0.05,
    show_default=True,
    callback=_finite,
    help="Weight of the Laplacian smoothness term.",
)
@click.option("--overwrite", is_flag=True, help="Replace a complete earlier result.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@device_options
def fit(
    target: Path,
    output: Path,
    template: Path | None,
    radius: float,
    views: int,
    iterations: int,
    image_size: int,
    lr: float,
    smooth_weight: float,
    overwrite: bool,
    quiet: bool,
    device: str,
    threads: int | None,
) -> None:
    """Deform a sphere until its silhouettes match TARGET's from a ring of views.

    Only silhouettes supervise the fit, so it shows that the renderer's gradients carry
    shape. The fit is scored by silhouette IoU on 24 views it never used.
    """
    resolved = _setup_runtime(device, threads)
    from meshstyle.commands.fit import fit_to_folder
    from meshstyle.console import step_progress
    from meshstyle.fit import FitSettings

    settings = FitSettings(
        iterations=iterations,
        lr=lr,
        smooth_weight=smooth_weight,
        image_size=image_size,
        views_per_step=views,
    )
    with step_progress(f"fitting {target.name}", total=iterations, quiet=quiet) as advance:
        outcome = fit_to_folder(
            target,
            output,
            template=template,
            radius=radius,
            views=views,
            settings=settings,
            device=resolved,
            overwrite=overwrite,
            progress=lambda step, loss: advance(step),
        )
    click.echo(
        f"held-out silhouette IoU {outcome.iou_before:.3f} -> {outcome.iou_after:.3f} "
        f"in {outcome.seconds:.1f}s; wrote {outcome.folder}"
    )


@cli.command()
def info() -> None:
    """Print versions, backend, threads, CUDA and feature-network status."""
    from meshstyle.commands.info import collect_info

    for key, value in collect_info().items():
        click.echo(f"{key:<22}{value}")


def _add_reconstruct() -> None:
    # The reconstruct group lives in its own module; importing it needs only click.
    from meshstyle.commands.reconstruct_cli import reconstruct

    cli.add_command(reconstruct)


_add_reconstruct()


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="meshstyle", obj={})


if __name__ == "__main__":
    sys.exit(main())

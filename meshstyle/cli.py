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
@click.option("--elevation", type=float, default=30.0, show_default=True, help="Degrees.")
@click.option("--azimuth", type=float, default=45.0, show_default=True, help="Degrees.")
@click.option(
    "--distance", type=click.FloatRange(min=0.0, min_open=True), default=2.732, show_default=True
)
@click.option(
    "--frames",
    type=click.IntRange(1, 720),
    default=36,
    show_default=True,
    help="Turntable frames (GIF output).",
)
@click.option("--texture-size", type=click.IntRange(1, 16), default=4, show_default=True)
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
    device: str,
    threads: int | None,
) -> None:
    """Render MESH to a PNG (one view) or a turntable GIF."""
    suffix = output.suffix.lower()
    if suffix not in (".png", ".gif"):
        raise click.BadParameter(
            f"output must end in .png or .gif; got {output.name!r}", param_hint="-o/--output"
        )
    resolved = _setup_runtime(device, threads)
    from meshstyle.commands.render import render_mesh_to_file

    with _progress(f"rendering {mesh.name}", total=frames if suffix == ".gif" else 1) as advance:
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


@cli.command()
def info() -> None:
    """Print versions, backend, threads, CUDA and feature-network status."""
    from meshstyle.commands.info import collect_info

    for key, value in collect_info().items():
        click.echo(f"{key:<22}{value}")


class _progress:
    """A rich progress bar on stderr that steps to the count a callback reports."""

    def __init__(self, description: str, total: int):
        self.description = description
        self.total = total

    def __enter__(self):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._progress.__enter__()
        task = self._progress.add_task(self.description, total=self.total)
        return lambda done: self._progress.update(task, completed=done)

    def __exit__(self, *exc):
        return self._progress.__exit__(*exc)


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="meshstyle", obj={})


if __name__ == "__main__":
    sys.exit(main())

"""The batch console's job bar: what it says while a job runs."""

from types import SimpleNamespace

from meshstyle.console import BatchConsole
from meshstyle.edit import StepReport


def test_the_job_bar_says_what_runs_between_steps():
    console = BatchConsole(1, 5, quiet=True)
    with console:
        console.job_started(0, SimpleNamespace(name="bunny__munch1"))
        bar = console.progress.tasks[-1]
        assert bar.description == "bunny__munch1 (compiling on first use)"
        console.phase("unwrapping UVs of 4968 faces")
        assert bar.description == "bunny__munch1 (unwrapping UVs of 4968 faces)"
        console.phase("")
        assert bar.description == "bunny__munch1 (compiling on first use)"
        console.step(StepReport(1, 5, {"loss": 2.0}))
        assert bar.description == "bunny__munch1" and bar.completed == 1
        console.phase("writing the mesh, turntable and sheet")
        assert bar.description == "bunny__munch1 (writing the mesh, turntable and sheet)"
        console.job_started(1, SimpleNamespace(name="teapot__munch1"))
        assert console.progress.tasks[-1].description == "teapot__munch1"

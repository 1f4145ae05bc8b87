"""What a person sees while commands run: progress bars (with the loss), then a summary table."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table


class BatchConsole:
    """Progress bars on stderr (one for jobs, one for the current job's steps).

    Args:
        jobs: number of jobs.
        iterations: steps per job.
        quiet: show nothing while running.
        verbose: print each job's losses and timing when it ends.
    """

    def __init__(self, jobs: int, iterations: int, *, quiet: bool = False, verbose: int = 0):
        self.console = Console(stderr=True)
        # The summary is the run's result: on stdout, so that ``> log`` keeps it. A terminal
        # folds long cells to its width; a log file gets whole names and paths (rich would
        # otherwise assume 80 columns and cut the job names short).
        self.results = Console()
        if not self.results.is_terminal:
            self.results = Console(width=100_000)
        self.quiet = quiet
        self.verbose = verbose
        self.jobs = jobs
        self.iterations = iterations
        self.progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[loss]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=quiet,
            transient=True,
        )
        self._jobs_task = None
        self._step_task = None
        self._label = self._name = ""

    def __enter__(self) -> BatchConsole:
        self.progress.__enter__()
        if self.jobs > 1:
            self._jobs_task = self.progress.add_task("jobs", total=self.jobs, loss="")
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def job_started(self, index: int, job) -> None:
        if self._step_task is not None:
            self.progress.remove_task(self._step_task)
        self._label = f"{job.name} (compiling on first use)" if index == 0 else job.name
        self._step_task = self.progress.add_task(
            self._label, total=max(self.iterations, 1), loss=""
        )
        self._name = job.name

    def job_waiting(self, index: int, job) -> None:
        """Say why the run pauses: another run is writing this job."""
        if not self.quiet:
            self.console.print(
                f"{escape(job.name)}: another meshstyle run is writing it; waiting for it",
                soft_wrap=True,
                highlight=False,
            )

    def phase(self, what: str) -> None:
        """Show what the job is busy with besides steps ("": back to its own label)."""
        if self._step_task is not None:
            label = f"{self._name} ({what})" if what else self._label
            self.progress.update(self._step_task, description=label)

    def step(self, report) -> None:
        if self._step_task is None:
            return
        self.progress.update(
            self._step_task,
            completed=report.step,
            description=self._name,
            loss=f"loss {report.parts.get('loss', float('nan')):.4g}",
        )

    def job_ended(self, index: int, outcome) -> None:
        if self._jobs_task is not None:
            self.progress.update(self._jobs_task, completed=index + 1)
        if self.verbose and not self.quiet:
            final = outcome.losses.get("final", {}) if outcome.losses else {}
            parts = ", ".join(
                f"{k} {v:.4g}" for k, v in final.items() if k not in ("step", "seconds")
            )
            timing = ", ".join(f"{k} {v:.1f}s" for k, v in outcome.timing.items())
            self.console.print(
                f"{outcome.job.name}: {outcome.status} in {outcome.seconds:.1f}s"
                + (f"; {parts}" if parts else "")
                + (f"; {timing}" if timing else "")
            )

    def summary(self, outcomes, out: Path) -> None:
        """The table of jobs, one unwrapped line per failure (even with ``--quiet``) and the
        report's path, all on stdout: a log of stdout has the failures the table points to.

        The failure lines are never folded, so a long path in a message stays whole and can
        be searched for or copied.
        """
        failures = [o for o in outcomes if o.status == "failed"]
        if not self.quiet:
            self._table(outcomes, out)
        for o in failures:
            self.results.print(
                f"[red]failed[/red] {escape(o.job.name)}: {escape(o.error or '')}",
                soft_wrap=True,
                highlight=False,
            )
        if not self.quiet:
            self.results.print(
                f"report: {out / 'report.json'} and {out / 'report.html'}",
                soft_wrap=True,
                highlight=False,
            )

    def _table(self, outcomes, out: Path) -> None:
        table = Table(title=f"meshstyle: {len(outcomes)} job(s) in {out}")
        table.add_column("job")
        table.add_column("status")
        table.add_column("seconds", justify="right")
        table.add_column("final loss", justify="right")
        table.add_column("output / error", overflow="fold")
        colours = {"done": "green", "skipped": "cyan", "failed": "red"}
        for o in outcomes:
            final = o.losses.get("final", {}) if o.losses else {}
            loss = final.get("loss")
            where = "see below" if o.status == "failed" else str(out / o.job.name)
            table.add_row(
                escape(o.job.name),
                f"[{colours.get(o.status, 'white')}]{o.status}[/]",
                f"{o.seconds:.1f}",
                "" if loss is None else f"{loss:.4g}",
                escape(where),
            )
        self.results.print(table)


class step_progress:  # noqa: N801 - used like a function, in a with statement
    """A progress bar on stderr that steps to the count a callback reports.

    Args:
        description: the bar's label.
        total: the count at which it is full.
        quiet: show nothing.
    """

    def __init__(self, description: str, total: int, quiet: bool = False):
        self.description = description
        self.total = total
        self.quiet = quiet

    def __enter__(self):
        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
            disable=self.quiet,
        )
        self._progress.__enter__()
        task = self._progress.add_task(self.description, total=self.total)
        return lambda done: self._progress.update(task, completed=done)

    def __exit__(self, *exc):
        return self._progress.__exit__(*exc)

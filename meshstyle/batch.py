"""Running a list of jobs: one failure never stops the others; skips are honest.

The runner knows nothing of what a job computes: a command hands it the jobs, a function
that writes one job's files into a folder, and a function that records what makes a job's
result (its inputs' hashes and settings). The runner keeps the folder contract of
:mod:`meshstyle.jobfolder`: a job another run is writing is left to it and looked at again
once the other jobs are done, a complete result is skipped only when made from the same
inputs and settings, and nothing meshstyle did not write is touched.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from meshstyle.jobfolder import JobBusy, check_replaceable, job_lock, write_job_folder
from meshstyle.jobs import Job


@dataclass(frozen=True)
class JobOutcome:
    """What happened to one job, for the summary table and the reports.

    Attributes:
        job: the job.
        status: "done", "skipped" (complete from an earlier run, same inputs and
            settings), "failed" or "interrupted".
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


def describe_error(exc: BaseException) -> str:
    """One line for a job's failure: the input errors carry their own file and rule."""
    if isinstance(exc, ValueError | OSError):
        return str(exc)
    return f"internal error: {type(exc).__name__}: {exc}"


def run_batch(
    jobs: list[Job],
    out: Path,
    *,
    write: Callable[[Job, Path], dict],
    made_from: Callable[[Job], dict],
    overwrite: bool = False,
    debug: bool = False,
    on_job_start: Callable[[int, Job], None] | None = None,
    on_job_end: Callable[[int, JobOutcome], None] | None = None,
    on_job_wait: Callable[[int, Job], None] | None = None,
    on_interrupt: Callable[[list[JobOutcome]], None] | None = None,
) -> list[JobOutcome]:
    """Run every job that is not complete already, each under its lock.

    Args:
        jobs: the jobs, in order.
        out: the output folder (must exist and be writable).
        write: fills a job's folder; returns its marker summary with ``losses``,
            ``outputs`` (file names by kind) and ``timing``. Raises on failure.
        made_from: the record of what makes a job's result (see
            :func:`meshstyle.jobfolder.what_is_at`).
        overwrite: redo complete jobs, and replace results made from other inputs.
        debug: print the traceback of a failed job.
        on_job_start, on_job_end: progress callbacks, with the job's index.
        on_job_wait: called before waiting for a job another run is writing.
        on_interrupt: called with the outcomes so far (the interrupted job last) on Ctrl-C,
            before the interrupt propagates.

    Returns:
        One outcome per job, in the jobs' order.
    """
    outcomes: dict[int, JobOutcome] = {}
    deferred: list[int] = []

    def attempt(index: int, *, wait: bool) -> bool:
        job = jobs[index]
        try:
            with job_lock(out, job.name, wait=wait):
                if on_job_start:
                    on_job_start(index, job)
                outcomes[index] = _run_one(job, out, write, made_from, overwrite, debug)
        except JobBusy:
            return False
        except KeyboardInterrupt:
            if on_interrupt:
                done = [outcomes[i] for i in sorted(outcomes)]
                on_interrupt(done + [JobOutcome(job, "interrupted")])
            raise
        except OSError as exc:  # the lock file itself cannot be made
            outcomes[index] = JobOutcome(job, "failed", error=describe_error(exc))
        if on_job_end:
            on_job_end(index, outcomes[index])
        return True

    for index in range(len(jobs)):
        if not attempt(index, wait=False):
            deferred.append(index)
    # Jobs another run was writing: wait for it, then skip them if it finished them.
    for index in deferred:
        if on_job_wait:
            on_job_wait(index, jobs[index])
        attempt(index, wait=True)
    return [outcomes[i] for i in range(len(jobs))]


def _run_one(job: Job, out: Path, write, made_from, overwrite: bool, debug: bool) -> JobOutcome:
    """One job, its lock held: skip, refuse or write it."""
    start = time.perf_counter()
    folder = out / job.name
    try:
        record = made_from(job)
        existing = check_replaceable(folder, record, overwrite=overwrite)
        if existing.state == "same" and not overwrite:
            return _outcome(job, "skipped", folder, existing.summary, 0.0)
        summary = write_job_folder(
            out, job.name, record, lambda tmp: write(job, tmp), overwrite=overwrite
        )
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        if debug:
            traceback.print_exc()
        return JobOutcome(
            job, "failed", seconds=time.perf_counter() - start, error=describe_error(exc)
        )
    return _outcome(job, "done", folder, summary, time.perf_counter() - start)


def _outcome(job: Job, status: str, folder: Path, summary: dict, seconds: float) -> JobOutcome:
    outputs = summary.get("outputs", {})
    return JobOutcome(
        job,
        status,
        seconds=seconds,
        losses=summary.get("losses", {}),
        outputs={k: str(folder / v) for k, v in outputs.items() if isinstance(v, str)},
        timing=summary.get("timing", {}) if status == "done" else {},
    )

"""Running a list of edit jobs: one failure never stops the others; a report at the end."""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from meshstyle.commands.edit import JobOutcome, run_job, skipped_outcome
from meshstyle.jobs import Job
from meshstyle.runtime import Device
from meshstyle.settings import EditSettings

REPORT_NAME = "report.json"


def check_writable(out: Path) -> None:
    """Fail early, with a clear message, when OUT cannot hold results."""
    import tempfile

    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test."):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PermissionError(f"{out}: output folder cannot be written ({reason})") from None


def describe_error(exc: BaseException) -> str:
    """One line for a job's failure: the input errors carry their own file and rule."""
    from meshstyle.images import ImageError
    from meshstyle.mesh import MeshError

    if isinstance(exc, MeshError | ImageError | ValueError | OSError):
        return str(exc)
    return f"internal error: {type(exc).__name__}: {exc}"


def run_batch(
    jobs: list[Job],
    settings: EditSettings,
    out: Path,
    device: Device,
    *,
    overwrite: bool = False,
    max_faces: int | None = None,
    decimate: int | None = None,
    debug: bool = False,
    on_job_start: Callable[[int, Job], None] | None = None,
    on_step: Callable | None = None,
    on_job_end: Callable[[int, JobOutcome], None] | None = None,
) -> list[JobOutcome]:
    """Run every job, skipping complete ones unless ``overwrite``; write OUT/report.json.

    Returns:
        One outcome per job, in order.
    """
    check_writable(out)
    outcomes: list[JobOutcome] = []
    for index, job in enumerate(jobs):
        if on_job_start:
            on_job_start(index, job)
        if job.is_complete(out) and not overwrite:
            outcome = skipped_outcome(job, out)
        else:
            start = time.perf_counter()
            try:
                outcome = run_job(
                    job,
                    settings,
                    out,
                    device,
                    max_faces=max_faces,
                    decimate=decimate,
                    progress=on_step,
                )
            except KeyboardInterrupt:
                write_report(out, outcomes + [JobOutcome(job, "interrupted")], settings)
                raise
            except Exception as exc:
                if debug:
                    traceback.print_exc()
                outcome = JobOutcome(
                    job, "failed", seconds=time.perf_counter() - start, error=describe_error(exc)
                )
        outcomes.append(outcome)
        if on_job_end:
            on_job_end(index, outcome)
    write_report(out, outcomes, settings)
    return outcomes


def write_report(out: Path, outcomes: list[JobOutcome], settings: EditSettings) -> Path:
    """OUT/report.json: per job inputs, status, seconds, final losses, outputs or error."""
    from meshstyle.fsutil import atomic_write_text

    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    report = {
        "jobs": [o.to_json() for o in outcomes],
        "counts": counts,
        "settings": settings.to_toml(),
    }
    return atomic_write_text(out / REPORT_NAME, json.dumps(report, indent=2))

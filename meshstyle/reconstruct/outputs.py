"""Where the reconstruct commands may write: a run folder, a data folder, an eval report.

Each check runs before any work and refuses, with a message naming the path and the rule,
an output that would replace or mix with something the user had:

- ``train -o RUN``: a new or empty folder (a new run), or a run ``train`` wrote (resumed);
- ``make-data DATA``: a new or empty folder, or a data set (only ``{class}_{split}_images.npz``
  and ``_voxels.npz`` files) that new classes or splits are added to;
- ``eval -o FILE``: a new file, or an earlier eval report with ``--overwrite``;
- ``predict``: an output file never replaces an input (see :func:`replaced_input`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from meshstyle.fsutil import check_writable

#: What ``train`` writes into a run folder (see :mod:`meshstyle.reconstruct.train`).
RUN_FILES = ("config.json", "checkpoint.pt", "model.pt", "log.csv", "curves.png")

#: A data set's file: ``{class}_{split}_images.npz`` or ``{class}_{split}_voxels.npz``.
DATA_FILE = re.compile(r".+_(train|val|test)_(images|voxels)\.npz")
#: What :func:`meshstyle.fsutil.atomic_path` leaves of a data file when the writer is killed.
DATA_TEMP_FILE = re.compile(r"\..+_(train|val|test)_(images|voxels)\..+\.tmp\.npz")

#: Keys every report written by ``eval -o`` holds.
REPORT_KEYS = ("split", "decoder", "objects", "views_per_object", "iou")


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.is_dir() else []


def is_run_folder(run: Path) -> bool:
    """Whether ``run`` holds a run that ``train`` can resume (its ``checkpoint.pt``)."""
    return (run / "checkpoint.pt").is_file()


def check_run_folder(run: Path) -> bool:
    """Refuse a training output that is neither new, empty, nor a run.

    Returns:
        True when ``run`` is a run to resume, False for a new run.

    Raises:
        FileExistsError: ``run`` is a file, or a folder with other files in it (``train``
            would replace or mix with them).
    """
    if run.exists() and not run.is_dir():
        raise FileExistsError(f"{run}: exists and is not a folder; a run is a folder")
    if is_run_folder(run):
        return True
    entries = _entries(run)
    if entries:
        raise FileExistsError(
            f"{run}: a folder that is not empty and holds no run (no checkpoint.pt; it has "
            f"{entries[0].name}{' and more' if len(entries) > 1 else ''}); training writes "
            f"{', '.join(RUN_FILES)} into it: choose a new or empty folder"
        )
    return False


def check_data_folder(out: Path) -> None:
    """Refuse a ``make-data`` output that is neither new, empty, nor a data set.

    A data set holds only ``{class}_{split}_{images|voxels}.npz`` files; make-data adds
    other classes or splits to it (it never replaces one of its files).

    Raises:
        FileExistsError: ``out`` is a file, or a folder holding anything else.
    """
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder; a data set is a folder")
    foreign = [
        p
        for p in _entries(out)
        if not (p.is_file() and (DATA_FILE.fullmatch(p.name) or DATA_TEMP_FILE.fullmatch(p.name)))
    ]
    if foreign:
        raise FileExistsError(
            f"{out}: a folder that is not a data set ({foreign[0].name} is not a "
            "{class}_{split}_images.npz or _voxels.npz file); make-data writes into a new or "
            "empty folder, or adds classes to a data set it made: choose another folder"
        )


def is_eval_report(path: Path) -> bool:
    """Whether ``path`` is a JSON report written by ``reconstruct eval -o``."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(report, dict) and all(key in report for key in REPORT_KEYS)


def check_eval_outputs(report: Path | None, sheet: Path | None, overwrite: bool) -> None:
    """Refuse eval outputs that would replace a user's file, before the evaluation runs.

    Args:
        report: the ``-o`` JSON file, or None.
        sheet: the ``--sheet`` PNG, or None.
        overwrite: an earlier report or sheet at the same name may be replaced.

    Raises:
        FileExistsError: ``report`` is a file that is not an eval report, or an output exists
            and ``overwrite`` is off.
        PermissionError: an output's folder cannot be created or written.
    """
    if report is not None and sheet is not None and report.resolve() == sheet.resolve():
        raise ValueError(f"{report}: given both as -o and as --sheet; give two names")
    if report is not None and report.exists():
        if not is_eval_report(report):
            raise FileExistsError(
                f"{report}: exists and is not a report written by 'reconstruct eval'; "
                "choose another -o"
            )
        if not overwrite:
            raise FileExistsError(
                f"{report}: already exists (an earlier eval report); use --overwrite to "
                "replace it, or choose another -o"
            )
    if sheet is not None and sheet.exists() and not overwrite:
        raise FileExistsError(
            f"{sheet}: already exists; use --overwrite to replace it, or choose another --sheet"
        )
    for path in (report, sheet):
        if path is not None:
            check_writable(path.parent)


def replaced_input(output: Path, inputs: list[Path]) -> Path | None:
    """The input that writing ``output`` would replace, or None.

    Compared as files (device and inode), so a second name for an input (``./img.png``
    against ``img.png``, a link, a case-insensitive file system) is caught too.
    """
    if not output.exists():
        return None
    for path in inputs:
        try:
            if os.path.samefile(output, path):
                return path
        except OSError:  # an input that is not there: read later, and named then
            continue
    return None

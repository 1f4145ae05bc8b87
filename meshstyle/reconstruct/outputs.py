"""Where the reconstruct commands may write: a run folder, a data folder, an eval report.

Each check runs before any work and refuses, with a message naming the path and the rule,
an output that would replace or mix with something the user had:

- ``train -o RUN``: a new or empty folder (a new run), or a run ``train`` wrote (resumed);
- ``make-data DATA``: a new or empty folder, or a data set (only ``{class}_{split}_images.npz``
  and ``_voxels.npz`` files) that new classes or splits are added to;
- ``eval -o FILE`` and ``--sheet PNG``: a new file, or an earlier report (a PNG for the
  sheet) with ``--overwrite``; never a path in the data folder or a file of the run;
- ``predict``: an output file never replaces an input (see :func:`meshstyle.fsutil.replaced_input`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from meshstyle.fsutil import check_writable, replaced_input

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


#: The first bytes of every PNG file.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def is_png(path: Path) -> bool:
    """Whether ``path`` is a file that starts as a PNG does."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(PNG_SIGNATURE)) == PNG_SIGNATURE
    except OSError:
        return False


def _within(path: Path, folder: Path) -> bool:
    """Whether ``path`` (existing or not) lies in ``folder`` or below it.

    Folders are compared as files (device and inode), so a link to ``folder`` or a second
    spelling of it is caught too; ``path`` is resolved first so that ``..`` steps out.
    """
    if not folder.is_dir():
        return False
    for parent in path.resolve().parents:
        try:
            if os.path.samefile(parent, folder):
                return True
        except OSError:  # a parent not there yet: cannot be the (existing) folder
            continue
    return False


def _input_replaced(path: Path, data: Path | None, run: Path | None) -> str | None:
    """Why writing ``path`` would replace or add to an input of eval, or None.

    The data folder holds data only (make-data adds classes only to a folder of data
    files, and the original layout has names of its own), so nothing is written anywhere
    in it. In the run folder only the files that ``train`` writes are its own: another
    file there (an earlier report or sheet) is the user's to replace.
    """
    if data is not None and _within(path, data):
        return f"is in the data folder {data}"
    if data is not None:
        # A second name (a hard link) of a data file elsewhere.
        replaced = replaced_input(path, [p for p in _entries(data) if p.is_file()])
        if replaced is not None:
            return f"is the data file {replaced}"
    if run is not None and run.is_dir():
        parent = path.resolve().parent
        if path.name in RUN_FILES and parent.is_dir() and os.path.samefile(parent, run):
            return f"is the run's own {path.name} (of --model {run})"
        replaced = replaced_input(path, [run / name for name in RUN_FILES])
        if replaced is not None:
            return f"is the run's own {replaced.name} (of --model {run})"
    return None


def check_eval_outputs(
    report: Path | None,
    sheet: Path | None,
    overwrite: bool,
    data: Path | None = None,
    run: Path | None = None,
) -> None:
    """Refuse eval outputs that would replace a user's file, before the evaluation runs.

    Rules, in order: the sheet's name ends in ``.png``; no output is an input (anywhere
    in the data folder ``data``, or one of :data:`RUN_FILES` of the run folder ``run``),
    even with ``overwrite``; an existing report must be an eval report and an existing
    sheet a PNG, even with ``overwrite``; an existing output is replaced only with
    ``overwrite``.

    Args:
        report: the ``-o`` JSON file, or None.
        sheet: the ``--sheet`` PNG, or None.
        overwrite: an earlier report or sheet at the same name may be replaced.
        data: the data folder evaluated on, or None.
        run: the ``--model`` run folder, or None.

    Raises:
        ValueError: the sheet's name does not end in ``.png``, or one path is given as both.
        FileExistsError: an output is an input, an existing file of another kind, or an
            existing output while ``overwrite`` is off.
        PermissionError: an output's folder cannot be created or written.
    """
    if sheet is not None and sheet.suffix.lower() != ".png":
        # The sheet is always PNG data: under another suffix it would be mistaken for JPEG
        # and the like.
        raise ValueError(f"{sheet}: the sheet is a PNG; give a --sheet name ending in .png")
    if report is not None and sheet is not None and report.resolve() == sheet.resolve():
        raise ValueError(f"{report}: given both as -o and as --sheet; give two names")
    for path, option in ((report, "-o"), (sheet, "--sheet")):
        why = None if path is None else _input_replaced(path, data, run)
        if why is not None:
            raise FileExistsError(
                f"{path}: {why}; eval never writes over or among its inputs, even with "
                f"--overwrite: choose another {option}"
            )
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
    if sheet is not None and sheet.exists():
        if sheet.is_dir():
            raise FileExistsError(f"{sheet}: is a folder; --sheet must be a file name")
        # Not a PNG: surely not an earlier sheet, so the user's own file, never replaced.
        if not is_png(sheet):
            raise FileExistsError(
                f"{sheet}: exists and is not a PNG (so not an earlier sheet); choose another "
                "--sheet"
            )
        if not overwrite:
            raise FileExistsError(
                f"{sheet}: already exists; use --overwrite to replace it, or choose another --sheet"
            )
    for path in (report, sheet):
        if path is not None:
            check_writable(path.parent)

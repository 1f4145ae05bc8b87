"""A job's output folder: written whole or not at all, by one run at a time, never a stranger's.

The contract every command that writes ``OUT/<job>/`` keeps (stylize, deepdream, fit):

- While a job is written, its run holds the lock ``OUT/.<job>.lock`` (an OS file lock, so a
  killed run releases it). A second run into the same OUT never touches that job's files.
- The job is written into a hidden, uniquely named ``OUT/.<job>.XXXX.partial`` folder and
  renamed into place after its completion marker, the last file. A folder without the marker
  is never taken for a finished job.
- The marker records what made the result: the inputs' SHA-256 and the settings. A rerun
  skips a job only when they are the same; a result made from other inputs is replaced only
  with ``--overwrite``.
- The marker also lists the files the job wrote (``files``). A file or folder the user put
  into a finished result is not among them: when the result is replaced it is carried over,
  unchanged, into the new result, and when the new result writes a file of the same name the
  replacement is refused with a message naming it (before the job runs when the old
  result's list already has that name, at the end otherwise). A marker of an older version
  without the list counts the files its ``outputs`` name as the job's. Only the job's own
  files are ever deleted; a replacement cut short between its renames leaves the user's
  files in the hidden ``OUT/.<job>.N.old`` folder, where they stay.
- A folder or file at the job's name that has no marker was not written by meshstyle: it is
  never moved or deleted, and the job fails with a message instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

#: Written last into a job folder: its presence means every output is complete.
COMPLETE_MARKER = ".meshstyle-complete.json"
#: Suffix of a job's hidden folder while it is being written.
PARTIAL_SUFFIX = ".partial"
#: Suffix of a replaced result while its replacement is renamed into place.
ASIDE_SUFFIX = ".old"
#: Suffix of a job's lock file.
LOCK_SUFFIX = ".lock"


class JobBusy(BlockingIOError):
    """Another run holds the job's lock (only raised when not waiting for it)."""


def strict_json(value):
    """``value`` with every non-finite float replaced by None, so that JSON stays JSON.

    Python's ``json`` writes NaN and Infinity, which no strict JSON reader accepts.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    return value


def dumps(value) -> str:
    """Strict, indented JSON (see :func:`strict_json`)."""
    return json.dumps(strict_json(value), indent=2, allow_nan=False)


# ---------------------------------------------------------------------------------------
# What made a result
# ---------------------------------------------------------------------------------------


def file_record(path: Path) -> dict:
    """The path and SHA-256 of an input file, and of the files an OBJ takes its materials from.

    Returns:
        ``{"path": str, "sha256": hex, "also": {name: hex}}``; a missing file gets
        ``sha256: None`` (its job fails when it reads it).
    """
    record: dict = {"path": str(path), "sha256": _sha256(path)}
    from meshstyle.mesh import referenced_files

    also = {name: _sha256(p) for name, p in referenced_files(path).items()}
    if also:
        record["also"] = also
    return record


def _sha256(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def differences(old: dict, new: dict) -> list[str]:
    """What differs between two ``made_from`` records, in words, for a message.

    Inputs are compared by content (a moved file is the same input); settings by value.
    """
    if not old:
        return ["the folder does not record what made it"]
    found = []
    for role in sorted(set(old.get("inputs", {})) | set(new.get("inputs", {}))):
        a, b = old.get("inputs", {}).get(role), new.get("inputs", {}).get(role)
        if _content(a) != _content(b):
            found.append(f"{role} {b['path'] if b else '(none)'} has other content")
    a, b = old.get("settings", {}), new.get("settings", {})
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            found.append(f"setting {key} {a.get(key)!r} -> {b.get(key)!r}")
    if old.get("kind") != new.get("kind"):
        found.append(f"kind {old.get('kind')!r} -> {new.get('kind')!r}")
    return found


def _content(record: dict | None):
    return None if record is None else (record.get("sha256"), record.get("also", {}))


# ---------------------------------------------------------------------------------------
# What is at the job's name now
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Existing:
    """What OUT holds at a job's name.

    Attributes:
        state: "absent", "same" (complete, made from the same inputs and settings),
            "other" (complete, made from something else) or "foreign" (not written by
            meshstyle: no marker, or not a folder).
        summary: the marker's contents for a complete result.
        reason: for "other" and "foreign", why, in words.
    """

    state: str
    summary: dict
    reason: str = ""


def read_marker(folder: Path) -> dict | None:
    """The completion marker of ``folder``, or None when it has none that can be read."""
    try:
        summary = json.loads((folder / COMPLETE_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def what_is_at(final: Path, made_from: dict) -> Existing:
    """Classify what lies at ``final`` against the record of what would make it now."""
    if not final.exists() and not final.is_symlink():
        return Existing("absent", {})
    if final.is_symlink() or not final.is_dir():
        return Existing("foreign", {}, f"{final} exists and is not a folder meshstyle wrote")
    summary = read_marker(final)
    if summary is None:
        return Existing(
            "foreign",
            {},
            f"{final} exists without a meshstyle completion marker (not a result of this "
            "tool, or one whose marker was removed); move it away or choose another -o",
        )
    changed = differences(summary.get("made_from", {}), made_from)
    if changed:
        return Existing("other", summary, "; ".join(changed))
    return Existing("same", summary)


# ---------------------------------------------------------------------------------------
# The lock
# ---------------------------------------------------------------------------------------


def lock_path(out: Path, name: str) -> Path:
    return out / f".{name}{LOCK_SUFFIX}"


@contextlib.contextmanager
def job_lock(out: Path, name: str, *, wait: bool) -> Iterator[None]:
    """Hold the job's lock file for the ``with`` block; removed again on release.

    The lock is an OS file lock (``flock``), so a run that is killed releases it; the file
    is unlinked before it is unlocked, and a run that locked a file since unlinked tries
    again, so two runs never both believe they hold the job.

    Args:
        out: the output folder.
        name: the job's folder name.
        wait: block until the lock is free; otherwise raise :class:`JobBusy` at once.
    """
    path = lock_path(out, name)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            if not _lock(fd, wait):
                raise JobBusy(f"{out / name}: another meshstyle run is writing this job")
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            break
        os.close(fd)  # the holder before us removed the file we locked: take the new one
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # Windows cannot remove an open file: it stays
            os.unlink(path)
        os.close(fd)


def _lock(fd: int, wait: bool) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        mode = msvcrt.LK_LOCK if wait else msvcrt.LK_NBLCK
        try:
            msvcrt.locking(fd, mode, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


# ---------------------------------------------------------------------------------------
# Writing and committing
# ---------------------------------------------------------------------------------------


def write_job_folder(
    out: Path,
    name: str,
    made_from: dict,
    write: Callable[[Path], dict],
    *,
    overwrite: bool,
) -> dict:
    """Write a job's folder through a hidden partial folder; the caller holds the job's lock.

    Args:
        out: the output folder.
        name: the job's folder name.
        made_from: what makes the result (kind, input records, settings), kept in the marker.
        write: fills the folder it is given and returns the marker's summary (JSON values).
        overwrite: a complete result made from other inputs may be replaced.

    Returns:
        The marker written: the summary with ``files`` (every file the job wrote, relative
        POSIX paths, the marker not included) and ``made_from`` added.

    Raises:
        FileExistsError: a complete result made from other inputs (without ``overwrite``),
            anything at the job's name that meshstyle did not write, or a file the user put
            into the result being replaced that has the name of one the new result writes.
    """
    from meshstyle.fsutil import atomic_write_text, temporary_folder

    final = out / name
    check_replaceable(final, made_from, overwrite=overwrite)
    for leftover in hidden_copies(out, name, PARTIAL_SUFFIX):
        # under the job's lock, these can only be from a run that was killed
        shutil.rmtree(leftover, ignore_errors=True)
    for aside in hidden_copies(out, name, ASIDE_SUFFIX):
        remove_own_files(aside)  # a replaced result: only what the job wrote goes
    tmp = temporary_folder(out, name, PARTIAL_SUFFIX)
    try:
        summary = {**write(tmp), "files": list_files(tmp), "made_from": made_from}
        atomic_write_text(tmp / COMPLETE_MARKER, dumps(summary))
        # checked again: the user may have put something there while the job ran
        check_replaceable(final, made_from, overwrite=overwrite)
        _commit(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


def check_replaceable(final: Path, made_from: dict, *, overwrite: bool) -> Existing:
    """What lies at ``final``, after refusing what must not be replaced by this job.

    Returns:
        The :class:`Existing` state: "absent", "same", or "other" with ``overwrite``.

    Raises:
        FileExistsError: something meshstyle did not write is there, or a result made from
            other inputs or settings and ``overwrite`` is off.
    """
    existing = what_is_at(final, made_from)
    if existing.state == "foreign":
        raise FileExistsError(existing.reason)
    if existing.state == "other" and not overwrite:
        raise FileExistsError(other_inputs_message(final, existing))
    if existing.state == "other":
        # Known before the job runs: a user's entry at the name of a file the old result
        # wrote (the new one writes the same names) would stop the replacement at the end.
        ours = written_files(existing.summary)
        clashes = [
            rel
            for rel in foreign_entries(final, ours)
            if rel in ours or any(f.startswith(rel + "/") for f in ours)
        ]
        if clashes:
            raise FileExistsError(_clash_message(final, clashes))
    return existing


def _clash_message(final: Path, clashes: list[str]) -> str:
    return (
        f"{final} holds {', '.join(clashes)}, not written by meshstyle, and the new result "
        "writes a file of the same name; move it out of the folder to replace the result, "
        "or choose another -o"
    )


def other_inputs_message(final: Path, existing: Existing) -> str:
    """Why a complete result is neither skipped nor replaced."""
    return (
        f"{final} holds a result made from other inputs or settings ({existing.reason}); "
        "use --overwrite to replace it, or choose another -o"
    )


def hidden_copies(out: Path, name: str, suffix: str) -> list[Path]:
    """This job's hidden folders ``OUT/.<name>.<token><suffix>`` (partial or set aside).

    The token is one word (mkdtemp's letters and digits, or a time in nanoseconds), so the
    folders of a job named ``<name>.<more>`` (a painting called ``s.v2.jpg`` beside
    ``s.jpg``) never match: under this job's lock, another job's folders are not ours to
    delete.
    """
    pattern = re.compile(rf"\.{re.escape(name)}\.\w+{re.escape(suffix)}")
    try:
        entries = sorted(out.iterdir())
    except OSError:
        return []
    return [p for p in entries if pattern.fullmatch(p.name)]


def _commit(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``; a complete result there is first moved aside.

    At every moment a complete result (old or new) is under the final name, except for the
    instant between the two renames. What the user put into the old result is then moved
    into the new one, and only the old result's own files are deleted.

    Raises:
        FileExistsError: what is at ``final`` is not a result of ours (it appeared since the
            last check), or a file the user put there has the name of one in ``tmp``.
    """
    if not final.exists() and not final.is_symlink():
        tmp.rename(final)
        return
    summary = read_marker(final)
    if summary is None or final.is_symlink():
        raise FileExistsError(
            f"{final} appeared while the job ran and was not written by meshstyle"
        )
    carried = foreign_entries(final, written_files(summary))
    clashes = [rel for rel in carried if _taken(tmp, rel)]
    if clashes:
        raise FileExistsError(_clash_message(final, clashes))
    aside = final.with_name(f".{final.name}.{time.time_ns()}{ASIDE_SUFFIX}")
    final.rename(aside)
    try:
        tmp.rename(final)
    except BaseException:
        aside.rename(final)
        raise
    for rel in carried:
        target = final.joinpath(*PurePosixPath(rel).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        aside.joinpath(*PurePosixPath(rel).parts).rename(target)
    remove_own_files(aside)


# ---------------------------------------------------------------------------------------
# Whose files
# ---------------------------------------------------------------------------------------


def list_files(folder: Path) -> list[str]:
    """Every file under ``folder`` (links included), as sorted relative POSIX paths."""
    found = []
    for root, dirs, files in os.walk(folder):
        base = Path(root).relative_to(folder)
        links = [d for d in dirs if (Path(root) / d).is_symlink()]  # os.walk does not enter them
        found += [(base / name).as_posix() for name in files + links]
    return sorted(found)


def written_files(summary: dict) -> set[str]:
    """The files a finished job wrote, by its marker: relative POSIX paths, marker included.

    Markers written before the list was kept name the job's files only under ``outputs``;
    anything else in such a folder counts as the user's, which keeps it.
    """
    files = summary.get("files")
    if not isinstance(files, list):
        outputs = summary.get("outputs")
        files = list(outputs.values()) if isinstance(outputs, dict) else []
    return {f for f in files if _inside(f)} | {COMPLETE_MARKER}


def _inside(rel) -> bool:
    """Whether a marker's entry names a path inside its folder.

    A marker is a file anyone can edit in OUT, and what it lists gets deleted.
    """
    if not isinstance(rel, str) or not rel or "\\" in rel:
        return False
    path = PurePosixPath(rel)
    return not path.is_absolute() and all(part not in ("", ".", "..") for part in rel.split("/"))


def foreign_entries(folder: Path, ours: set[str]) -> list[str]:
    """What in ``folder`` is not among ``ours``: the outermost such entries, relative paths.

    A sub-folder holding none of ``ours`` is one entry; one holding some is looked into. A
    link, or a folder at the name of one of our files, is never ours.
    """
    found: list[str] = []

    def visit(current: Path, prefix: str) -> None:
        for entry in sorted(os.scandir(current), key=lambda e: e.name):
            rel = prefix + entry.name
            if entry.is_dir(follow_symlinks=False) and any(f.startswith(rel + "/") for f in ours):
                visit(Path(entry.path), rel + "/")
            elif not (rel in ours and entry.is_file(follow_symlinks=False)):
                found.append(rel)

    visit(folder, "")
    return found


def remove_own_files(folder: Path) -> None:
    """Delete a replaced result of ours: its own files, and the folder once nothing else is left.

    A folder without a marker is not known to be ours and is kept whole. In one with a
    marker, what the user put there stays (only an interrupted replacement leaves any); the
    marker is deleted last, so that a deletion cut short is finished by the next run.
    """
    summary = read_marker(folder)
    if summary is None or folder.is_symlink():
        return
    ours = written_files(summary)
    if not foreign_entries(folder, ours):
        shutil.rmtree(folder, ignore_errors=True)
        return
    for rel in sorted(ours - {COMPLETE_MARKER}) + [COMPLETE_MARKER]:
        path = folder.joinpath(*PurePosixPath(rel).parts)
        if path.is_file() and not path.is_symlink():
            with contextlib.suppress(OSError):
                path.unlink()
        for above in path.parents:  # our sub-folders, once emptied
            if above == folder or not above.is_relative_to(folder):
                break
            with contextlib.suppress(OSError):
                above.rmdir()


def _taken(folder: Path, rel: str) -> bool:
    """Whether ``folder`` has something at ``rel``, or a file where ``rel`` needs a folder."""
    parts = PurePosixPath(rel).parts
    for i in range(1, len(parts)):
        above = folder.joinpath(*parts[:i])
        if above.is_symlink() or (above.exists() and not above.is_dir()):
            return True
    path = folder.joinpath(*parts)
    return path.exists() or path.is_symlink()

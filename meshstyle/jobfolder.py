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
from pathlib import Path

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
    also = {name: _sha256(p) for name, p in _referenced_files(path).items()}
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


_OBJ_REFERENCE = re.compile(rb"^\s*(mtllib|map_\w+|bump|disp|norm)\s+(.+?)\s*$", re.MULTILINE)


def _referenced_files(path: Path) -> dict[str, Path]:
    """The MTL files an OBJ names and the images those name (a changed texture is a new input)."""
    if path.suffix.lower() != ".obj":
        return {}
    found: dict[str, Path] = {}
    queue = [path]
    while queue:
        current = queue.pop()
        try:
            data = current.read_bytes()
        except OSError:
            continue
        for match in _OBJ_REFERENCE.finditer(data):
            # the file name is the last word: map_Kd may carry options (-s 1 1 1 file.png)
            name = match[2].split()[-1].decode("utf-8", "replace")
            target = path.parent / name
            if name in found or not target.is_file():
                continue
            found[name] = target
            if match[1] == b"mtllib":
                queue.append(target)
    return found


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
        The marker written: the summary with ``made_from`` added.

    Raises:
        FileExistsError: a complete result made from other inputs (without ``overwrite``),
            or anything at the job's name that meshstyle did not write.
    """
    from meshstyle.fsutil import atomic_write_text, temporary_folder

    final = out / name
    check_replaceable(final, made_from, overwrite=overwrite)
    for leftover in out.glob(f".{name}.*{PARTIAL_SUFFIX}"):
        # under the job's lock, these can only be from a run that was killed
        shutil.rmtree(leftover, ignore_errors=True)
    for aside in out.glob(f".{name}.*{ASIDE_SUFFIX}"):
        if read_marker(aside) is not None:  # a replaced result of ours
            shutil.rmtree(aside, ignore_errors=True)
    tmp = temporary_folder(out, name, PARTIAL_SUFFIX)
    try:
        summary = {**write(tmp), "made_from": made_from}
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
    return existing


def other_inputs_message(final: Path, existing: Existing) -> str:
    """Why a complete result is neither skipped nor replaced."""
    return (
        f"{final} holds a result made from other inputs or settings ({existing.reason}); "
        "use --overwrite to replace it, or choose another -o"
    )


def _commit(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``; a complete result there is first moved aside.

    At every moment a complete result (old or new) is under the final name, except for the
    instant between the two renames.
    """
    if not final.exists():
        tmp.rename(final)
        return
    aside = final.with_name(f".{final.name}.{time.time_ns()}{ASIDE_SUFFIX}")
    final.rename(aside)
    tmp.rename(final)
    if read_marker(aside) is not None:
        shutil.rmtree(aside, ignore_errors=True)
    # else: something put there since the check a moment ago; kept, hidden, never deleted

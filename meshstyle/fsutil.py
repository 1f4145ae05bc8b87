"""Atomic file output: every file the tool writes appears whole or not at all.

A crash, Ctrl-C or a full disk while writing must never leave a truncated file under the
final name, and never damage a file the user already had: we write to a temporary name in
the same folder (so the rename stays on one filesystem) and rename into place.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    Use this for writers that insist on a file name of their own (PIL, trimesh exporters).
    The temporary name keeps the final suffix so that writers which pick a format from the
    suffix still work. On any exception the temporary file is removed and ``path`` is left
    as it was.

    Args:
        path: final destination.

    Yields:
        The temporary path to write.
    """
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{final.stem}.", suffix=f".tmp{final.suffix}", dir=final.parent
        )
    except OSError as exc:
        # Name the output the user asked for, not the temporary file beside it.
        raise OSError(f"{final}: cannot be written ({_reason(exc, final.parent)})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp makes the file private (0600); an output gets the permissions any new file
    # would get under the user's umask.
    os.chmod(tmp_path, 0o666 & ~_umask())
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the final path."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically and return the final path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def temporary_folder(parent: str | os.PathLike, name: str, suffix: str) -> Path:
    """A new hidden folder ``parent/.{name}.XXXX{suffix}`` to fill and then rename into place.

    ``mkdtemp`` makes the folder private (0700); it gets the permissions any new folder would
    get under the user's umask, so that results renamed into place are as readable as the
    user's other files (shared cluster storage, say).
    """
    folder = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=suffix, dir=parent))
    os.chmod(folder, 0o777 & ~_umask())
    return folder


def check_writable(out: Path) -> None:
    """Fail early, with a clear message, when the output folder cannot hold results."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test."):
            pass
    except OSError as exc:
        raise PermissionError(
            f"{out}: output folder cannot be written ({_reason(exc, out)})"
        ) from None


def check_output_file(
    path: Path, *, overwrite: bool, inputs: tuple[Path, ...] = (), hint: str = "--overwrite"
) -> None:
    """Fail early, before any work, when a single output file should or cannot be written.

    An input is never replaced, even with ``overwrite``; a file the user already has is
    replaced only with ``overwrite`` (``hint`` names the flag that allows it).

    Raises:
        FileExistsError, PermissionError: with a message naming ``path`` and the rule.
    """
    source = replaced_input(path, list(inputs))
    if source is not None:
        raise FileExistsError(f"{path}: is an input ({source}); choose another output")
    if path.is_dir():
        raise FileExistsError(f"{path}: is a folder; the output must be a file name")
    # A link is the user's even when it points nowhere.
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise FileExistsError(f"{path}: already exists; use {hint} to replace it")
    check_writable(path.parent)


def _reason(exc: OSError, folder: Path) -> str:
    """Why ``folder`` (or a file in it) could not be written, in words."""
    blocking = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        return f"{blocking} is a file, not a folder"
    return exc.strerror or type(exc).__name__


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

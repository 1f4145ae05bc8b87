"""Edit jobs: what to run (mesh × style pairs), where it goes, and whether it is done.

A job writes into a temporary folder inside OUT and renames it into place when every file
is written, with a completion marker as its last file. A folder without the marker is never
taken for a finished job, so a run killed at any moment can simply be run again.
"""

from __future__ import annotations

import glob
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from meshstyle.mesh import sanitise_name as safe_name

#: Written last into a job folder: its presence means every output is complete.
COMPLETE_MARKER = ".meshstyle-complete.json"
#: Suffix of a job's hidden folder while it is being written.
PARTIAL_SUFFIX = ".partial"


@dataclass(frozen=True)
class Job:
    """One edit: a mesh, and a style image for stylize.

    Attributes:
        kind: "stylize" or "deepdream".
        mesh: input mesh path.
        style: style image path (stylize only).
        name: output folder name inside OUT (unique within a run).
    """

    kind: str
    mesh: Path
    style: Path | None
    name: str

    def folder(self, out: Path) -> Path:
        return out / self.name

    def is_complete(self, out: Path) -> bool:
        return (self.folder(out) / COMPLETE_MARKER).is_file()


def expand_inputs(
    items: list[str], suffixes: tuple[str, ...], *, recursive: bool = False, what: str = "mesh"
) -> list[Path]:
    """Files named by paths, folders (every file with a supported suffix) and globs.

    Args:
        items: what the user typed.
        suffixes: accepted lowercase suffixes, e.g. (".obj", ".ply").
        recursive: descend into sub-folders of folder arguments.
        what: word used in error messages.

    Returns:
        Unique paths in a stable order (sorted within each folder or glob).

    Raises:
        ValueError: an argument matches nothing.
    """
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            matches = sorted(
                p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in suffixes
            )
            if not matches:
                raise ValueError(
                    f"{item}: folder holds no {what} file ({', '.join(suffixes)})"
                    + ("" if recursive else "; use --recursive for sub-folders")
                )
            found.extend(matches)
        elif path.exists() or not glob.has_magic(item):
            # A missing plain path is kept: the job reports it as a failed input.
            found.append(path)
        else:
            matches = sorted(Path(p) for p in glob.glob(item, recursive=recursive))
            matches = [p for p in matches if p.is_file()]
            if not matches:
                raise ValueError(f"{item}: pattern matches no file")
            found.extend(matches)
    unique: dict[str, Path] = {}
    for p in found:
        unique.setdefault(str(p.resolve()) if p.exists() else str(p), p)
    return list(unique.values())


def plan_jobs(
    kind: str, meshes: list[Path], styles: list[Path] | None = None, layer: str | None = None
) -> list[Job]:
    """Every mesh × style pair (stylize) or every mesh (deepdream), with unique folder names.

    Folder names are ``<mesh>__<style>`` and ``<mesh>__deepdream-<layer>``; two inputs with
    the same stem get ``-2``, ``-3`` suffixes in input order, so names are deterministic.
    """
    jobs: list[Job] = []
    taken: set[str] = set()

    def unique(name: str) -> str:
        candidate, n = name, 1
        while candidate.lower() in taken:
            n += 1
            candidate = f"{name}-{n}"
        taken.add(candidate.lower())
        return candidate

    for mesh in meshes:
        if kind == "stylize":
            for style in styles or []:
                name = unique(f"{safe_name(mesh.stem)}__{safe_name(style.stem)}")
                jobs.append(Job(kind, mesh, style, name))
        else:
            name = unique(f"{safe_name(mesh.stem)}__deepdream-{safe_name(layer or 'layer')}")
            jobs.append(Job(kind, mesh, None, name))
    return jobs


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` (1-based K) to (K, N); raises ValueError on anything else."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise ValueError(f"--shard must look like K/N (for example 2/8); got {text!r}")
    k, n = int(match[1]), int(match[2])
    if n < 1 or not 1 <= k <= n:
        raise ValueError(f"--shard K/N needs 1 <= K <= N; got {text!r}")
    return k, n


def shard(jobs: list[Job], k: int, n: int) -> list[Job]:
    """The K-th of N deterministic slices: jobs whose position ≡ K−1 (mod N)."""
    return [job for i, job in enumerate(jobs) if i % n == k - 1]


def partial_folder(out: Path, name: str) -> Path:
    """A new hidden folder in ``out`` for the job folder ``name`` to be written into.

    Whatever an earlier, interrupted run of the same job left there is removed first.
    """
    from meshstyle.fsutil import temporary_folder

    for leftover in out.glob(f".{name}.*{PARTIAL_SUFFIX}"):
        shutil.rmtree(leftover, ignore_errors=True)
    return temporary_folder(out, name, PARTIAL_SUFFIX)


def commit_folder(tmp: Path, final: Path, *, overwrite: bool) -> None:
    """Move a finished temporary job folder into place.

    An existing folder is replaced only with ``overwrite`` (or when it is an unfinished
    leftover without the marker); it is first moved aside, so at every moment either the old
    or the new folder is complete under the final name.
    """
    if final.exists():
        if (final / COMPLETE_MARKER).is_file() and not overwrite:
            raise FileExistsError(f"{final}: output exists (use --overwrite)")
        aside = final.with_name(f".{final.name}.old")
        if aside.exists():
            shutil.rmtree(aside)
        final.rename(aside)
        tmp.rename(final)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        tmp.rename(final)


def write_marker(folder: Path, summary: dict) -> None:
    """Write the completion marker; it must be the last file written into ``folder``."""
    from meshstyle.fsutil import atomic_write_text

    atomic_write_text(folder / COMPLETE_MARKER, json.dumps(summary, indent=2, sort_keys=True))

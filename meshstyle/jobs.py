"""Edit jobs: what to run (mesh × style pairs) and under which folder name.

How a job's folder is written, locked and recognised as complete is
:mod:`meshstyle.jobfolder`'s business.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from meshstyle.mesh import sanitise_name as safe_name


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
        """Whether OUT holds a complete result under the job's name (of whatever inputs)."""
        from meshstyle.jobfolder import read_marker

        return read_marker(self.folder(out)) is not None


def expand_inputs(
    items: list[str],
    suffixes: tuple[str, ...],
    *,
    recursive: bool = False,
    what: str = "mesh",
    exclude: Path | None = None,
) -> list[Path]:
    """Files named by paths, folders (every file with a supported suffix) and globs.

    Args:
        items: what the user typed.
        suffixes: accepted lowercase suffixes, e.g. (".obj", ".ply").
        recursive: descend into sub-folders of folder arguments.
        what: word used in error messages.
        exclude: a folder whose files folders and globs never yield: the run's OUT, which
            may lie inside an input folder (a second run must not take the first one's
            results for inputs).

    Returns:
        Unique paths in a stable order (sorted within each folder or glob).

    Raises:
        ValueError: an argument matches nothing.
    """
    found: list[Path] = []
    skipped = exclude.resolve() if exclude is not None else None

    def outside(p: Path) -> bool:
        return skipped is None or not p.resolve().is_relative_to(skipped)

    for item in items:
        path = Path(item)
        if path.is_dir():
            matches = sorted(
                p
                for p in folder_files(path, recursive)
                if p.suffix.lower() in suffixes and outside(p)
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
            matches = [p for p in matches if p.is_file() and outside(p)]
            if not matches:
                raise ValueError(f"{item}: pattern matches no file")
            found.extend(matches)
    unique: dict[str, Path] = {}
    for p in found:
        unique.setdefault(str(p.resolve()) if p.exists() else str(p), p)
    return list(unique.values())


def folder_files(folder: Path, recursive: bool) -> Iterator[Path]:
    """The files in ``folder`` (and in its sub-folders when ``recursive``)."""
    return (p for p in folder.glob("**/*" if recursive else "*") if p.is_file())


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

"""Cold start of the command line, after a first run has filled numba's cache; prints JSON.

Three measurements, each a fresh process, repeated and reported as medians of wall time and
of CPU time (user + system of the child, which a loaded machine inflates less):

- ``meshstyle --help``;
- ``meshstyle info``;
- ``meshstyle stylize`` up to the end of its first optimisation step (the process exits
  there, before writing outputs), on a generated sphere and image (fast preset).

Usage: python bench/startup.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run in the child: stylize through the CLI, exiting at the end of step 1.
FIRST_STEP = """
import os, sys, time
t0 = time.perf_counter()
import meshstyle.edit as edit
original = edit.edit_mesh
def timed(*args, progress=None, **kwargs):
    def report(step):
        print(f"FIRST_STEP {time.perf_counter() - t0:.3f}", flush=True)
        os._exit(0)
    return original(*args, progress=report, **kwargs)
edit.edit_mesh = timed
from meshstyle.cli import main
sys.argv = ["meshstyle", "stylize", sys.argv[1], sys.argv[2], "-o", sys.argv[3], "-q",
            "--overwrite"]
main()
"""


def _assets(folder: Path) -> tuple[Path, Path]:
    import numpy as np
    import trimesh
    from PIL import Image

    mesh = folder / "sphere.obj"
    trimesh.creation.icosphere(subdivisions=3).export(mesh)
    rng = np.random.default_rng(0)
    image = folder / "style.png"
    Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(image)
    return mesh, image


def _run(command: list[str]) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out.stdout


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    exe = Path(sys.executable).parent / "meshstyle"
    with tempfile.TemporaryDirectory() as tmp:
        mesh, image = _assets(Path(tmp))
        out = str(Path(tmp) / "out")
        commands = {
            "help": [str(exe), "--help"],
            "info": [str(exe), "info"],
            "stylize_first_step": [sys.executable, "-c", FIRST_STEP, str(mesh), str(image), out],
        }
        _run(commands["stylize_first_step"])  # fills numba's cache if it is empty
        samples: dict[str, dict[str, list[float]]] = {}
        for _ in range(args.repeats):
            for name, command in commands.items():
                wall, cpu, stdout = _run(command)
                entry = samples.setdefault(name, {"wall": [], "cpu": [], "first_step": []})
                entry["wall"].append(wall)
                entry["cpu"].append(cpu)
                if name == "stylize_first_step":
                    entry["first_step"].append(float(stdout.split("FIRST_STEP")[1].split()[0]))
    result = {
        "load_average": os.getloadavg(),
        "repeats": args.repeats,
        "seconds": {
            name: {
                "wall_median": round(statistics.median(s["wall"]), 2),
                "cpu_median": round(statistics.median(s["cpu"]), 2),
                **(
                    {"to_first_step_median": round(statistics.median(s["first_step"]), 2)}
                    if s["first_step"]
                    else {}
                ),
            }
            for name, s in samples.items()
        },
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

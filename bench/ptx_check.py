"""Compile the CUDA kernels for a GPU architecture on a machine without a GPU; print JSON.

The simulator tests (``make test``) run the kernels as Python, which proves their logic but
not that numba's CUDA compiler accepts them. This script compiles every kernel the CUDA
driver launches, with the argument types of its real launches, to PTX for one compute
capability, the way a GPU run would compile them: under the driver's own no-contraction
setting (``_exact_arithmetic``). For each kernel it reports the fused multiply-adds and
unrounded multiplies and adds left in the PTX (both must be 0: the CPU kernels' arithmetic)
and, when ``ptxas`` is found, the registers, spills and shared memory of the assembled code.

The forward and backward drivers run as they would on a GPU, except that their launches are
recorded instead of run (a stand-in for their launcher), so the signatures are those of the
rasterizer's real calls: colour and silhouette gradients, occlusion-aware or not.

Needs numba-cuda and CUDA's NVVM, no GPU or driver:
``pip install "numba-cuda[cu12]"`` (NVVM and ptxas come as the ``nvidia-cuda-nvcc-cu12``
wheel). One compute capability per process, because numba keeps the device functions it
compiled for the first one.

Usage: python bench/ptx_check.py [--cc 9.0] [--keep DIR] (``make cuda-check`` runs it for
9.0 and 8.0 in a venv of its own). Exit status 0 when every kernel compiles without
contractions and, where ptxas is found, assembles with a block that fits the register
file; 1 otherwise; 2 when the compiler is missing.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FMA = re.compile(r"\bfma\.")
UNROUNDED = re.compile(r"\b(mul|add|sub)\.f(32|64)\b")


def _ptxas() -> str | None:
    """Path of ptxas: the nvidia-cuda-nvcc wheel's (NVVM's own toolkit), else one on PATH."""
    try:
        import nvidia.cuda_nvcc as nvcc

        roots = list(nvcc.__path__)
    except ImportError:
        roots = []
    for root in roots:
        candidate = Path(root) / "bin" / "ptxas"
        if candidate.exists():
            return str(candidate)
    return shutil.which("ptxas")


def _ptxas_version(ptxas: str) -> str:
    done = subprocess.run([ptxas, "--version"], capture_output=True, text=True)
    found = re.search(r"release ([\d.]+)", done.stdout)
    return found.group(1) if found else "?"


def _load_kernels(cc: tuple[int, int]):
    """The CUDA driver module, importable and compiling for ``cc`` without a GPU."""
    from meshstyle import runtime

    # The module refuses to load without a GPU; here nothing is launched.
    runtime.numba_sees_gpu = lambda: True
    import numba.cuda.dispatcher as dispatcher

    class _Target:
        compute_capability = cc

    # Device functions compile for the current device's architecture; there is none.
    dispatcher.get_current_device = lambda: _Target()
    from meshstyle.raster import cuda as kernels

    return kernels


class _Recorder:
    """Stands in for the driver's launcher: NumPy arrays, and launches recorded, not run."""

    launches: list = []
    threads = 128  # the driver's THREADS, set from the module

    def __init__(self, *probes):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def input(self, array):
        return array

    def output(self, array):
        return array

    def scratch(self, shape, dtype, zero=False):
        return np.zeros(shape, dtype=dtype)

    def launch(self, kernel, blocks, threads, *args):
        if blocks > 0:
            self.launches.append((kernel, threads, args))

    def per_item(self, kernel, n_items, *args):
        self.launch(kernel, n_items, self.threads, *args)


def _record_launches(kernels) -> list:
    """Run the forward and backward drivers on a small scene with every gradient term."""
    from meshstyle.raster.layout import FACE_INFO_SIZE

    kernels._Launcher = _Recorder
    _Recorder.threads = kernels.THREADS
    rng = np.random.default_rng(0)
    b, f, t, size = 2, 6, 3, 8
    face_vertices = rng.uniform(-0.8, 0.8, (b, f, 3, 3)).astype(np.float32)
    face_vertices[..., 2] = rng.uniform(1.0, 3.0, (b, f, 3))
    textures = rng.uniform(0.0, 1.0, (b, f, t, t, t, 3)).astype(np.float32)
    face_info = np.zeros((b, f, FACE_INFO_SIZE), np.float64)
    face_bbox = np.zeros((b, f, 4), np.int32)
    face_index = np.zeros((b, size, size), np.int32)
    rgb = np.zeros((b, 3, size, size), np.float32)
    alpha = np.zeros((b, size, size), np.float32)
    depth = np.zeros((b, size, size), np.float32)
    kernels.forward(
        face_vertices,
        textures,
        np.zeros((b, 3), np.float32),
        0.1,
        100.0,
        True,
        face_info,
        face_bbox,
        face_index,
        rgb,
        alpha,
        depth,
    )
    ones = np.ones((b, size, size), np.float32)
    for colour in (True, False):
        for occlusion_aware in (False, True):
            kernels.backward(
                face_info,
                face_bbox,
                face_index,
                rgb if colour else None,
                alpha,
                depth,
                np.ones((b, 3, size, size), np.float32) if colour else None,
                ones,
                ones if colour else None,
                True,
                colour,
                occlusion_aware,
                1e-3,
                np.zeros((b, f, 3, 3), np.float64),
                np.zeros((b, f, t, t, t, 3), np.float32),
            )
    return _Recorder.launches


def _assemble(ptxas: str, ptx: str, cc: tuple[int, int], folder: Path, name: str) -> dict:
    source = folder / f"{name}.ptx"
    source.write_text(ptx)
    arch = f"sm_{cc[0]}{cc[1]}"
    done = subprocess.run(
        [ptxas, f"-arch={arch}", "-v", "-o", str(folder / f"{name}.cubin"), str(source)],
        capture_output=True,
        text=True,
    )
    log = done.stdout + done.stderr
    if done.returncode != 0:
        return {"ptxas_error": log.strip()[-2000:]}

    def number(pattern):
        found = re.search(pattern, log)
        return int(found.group(1)) if found else 0

    return {
        "registers": number(r"Used (\d+) registers"),
        "spill_stores_bytes": number(r"(\d+) bytes spill stores"),
        "spill_loads_bytes": number(r"(\d+) bytes spill loads"),
        "stack_frame_bytes": number(r"(\d+) bytes stack frame"),
        "shared_bytes": number(r"(\d+) bytes smem"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cc", default="9.0", help="compute capability, e.g. 9.0 or 8.0")
    parser.add_argument("--keep", type=Path, default=None, help="write PTX and cubins here")
    args = parser.parse_args()
    cc = tuple(int(part) for part in args.cc.split("."))
    report = {"compute_capability": args.cc}
    try:
        import numba
        import numba_cuda  # the CUDA target that replaces numba's built-in one
        from numba.cuda.cudadrv import nvvm

        report["numba"] = numba.__version__
        report["numba_cuda"] = getattr(numba_cuda, "__version__", "?")
        report["nvvm"] = ".".join(map(str, nvvm.NVVM().get_version()))
    except Exception as error:  # missing package or NVVM library
        report["error"] = f"no CUDA compiler: {error}; pip install 'numba-cuda[cu12]'"
        print(json.dumps(report, indent=2))
        return 2

    kernels = _load_kernels(cc)
    launches = _record_launches(kernels)
    ptxas = _ptxas()
    report["ptxas"] = ptxas and f"{ptxas} (CUDA {_ptxas_version(ptxas)})"
    with tempfile.TemporaryDirectory(prefix="ptx_check_") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        report["kernels"] = _compile_all(kernels, launches, cc, ptxas, folder)
    report["ok"] = all(entry["ok"] for entry in report["kernels"])
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


def _compile_all(kernels, launches, cc, ptxas, folder: Path) -> list[dict]:
    """One report per distinct (kernel, argument types) among ``launches``."""
    import numba
    from numba import cuda

    compiled: dict[str, dict] = {}
    for kernel, threads, call_args in launches:
        name = kernel.py_func.__name__
        signature = tuple(numba.typeof(value) for value in call_args)
        key = f"{name}{signature}"
        if key in compiled:
            continue
        entry = {"kernel": name, "threads_per_block": threads}
        compiled[key] = entry
        start = time.perf_counter()
        try:
            with kernels._exact_arithmetic():
                ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=cc)
        except Exception as error:
            entry["error"] = f"{type(error).__name__}: {error}"[-3000:]
            entry["ok"] = False
            continue
        entry["compile_seconds"] = round(time.perf_counter() - start, 2)
        entry["ptx_kib"] = round(len(ptx) / 1024, 1)
        entry["fused_multiply_adds"] = len(FMA.findall(ptx))
        entry["unrounded_mul_add"] = len(UNROUNDED.findall(ptx))
        ok = entry["fused_multiply_adds"] == 0 and entry["unrounded_mul_add"] == 0
        if ptxas:
            entry.update(_assemble(ptxas, ptx, cc, folder, f"{name}_{len(compiled)}"))
            # A block needs registers x threads of the SM's 64 K registers to launch at all.
            entry["block_fits_registers"] = entry.get("registers", 0) * threads <= 65536
            ok = ok and "ptxas_error" not in entry and entry["block_fits_registers"]
        entry["ok"] = ok
    return list(compiled.values())


if __name__ == "__main__":
    sys.exit(main())

"""Process-wide runtime choices (meshstyle.runtime)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

# In a child process: page faults of allocating, writing and freeing a 64 MB block with
# malloc, after a first time. Plain malloc, because numpy asks for huge pages (few faults
# either way) and a 64 MB torch tensor was reused without faults on some cycles only; the
# training step's gain is measured by bench/reconstruct.py (--return-memory for without).
_FAULTS = """
import ctypes, resource, sys
from meshstyle.runtime import retain_freed_memory
taken = retain_freed_memory() if sys.argv[1] == "keep" else None
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = (ctypes.c_void_p,)
size = 64 * 1024 * 1024
def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    libc.free(block)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults()
later = [faults() for _ in range(3)]
print(taken, min(later), max(later))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_retained_memory_is_reused_without_page_faults():
    def later_faults(mode: str) -> tuple[str, int, int]:
        out = subprocess.run(
            [sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True
        ).stdout.split()
        return out[0], int(out[1]), int(out[2])

    taken, _, kept = later_faults("keep")
    _, returned, _ = later_faults("return")
    assert taken == "True"
    # 64 MB is 16,384 pages of 4 KB: glibc's default maps a fresh block every time, and
    # every page faults again; kept in the heap, the block is reused as it is.
    assert returned > 10_000 and kept < 1_000, (returned, kept)


def test_benches_refuse_to_time_cuda_without_a_real_gpu(monkeypatch):
    from meshstyle import runtime

    assert runtime.timing_device_problem("cpu") is None
    monkeypatch.setattr(runtime, "cuda_simulator_enabled", lambda: True)
    assert "simulator timings mean nothing" in runtime.timing_device_problem("cuda")
    monkeypatch.setattr(runtime, "cuda_simulator_enabled", lambda: False)
    monkeypatch.setattr(runtime, "numba_sees_gpu", lambda: False)
    assert "no usable GPU" in runtime.timing_device_problem("cuda")


# In a child process, after imports in the order given: numba's layer order, and the layer
# a parallel kernel runs on.
_LAYER = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
import numba, numpy as np
@numba.njit(parallel=True)
def bump(a):
    for i in numba.prange(a.shape[0]):
        a[i] += 1.0
bump(np.zeros(4))
print(" ".join(numba.config.THREADING_LAYER_PRIORITY), numba.threading_layer())
"""


def _threading_layer(*modules: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_THREADING_LAYER")}
    child_env.update(env or {})
    out = subprocess.run(
        [sys.executable, "-c", _LAYER, *modules],
        capture_output=True,
        text=True,
        check=True,
        env=child_env,
    ).stdout.split()
    return " ".join(out[:-1]), out[-1]


def _openmp_loads() -> bool:
    out = subprocess.run(
        [sys.executable, "-c", _LAYER],
        capture_output=True,
        text=True,
        env={"NUMBA_THREADING_LAYER": "omp", "PATH": ""},
    )
    return out.returncode == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the order is set on Linux")
def test_numba_tries_openmp_first_whichever_is_imported_first():
    for modules in (("meshstyle",), ("numba", "meshstyle")):
        order, layer = _threading_layer(*modules)
        assert order == "omp tbb workqueue", modules
        if _openmp_loads():
            assert layer == "omp", modules


def test_a_users_threading_layer_choice_is_kept():
    order, layer = _threading_layer("meshstyle", env={"NUMBA_THREADING_LAYER": "workqueue"})
    assert layer == "workqueue"
    order, _ = _threading_layer(
        "meshstyle", env={"NUMBA_THREADING_LAYER_PRIORITY": "workqueue omp tbb"}
    )
    assert order == "workqueue omp tbb"

"""Process-wide runtime choices: CPU threads and the compute device."""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass

DEVICES = ("auto", "cpu", "cuda")
CUDA_HINT = 'CUDA support needs a GPU and numba-cuda: pip install "meshstyle[cuda]"'


# On Linux, numba's parallel kernels on OpenMP wherever it loads, TBB and its own pool after it.
THREADING_LAYER_ORDER = ("omp", "tbb", "workqueue")
_PRIORITY_VARIABLE = "NUMBA_THREADING_LAYER_PRIORITY"


def prefer_openmp_threads() -> bool:
    """Make numba try its OpenMP threading layer before TBB, unless the user chose.

    numba's own order tries TBB first, so installing Intel TBB (it comes with Blender and
    conda environments) changes which pool runs the rasterizer. Next to torch's OpenMP pool
    TBB's threads were slower: a bunny ``fast`` step on two cores spent 35 ms in the
    renderer with TBB and 28 ms with OpenMP (network time the same). Linux only, where it
    was measured: elsewhere two OpenMP runtimes in one process (torch's and the one numba's
    layer loads) can abort it. Nothing changes when ``NUMBA_THREADING_LAYER`` or
    ``NUMBA_THREADING_LAYER_PRIORITY`` is set, or once numba has started its threads.
    Imports nothing: the environment variable is read when numba is imported, and a numba
    imported earlier gets its setting directly.

    Returns:
        Whether the order was set.
    """
    if not sys.platform.startswith("linux"):
        return False
    if _PRIORITY_VARIABLE in os.environ or "NUMBA_THREADING_LAYER" in os.environ:
        return False
    os.environ[_PRIORITY_VARIABLE] = " ".join(THREADING_LAYER_ORDER)
    config = sys.modules.get("numba.core.config")
    if config is not None:
        config.THREADING_LAYER_PRIORITY = list(THREADING_LAYER_ORDER)
    return True


def configure_threads(threads: int | None) -> int:
    """Use ``threads`` CPU threads in both numba and torch; return the count in use.

    numba must be set first: initialising its threading layer can reset torch's count.
    """
    import numba
    import torch

    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1; got {threads}")
        threads = min(threads, numba.config.NUMBA_NUM_THREADS)
        numba.set_num_threads(threads)
        torch.set_num_threads(threads)
    return numba.get_num_threads()


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def retain_freed_memory(limit: int = 1 << 30) -> bool:
    """Serve allocations up to ``limit`` bytes from the heap and keep what is freed (glibc).

    By default glibc maps every allocation over 32 MB afresh and unmaps it when it is freed,
    so a training step that frees and allocates the same large tensors again (the 64 MB
    gradient of the reconstruction encoder's first fully connected layer) pays for fresh
    zeroed pages, a page fault every 4 KB, on every step. With this a reconstruction training
    step on two cores took 418 ms instead of 526 ms (blocks of steps alternating in one
    process). The price: the process keeps its peak heap instead of returning it. A stylize
    run was not faster with it, so only the reconstruction commands ask for it.

    Args:
        limit: the largest allocation served from the heap, and how much freed memory may
            stay with the process, in bytes (at most 2**31 - 1: mallopt takes a C int).

    Returns:
        Whether the C library took the settings (False where it is not glibc).
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_THRESHOLD, limit)) and bool(mallopt(_M_TRIM_THRESHOLD, limit))


def cuda_simulator_enabled() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def cuda_target() -> str:
    """Which CUDA target numba would use: the numba-cuda package or numba's built-in one."""
    if importlib.util.find_spec("numba_cuda") is not None:
        return "numba-cuda package"
    return "numba built-in numba.cuda"


def numba_sees_gpu() -> bool:
    """True when numba can launch kernels on a real GPU (never under the simulator)."""
    if cuda_simulator_enabled():
        return False
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # a broken driver or toolkit means: no usable GPU
        return False


@dataclass(frozen=True)
class Device:
    """Where tensors live and which rasterizer backend runs on them.

    Attributes:
        torch_device: "cpu" or "cuda" (torch's name).
        backend: rasterizer backend, "cpu" or "cuda".
    """

    torch_device: str
    backend: str


def timing_device_problem(name: str) -> str | None:
    """Why ``name`` cannot be benchmarked here (the benches' ``--device``), or None.

    Timings of ``cuda`` mean something only on a real GPU: the simulator runs the kernels in
    Python.
    """
    if name != "cuda":
        return None
    if cuda_simulator_enabled():
        return "--device cuda: simulator timings mean nothing; unset NUMBA_ENABLE_CUDASIM"
    if not gpu_usable():
        return f"--device cuda: no usable GPU. {CUDA_HINT}"
    return None


def gpu_usable() -> bool:
    """Whether both torch and numba can use a GPU here."""
    import torch

    return torch.cuda.is_available() and numba_sees_gpu()


def resolve_device(name: str = "auto") -> Device:
    """Turn ``auto|cpu|cuda`` into a concrete device.

    ``cuda`` with the CUDA simulator enabled keeps tensors on the CPU and runs the CUDA
    kernels in the simulator, which is how they are tested without a GPU.

    Raises:
        ValueError: unknown name, or CUDA asked for where it cannot run.
    """
    if name not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}; got {name!r}")
    if name == "cpu":
        return Device("cpu", "cpu")
    gpu = gpu_usable()
    if name == "auto":
        return Device("cuda", "cuda") if gpu else Device("cpu", "cpu")
    if gpu:
        return Device("cuda", "cuda")
    if cuda_simulator_enabled():
        return Device("cpu", "cuda")
    raise ValueError(f"--device cuda: no usable GPU found. {CUDA_HINT}")

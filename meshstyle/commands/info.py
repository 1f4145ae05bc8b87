"""``meshstyle info``: what this installation can do."""

from __future__ import annotations

import platform


def collect_info() -> dict[str, str]:
    """Versions, default backend, threads, CUDA status and feature-network weights."""
    from importlib.metadata import version

    import numba
    import numpy
    import torch

    import meshstyle
    from meshstyle.precision import resolve_precision
    from meshstyle.runtime import cuda_simulator_enabled, cuda_target, numba_sees_gpu

    gpu = numba_sees_gpu()
    torch_cuda = torch.cuda.is_available()
    try:
        chosen = resolve_precision("auto", "cuda" if gpu and torch_cuda else "cpu")
        precision = f"{chosen.name} ({chosen.reason})"
    except Exception as exc:  # info must report, never fail
        precision = f"unknown ({exc})"
    try:
        from meshstyle.features import weights_available

        found, where = weights_available()
        weights = f"found ({where})" if found else f"missing ({where})"
    except Exception as exc:  # info must report, never fail
        weights = f"unavailable ({exc})"
    return {
        "meshstyle": meshstyle.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numba": numba.__version__,
        "numpy": numpy.__version__,
        # The installed version, without importing trimesh (a second of start-up).
        "trimesh": version("trimesh"),
        "backend (auto)": "cuda" if gpu and torch_cuda else "cpu",
        "precision (auto)": precision,
        # get_num_threads starts numba's threads, so the layer is known after it.
        "threads": (
            f"numba {numba.get_num_threads()} ({numba.threading_layer()} layer), "
            f"torch {torch.get_num_threads()}"
        ),
        "cuda (numba sees gpu)": "yes" if gpu else "no",
        "cuda (torch)": "yes" if torch_cuda else "no",
        "cuda target": cuda_target(),
        "cuda simulator": "on" if cuda_simulator_enabled() else "off",
        "vgg19 weights": weights,
    }

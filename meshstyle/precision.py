"""Which floating-point precision the feature network runs in: ``auto``, ``fp32`` or ``bf16``.

The VGG trunk is most of an edit step. bfloat16 halves its memory traffic and, on hardware
with bf16 matrix units, runs its convolutions two to three times faster; where the hardware
has none, oneDNN emulates bf16 and the same convolutions run many times *slower* (about 40
times on an AVX2-only CPU). So ``auto`` picks bf16 only where it is fast:

* CPU: the x86 flags ``amx_bf16`` (AMX tiles) or ``avx512_bf16`` from ``/proc/cpuinfo``,
  with torch built with oneDNN;
* CUDA: compute capability 8.0 or newer (Ampere and later have bf16 tensor cores).

Only the network's convolutions run in the chosen precision: its outputs are returned in
float32, so Gram matrices and losses are always computed in float32.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["PRECISIONS", "Precision", "cpu_bf16_flags", "resolve_precision", "slow_request"]

#: The values of the ``precision`` setting and the ``--precision`` option.
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")

# The CPU flags that mean native bf16 matrix arithmetic.
_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Precision:
    """A resolved precision.

    Attributes:
        name: ``"fp32"`` or ``"bf16"``.
        reason: one line saying why, for ``meshstyle info`` and the logs.
    """

    name: str
    reason: str

    @property
    def dtype(self) -> torch.dtype:
        """The torch dtype the network's convolutions run in."""
        return _DTYPES[self.name]


def _flags_from_cpuinfo(text: str) -> frozenset[str]:
    """The flags of the first processor listed in a ``/proc/cpuinfo`` text."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


@functools.cache
def cpu_bf16_flags(cpuinfo: str = "/proc/cpuinfo") -> tuple[str, ...]:
    """The native-bf16 flags this CPU reports (empty where none, or not on Linux).

    Args:
        cpuinfo: the file to read; a parameter so tests can point it at a sample.

    Returns:
        The subset of ``("amx_bf16", "avx512_bf16")`` that the CPU has.
    """
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ()
    flags = _flags_from_cpuinfo(text)
    return tuple(flag for flag in _BF16_FLAGS if flag in flags)


def _auto_cpu(flags: tuple[str, ...], onednn: bool) -> Precision:
    capability = torch.backends.cpu.get_cpu_capability()
    if flags and onednn:
        return Precision("bf16", f"CPU has {' and '.join(flags)}: bf16 convolutions are fast")
    if flags:
        return Precision("fp32", "CPU has bf16 units but torch was built without oneDNN")
    return Precision(
        "fp32",
        f"CPU ({capability}) has no AMX or AVX512-BF16: bf16 would be emulated and much slower",
    )


def _auto_cuda(device: torch.device) -> Precision:
    major, minor = torch.cuda.get_device_capability(device)
    name = torch.cuda.get_device_name(device)
    if major >= 8:
        return Precision("bf16", f"GPU {name} (sm_{major}{minor}) has bf16 tensor cores")
    return Precision("fp32", f"GPU {name} (sm_{major}{minor}) has no bf16 tensor cores")


def resolve_precision(requested: str = "auto", device: str | torch.device = "cpu") -> Precision:
    """Turn ``auto|fp32|bf16`` into the precision the network runs in on ``device``.

    An explicit ``fp32`` or ``bf16`` is honoured as asked, even where bf16 is slow.

    Args:
        requested: ``"auto"``, ``"fp32"`` or ``"bf16"``.
        device: where the network runs (``"cpu"``, ``"cuda"``, a torch device).

    Raises:
        ValueError: an unknown precision name.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {requested!r}")
    if requested != "auto":
        return Precision(requested, f"{requested} as requested")
    device = torch.device(device)
    if device.type == "cuda":
        return _auto_cuda(device)
    if device.type == "cpu":
        return _auto_cpu(cpu_bf16_flags(), torch.backends.mkldnn.is_available())
    return Precision("fp32", f"no bf16 rule for device type {device.type!r}: fp32")


def slow_request(requested: str, device: str | torch.device = "cpu") -> str | None:
    """A note for the user when an explicit ``bf16`` asks for what ``auto`` avoids here.

    ``resolve_precision`` honours an explicit choice; this says when that choice is the slow
    one (bf16 emulated on a CPU without bf16 units can be tens of times slower than fp32).

    Returns:
        One line naming the reason, or None when the request is what ``auto`` would pick,
        or is not ``bf16``.
    """
    if requested != "bf16":
        return None
    auto = resolve_precision("auto", device)
    if auto.name == "bf16":
        return None
    return f"--precision bf16 runs here, but {auto.reason}; --precision auto would use fp32"

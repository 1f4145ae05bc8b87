"""Process-wide runtime choices (meshstyle.runtime)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# In a child process: page faults of allocating and freeing a 64 MB tensor a second time.
_FAULTS = """
import resource, sys
import torch
from meshstyle.runtime import retain_freed_memory
taken = retain_freed_memory() if sys.argv[1] == "keep" else None
def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = torch.ones(16 * 1024 * 1024)  # 64 MB, written so every page is touched
    del t
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults()
print(taken, faults())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_retained_memory_is_reused_without_page_faults():
    def second_faults(mode: str) -> tuple[str, int]:
        out = subprocess.run(
            [sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True
        ).stdout.split()
        return out[0], int(out[1])

    taken, kept = second_faults("keep")
    _, returned = second_faults("return")
    assert taken == "True"
    # 64 MB is 16,384 pages of 4 KB: without the setting every one faults again.
    assert returned > 10_000 and kept < 1_000, (returned, kept)

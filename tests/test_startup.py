"""Start-up stays light: modules that cost seconds to import are imported only when needed."""

from __future__ import annotations

import subprocess
import sys


def _imported_after(code: str, modules: tuple[str, ...]) -> list[str]:
    probe = f"{code}\nimport sys\nprint(sorted(m for m in {modules!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return eval(out.stdout.strip().splitlines()[-1])  # a list of names printed by the probe


def test_the_optimiser_does_not_import_torch_compile():
    code = (
        "import torch\nfrom meshstyle.optim import ZeroSkipAdam\n"
        "x = torch.zeros(3, requires_grad=True)\n"
        "opt = ZeroSkipAdam([{'params': [x], 'lr': 0.1}])\n"
        "x.sum().backward(); opt.step(); opt.zero_grad()\n"
        "assert x.grad is None and float(x[0]) != 0.0"
    )
    assert _imported_after(code, ("torch._dynamo",)) == []


def test_info_does_not_import_trimesh():
    code = "from meshstyle.commands.info import collect_info\ncollect_info()"
    assert _imported_after(code, ("trimesh", "scipy.spatial")) == []

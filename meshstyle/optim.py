"""Adam that leaves elements with an exactly-zero gradient alone.

In mesh editing most texture cells and many vertices are not seen from a step's random
cameras, so their gradient is exactly zero. Plain Adam would still move them (its first
moment remembers earlier steps) and would advance their bias correction, so unseen faces
drift and a face seen for the first time after 500 steps gets a tiny, under-corrected
update. The original style-transfer code used an Adam that skips such elements; this is
that optimiser, vectorised: an element's parameter, moments and step count change only on
steps where its gradient is non-zero and finite. Bias correction uses each element's own
step count, so optimisation resumes correctly from a saved ``state_dict``.

For an element that receives a non-zero gradient on every step the arithmetic is the same
as ``torch.optim.Adam`` (no weight decay, no AMSGrad), operation by operation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

__all__ = ["ZeroSkipAdam"]

#: Parameters of at least this many elements (float32, CPU, contiguous) go through the
#: one-pass kernel of :mod:`meshstyle.adam_kernel`; for smaller ones its call costs more
#: than the torch form's passes.
KERNEL_MIN_SIZE = 1024


class ZeroSkipAdam(torch.optim.Optimizer):
    """Adam that skips elements whose gradient is exactly zero (or NaN/Inf).

    State per parameter: ``exp_avg`` and ``exp_avg_sq`` (the moments) and ``step`` (float32
    count of the steps that updated each element), all of the parameter's shape, and
    ``calls`` (a CPU scalar: the steps taken, which bounds every count).

    NaN and Inf gradient elements are treated as zero, so a bad pixel in one step can never
    reach the parameters or the moments.

    Args:
        params: parameters or param groups (dicts with ``params`` and optionally ``lr``,
            ``betas``, ``eps``), e.g. vertex offsets at ``lr·0.01`` and texture logits at
            ``lr``.
        lr: step size.
        betas: decay rates of the first and second moments, each in [0, 1).
        eps: added to the denominator for numerical stability.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        _check_hyper(lr, betas, eps)
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps})

    def add_param_group(self, param_group: dict) -> None:
        """Add a param group, validating any hyper-parameters it overrides."""
        _check_hyper(
            param_group.get("lr", 0.0),
            param_group.get("betas", (0.0, 0.0)),
            param_group.get("eps", 0.0),
        )
        _without_compile_guard(torch.optim.Optimizer.add_param_group)(self, param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients (to None by default), as ``torch.optim.Optimizer`` does."""
        _without_compile_guard(torch.optim.Optimizer.zero_grad)(self, set_to_none)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """Take one optimisation step.

        Args:
            closure: re-evaluates the model and returns the loss (optional).

        Returns:
            The closure's loss, or None.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr = float(group["lr"])
            beta1, beta2 = (float(b) for b in group["betas"])
            eps = float(group["eps"])
            for param in group["params"]:
                if param.grad is None:
                    continue
                self._update(param, lr, beta1, beta2, eps)
        return loss

    def _update(self, param: torch.Tensor, lr: float, beta1: float, beta2: float, eps: float):
        grad = param.grad
        if grad.is_sparse:
            raise ValueError("ZeroSkipAdam does not support sparse gradients; got a sparse grad")
        if param.is_complex():
            raise ValueError(f"ZeroSkipAdam needs real parameters; got {param.dtype}")
        state = self.state[param]
        if not state:
            state["step"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            # Steps taken, a CPU scalar like torch.optim.Adam's "step": reading it never
            # waits for a GPU.
            state["calls"] = torch.tensor(0.0)
        step, exp_avg, exp_avg_sq = state["step"], state["exp_avg"], state["exp_avg_sq"]

        # Per-element bias correction, computed in float64 as Adam does in Python floats. An
        # element's count is at most the number of steps taken, so the corrections are
        # computed once per count value and gathered (a float64 pow per element cost more
        # than the rest of the update). Count 0 (never active) reads count 1's entry: its
        # result is discarded, it only has to be finite.
        if "calls" not in state:  # a state saved without it: the counts bound it
            state["calls"] = step.max().cpu() + 1
        else:
            state["calls"] += 1
        calls = int(state["calls"])
        counts = torch.arange(calls + 1, dtype=torch.float64, device=param.device).clamp_min(1.0)
        neg_step_table = (-lr / (1 - torch.pow(beta1, counts))).to(param.dtype)
        bias_correction2_table = (1 - torch.pow(beta2, counts)).sqrt().to(param.dtype)
        if _kernel_applies(param, grad, step, exp_avg, exp_avg_sq):
            from meshstyle.adam_kernel import zero_skip_adam_step

            zero_skip_adam_step(
                param.detach().view(-1).numpy(),
                grad.view(-1).numpy(),
                step.view(-1).numpy(),
                exp_avg.view(-1).numpy(),
                exp_avg_sq.view(-1).numpy(),
                neg_step_table.numpy(),
                bias_correction2_table.numpy(),
                beta1,
                beta2,
                eps,
            )
            # Written through a NumPy view: tell autograd, as an in-place torch op would.
            torch.autograd.graph.increment_version(param)
            return

        # No early exit when nothing is active: testing that would sync a GPU every step.
        active = (grad != 0) & torch.isfinite(grad)
        grad = torch.where(active, grad, 0.0)
        step.add_(active.to(step.dtype))

        # Moments exactly as torch.optim.Adam computes them, kept only where active.
        torch.where(active, exp_avg.lerp(grad, 1 - beta1), exp_avg, out=exp_avg)
        new_sq = exp_avg_sq.mul(beta2).addcmul_(grad, grad, value=1 - beta2)
        torch.where(active, new_sq, exp_avg_sq, out=exp_avg_sq)

        index = step.long()
        neg_step_size = neg_step_table[index]
        denom = (exp_avg_sq.sqrt() / bias_correction2_table[index]).add_(eps)
        # Same order as addcdiv: param + (value * exp_avg) / denom.
        updated = param + (neg_step_size * exp_avg) / denom
        torch.where(active, updated, param, out=param)


def _kernel_applies(*tensors: torch.Tensor) -> bool:
    """Whether the one-pass CPU kernel can update these tensors in place: float32, on the
    CPU, contiguous (and at least ``KERNEL_MIN_SIZE`` elements, below which the kernel's
    call costs more than the torch form's passes)."""
    first = tensors[0]
    return first.numel() >= KERNEL_MIN_SIZE and all(
        t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous() for t in tensors
    )


def _without_compile_guard(method: Callable) -> Callable:
    """The function inside torch's ``_disable_dynamo`` wrapper, where it has one.

    torch wraps some ``Optimizer`` methods so that ``torch.compile`` does not trace them; the
    wrapper's first call imports ``torch._dynamo``, over a second of CPU time before the
    first step. meshstyle never compiles, so it calls the function the wrapper guards.
    """
    return getattr(method, "__wrapped__", method)


def _check_hyper(lr: float, betas: tuple[float, float], eps: float) -> None:
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr >= 0):
        raise ValueError(f"lr must be a finite number >= 0; got {lr!r}")
    if len(tuple(betas)) != 2 or not all(0.0 <= float(b) < 1.0 for b in betas):
        raise ValueError(f"betas must be two numbers in [0, 1); got {betas!r}")
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0; got {eps!r}")

"""The CPU kernel of :class:`meshstyle.optim.ZeroSkipAdam`: one pass over a parameter.

The optimiser's torch form takes about twenty elementwise passes (masks, three ``where``s,
two gathers of the per-count bias corrections); on a 256² texture pyramid that was 6-7 ms
of every edit step on two cores. This kernel reads and writes each element once.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(parallel=True, cache=True)
def zero_skip_adam_step(
    param, grad, step, exp_avg, exp_avg_sq, neg_step_table, bias2_table, beta1, beta2, eps
):
    """One ZeroSkipAdam update, in place, of elements with a non-zero, finite gradient.

    The float32 arithmetic follows the optimiser's torch form operation by operation (no
    fused multiply-adds), so results agree with it to rounding.

    Args:
        param, grad, step, exp_avg, exp_avg_sq: (N,) float32, C-contiguous; ``step`` is each
            element's count of updates. All but ``grad`` are updated.
        neg_step_table: (K,) float32, ``-lr / (1 - beta1^k)`` for count k (k = 0 reads 1's).
        bias2_table: (K,) float32, ``sqrt(1 - beta2^k)``, the same way.
        beta1, beta2, eps: the optimiser's hyper-parameters.
    """
    w1 = np.float32(1.0 - beta1)
    b2 = np.float32(beta2)
    w2 = np.float32(1.0 - beta2)
    e = np.float32(eps)
    for i in numba.prange(param.shape[0]):
        g = grad[i]
        # NaN fails both comparisons, +-Inf the second: only non-zero finite gradients pass.
        if not (g != np.float32(0.0) and abs(g) < np.float32(np.inf)):
            continue
        count = step[i] + np.float32(1.0)
        step[i] = count
        m = exp_avg[i]
        m = m + w1 * (g - m)
        exp_avg[i] = m
        v = exp_avg_sq[i] * b2 + w2 * g * g
        exp_avg_sq[i] = v
        k = np.int64(count)
        denom = np.sqrt(v) / bias2_table[k] + e
        param[i] = param[i] + (neg_step_table[k] * m) / denom

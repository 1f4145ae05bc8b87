"""What a backward call computes, decided once for both backends' drivers.

The drivers get the gradients that reached the rasterizer's outputs (None for an output
that did not reach the loss) and the inputs that need gradients; from them follows which
terms the kernels compute, and which inputs get placeholder arrays instead (the kernels'
argument types need arrays of the right rank even when they are not read).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layout import LINK_SLOTS, SCAN_CHANNELS


@dataclass(frozen=True)
class GradientTerms:
    """The terms of one backward call.

    Attributes:
        use_rgb_grad: colours reached the loss (and were rendered).
        use_alpha_grad: alpha reached the loss.
        use_depth_grad: depth reached the loss.
        use_kato: the approximate x/y gradient is computed (corners need gradients and
            colour or alpha reached the loss); the scan lines are needed only then.
    """

    use_rgb_grad: bool
    use_alpha_grad: bool
    use_depth_grad: bool
    use_kato: bool


def gradient_terms(rgb, grad_rgb, grad_alpha, grad_depth, use_vertex_grad) -> GradientTerms:
    """The :class:`GradientTerms` of a backward call from its arguments (see ``backward``)."""
    use_rgb_grad = grad_rgb is not None and rgb is not None
    use_alpha_grad = grad_alpha is not None
    return GradientTerms(
        use_rgb_grad=use_rgb_grad,
        use_alpha_grad=use_alpha_grad,
        use_depth_grad=grad_depth is not None,
        use_kato=bool(use_vertex_grad) and (use_rgb_grad or use_alpha_grad),
    )


#: Shape and type of the placeholder for each kind of absent input: an image (rgb and its
#: gradient), a map (alpha's or depth's gradient), the scan channels, scan faces and links.
PLACEHOLDERS = {
    "image": ((1, 1, 1, 1), np.float32),
    "map": ((1, 1, 1), np.float32),
    "scan": ((1, 1, SCAN_CHANNELS, 1), np.float32),
    "scan_faces": ((1, 1, 1), np.int32),
    "links": ((1, 1, 1, LINK_SLOTS), np.int32),
}


def placeholders(zeros) -> dict:
    """One zero-filled placeholder of each kind in :data:`PLACEHOLDERS`.

    Args:
        zeros: ``zeros(shape, dtype)`` makes a zeroed array where the backend needs it.
    """
    return {name: zeros(shape, dtype) for name, (shape, dtype) in PLACEHOLDERS.items()}

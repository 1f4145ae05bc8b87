"""Scan lines for the backward pass: each pixel's channels packed along rows and columns,
and links between the active pixels of every line.

The layouts and slots are in :mod:`.layout`. Shared rasterizer math (see :mod:`.device`):
plain functions for every backend.
"""

from __future__ import annotations

from .device import unsigned
from .layout import (
    LINK_NEXT_DOWN,
    LINK_NEXT_UP,
    LINK_RUN_END_DOWN,
    LINK_RUN_END_UP,
    SCAN_ALPHA,
    SCAN_B,
    SCAN_DEPTH,
    SCAN_G,
    SCAN_GRAD_ALPHA,
    SCAN_GRAD_B,
    SCAN_GRAD_G,
    SCAN_GRAD_R,
    SCAN_R,
)


def pack_pixel(
    b, row, col, rgb, alpha, depth, grad_rgb, grad_alpha, use_rgb_grad, use_alpha_grad, scan_x
):
    """Write one pixel's scan channels into the row layout ``scan_x[b, row, :, col]``.

    Channels (``SCAN_CHANNELS``, slots in :mod:`.layout`): the incoming gradients of r, g, b,
    alpha; their values; the depth. Colour channels without a gradient hold zero gradient and
    zero value, so the change dot product needs no branches and gives the same result whatever
    the set of channels. The column layout is the transpose (``scan_y[b, col, :, row]``).
    """
    c = unsigned(col)
    r = unsigned(row)
    for k in range(3):
        if use_rgb_grad:
            scan_x[b, r, SCAN_GRAD_R + k, c] = grad_rgb[b, k, r, c]
            scan_x[b, r, SCAN_R + k, c] = rgb[b, k, r, c]
        else:
            scan_x[b, r, SCAN_GRAD_R + k, c] = 0.0
            scan_x[b, r, SCAN_R + k, c] = 0.0
    pack_alpha_channels(b, row, col, alpha, depth, grad_alpha, use_alpha_grad, scan_x)


def is_colour_channel(k):
    """Whether scan channel ``k`` holds a colour's gradient or value (not alpha or depth)."""
    return SCAN_GRAD_R <= k <= SCAN_GRAD_B or SCAN_R <= k <= SCAN_B


def pack_alpha_channels(b, row, col, alpha, depth, grad_alpha, use_alpha_grad, scan_x):
    """The part of :func:`pack_pixel` that does not depend on colour: alpha's gradient, alpha
    and depth."""
    c = unsigned(col)
    r = unsigned(row)
    scan_x[b, r, SCAN_GRAD_ALPHA, c] = grad_alpha[b, r, c] if use_alpha_grad else 0.0
    scan_x[b, r, SCAN_ALPHA, c] = alpha[b, r, c]
    scan_x[b, r, SCAN_DEPTH, c] = depth[b, r, c]


def is_active(scan, b, line, pos, use_rgb_grad):
    """Whether a pixel can contribute to any face's expansion term.

    With colour gradients any non-zero gradient may. With alpha alone the expanding face
    brings alpha 1, so only an empty pixel whose gradient asks for more alpha can.
    """
    p = unsigned(pos)
    if use_rgb_grad:
        return (
            scan[b, line, SCAN_GRAD_R, p] != 0.0
            or scan[b, line, SCAN_GRAD_G, p] != 0.0
            or scan[b, line, SCAN_GRAD_B, p] != 0.0
            or scan[b, line, SCAN_GRAD_ALPHA, p] != 0.0
        )
    return scan[b, line, SCAN_GRAD_ALPHA, p] < 0.0 and scan[b, line, SCAN_ALPHA, p] == 0.0


def change_dot(scan, b, line, pos, r, g, bl, a):
    """``dL/dI . (I_new - I)`` at a pixel of a scan line, for a new colour ``(r, g, bl, a)``.

    The channels are summed in the fixed order r, g, b, alpha (the reference does the same),
    so that the sign test on the result is reproducible.
    """
    p = unsigned(pos)
    return (
        scan[b, line, SCAN_GRAD_R, p] * (r - scan[b, line, SCAN_R, p])
        + scan[b, line, SCAN_GRAD_G, p] * (g - scan[b, line, SCAN_G, p])
        + scan[b, line, SCAN_GRAD_B, p] * (bl - scan[b, line, SCAN_B, p])
        + scan[b, line, SCAN_GRAD_ALPHA, p] * (a - scan[b, line, SCAN_ALPHA, p])
    )


def link_line(scan, b, line, n_pos, use_rgb_grad, scan_links):
    """Active-pixel links of one scan line, for skipping inactive pixels in expansion.

    Writes ``scan_links[b, line, pos, :]``: LINK_NEXT_UP the first active position >= pos
    (``n_pos`` if none), LINK_NEXT_DOWN the last active position <= pos (-1 if none),
    LINK_RUN_END_UP the last position of the active run starting at an active ``pos`` going
    up, LINK_RUN_END_DOWN the first going down.
    """
    nxt = n_pos
    run_end = n_pos
    previous_active = False
    for pos in range(n_pos - 1, -1, -1):
        p = unsigned(pos)
        active = is_active(scan, b, line, pos, use_rgb_grad)
        if active:
            if not previous_active:
                run_end = pos
            nxt = pos
        previous_active = active
        scan_links[b, line, p, LINK_NEXT_UP] = nxt
        scan_links[b, line, p, LINK_RUN_END_UP] = run_end
    prv = -1
    run_end = -1
    previous_active = False
    for pos in range(n_pos):
        p = unsigned(pos)
        active = is_active(scan, b, line, pos, use_rgb_grad)
        if active:
            if not previous_active:
                run_end = pos
            prv = pos
        previous_active = active
        scan_links[b, line, p, LINK_NEXT_DOWN] = prv
        scan_links[b, line, p, LINK_RUN_END_DOWN] = run_end

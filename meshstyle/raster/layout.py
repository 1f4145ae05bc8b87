"""The packed arrays the kernels share, slot by slot, and the rasterizer's constants.

Every name here is a module-level int or float: numba freezes such globals into compiled
code as compile-time constants, so ``face_info[b, f, FACE_AREA]`` compiles exactly as
``face_info[b, f, 9]`` would. Arrays (``B`` batch, ``F`` faces, ``H x W`` render grid)::

    face_info   (B, F, FACE_INFO_SIZE) float64   per-face screen setup, written by setup_face
    face_bbox   (B, F, 4) int32                  inclusive pixel box of a face
    scan        (B, L, SCAN_CHANNELS, P) float32 per-pixel channels along scan lines
    scan_faces  (B, L, P) int32                  visible face along scan lines
    scan_links  (B, L, P, 4) int32               active-run links along scan lines

A scan line ``L`` is a row and a position ``P`` a column for the x gradients (``scan_x``,
rows of the image as they are), and the transpose for the y gradients (``scan_y``).
Channels are stored per line so that a scan reads each with unit stride.
"""

from __future__ import annotations

# face_info: pixel coordinates (u column, v row) of the three corners, the inverse camera
# depths of the corners and the signed doubled area in pixel units (0 for a skipped face).
# Corner k's u is at FACE_U0 + 2 k and its v at FACE_V0 + 2 k.
FACE_U0 = 0
FACE_V0 = 1
FACE_U1 = 2
FACE_V1 = 3
FACE_U2 = 4
FACE_V2 = 5
FACE_INV_Z0 = 6
FACE_INV_Z1 = 7
FACE_INV_Z2 = 8
FACE_AREA = 9
FACE_INFO_SIZE = 10

# face_bbox: inclusive pixel box; empty (min > max) for a skipped or off-screen face.
BBOX_ROW_MIN = 0
BBOX_ROW_MAX = 1
BBOX_COL_MIN = 2
BBOX_COL_MAX = 3

# scan channels: the incoming gradients of r, g, b, alpha, then their values, then depth.
# Colour channels without a gradient hold zero gradient and zero value.
SCAN_GRAD_R = 0
SCAN_GRAD_G = 1
SCAN_GRAD_B = 2
SCAN_GRAD_ALPHA = 3
SCAN_R = 4
SCAN_G = 5
SCAN_B = 6
SCAN_ALPHA = 7
SCAN_DEPTH = 8
SCAN_CHANNELS = 9

# scan_links slots at position pos of a line: the first active position >= pos (P if
# none), the last active position <= pos (-1 if none), and for an active pos the last
# position of its active run going up, and the first going down. Slot LINK_RUN_END_* is
# LINK_NEXT_* + 2 for either direction.
LINK_NEXT_UP = 0
LINK_NEXT_DOWN = 1
LINK_RUN_END_UP = 2
LINK_RUN_END_DOWN = 3
LINK_SLOTS = 4

FLOAT32_MAX = 3.4028234663852886e38
# Occlusion-aware expansion skips a pixel only when its depth is nearer than the face's plane
# by more than this fraction, so that float32 depth rounding on a coplanar neighbour (a quad's
# other half) cannot flip the decision.
OCCLUSION_TOLERANCE = 1e-6
# Expansion runs of at least this many pixels go through long_expansion_run.
LONG_RUN = 16

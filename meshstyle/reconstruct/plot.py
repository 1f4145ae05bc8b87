"""A small PNG of a training run's curves, drawn with PIL (no plotting library needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from meshstyle.fsutil import atomic_path

_SIZE = (480, 220)
_MARGIN = 36


def _panel(draw: ImageDraw.ImageDraw, box, xs, ys, title: str, colour, y_range=None) -> None:
    left, top, right, bottom = box
    draw.rectangle(box, outline=(120, 120, 120))
    draw.text((left + 4, top - 14), title, fill=(0, 0, 0))
    if len(xs) == 0:
        return
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    lo, hi = y_range if y_range else (float(ys.min()), float(ys.max()))
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    x0, x1 = float(xs.min()), float(max(xs.max(), xs.min() + 1))
    px = left + (xs - x0) / (x1 - x0) * (right - left)
    py = bottom - (ys - lo) / (hi - lo) * (bottom - top)
    points = list(zip(px.tolist(), py.tolist(), strict=True))
    if len(points) > 1:
        draw.line(points, fill=colour, width=2)
    else:
        draw.ellipse(
            [points[0][0] - 2, points[0][1] - 2, points[0][0] + 2, points[0][1] + 2], fill=colour
        )
    draw.text((left + 2, top + 2), f"{hi:.3g}", fill=(90, 90, 90))
    draw.text((left + 2, bottom - 12), f"{lo:.3g}", fill=(90, 90, 90))
    draw.text((right - 60, bottom + 2), f"step {int(x1)}", fill=(90, 90, 90))


def plot_curves(rows: list[dict], path: str | Path) -> Path:
    """Training loss (left) and validation voxel IoU (right) against steps, as a PNG.

    Args:
        rows: log rows with ``step``, ``loss`` and ``val_iou`` (blank where not measured).
        path: the PNG to write (atomically).
    """
    image = Image.new("RGB", (2 * _SIZE[0], _SIZE[1]), "white")
    draw = ImageDraw.Draw(image)
    steps = [int(r["step"]) for r in rows]
    losses = [float(r["loss"]) for r in rows]
    if len(losses) > 20:  # a running mean shows the trend through the batch noise
        k = max(1, len(losses) // 50)
        kernel = np.ones(k) / k
        losses = np.convolve(losses, kernel, mode="valid").tolist()
        steps = steps[k - 1 :]
    val = [(int(r["step"]), float(r["val_iou"])) for r in rows if r.get("val_iou")]
    w, h = _SIZE
    _panel(draw, (_MARGIN, 24, w - 12, h - 20), steps, losses, "training loss", (200, 40, 40))
    _panel(
        draw,
        (w + _MARGIN, 24, 2 * w - 12, h - 20),
        [s for s, _ in val],
        [v for _, v in val],
        "validation voxel IoU",
        (40, 90, 200),
        (0.0, 1.0),
    )
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return Path(path)

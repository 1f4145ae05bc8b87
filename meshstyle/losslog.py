"""The loss log every job writes (``loss.csv``): one row per step."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path


def loss_csv(history: list[dict[str, float]]) -> str:
    """The loss log as CSV: one row per step, floats to 6 significant digits."""
    if not history:
        return "step\n"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(history[0].keys()), lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
    return buffer.getvalue()


def read_loss(path: Path, column: str = "loss") -> list[float]:
    """One column of a loss log; unreadable rows and values become NaN, a missing file []."""
    try:
        rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    values = []
    for row in rows:
        try:
            values.append(float(row.get(column) or "nan"))
        except ValueError:
            values.append(math.nan)
    return values

"""Image input and output: style images in, PNG renders, turntable GIFs and contact sheets out.

Reading is defensive because style images come from users: any file that is missing,
unreadable, not an image, corrupt, truncated or absurdly large becomes one
:class:`ImageError` line naming the file and the rule. Writing is atomic (encode in
memory, then :func:`meshstyle.fsutil.atomic_write_bytes`) and never lets NaN or
out-of-range values through: floats are cleaned and clamped to [0, 1] before quantising.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from meshstyle.fsutil import atomic_write_bytes

__all__ = [
    "MAX_PIXELS",
    "ImageError",
    "contact_sheet",
    "load_image",
    "mean_colour",
    "save_gif",
    "save_png",
    "to_uint8",
]

#: Images with more pixels than this are refused before decoding (decompression bombs).
MAX_PIXELS = 64_000_000
#: No side of a resized image exceeds this: a shorter-side target keeps the aspect ratio
#: only up to it, so a 3000x1 strip cannot become a 128x384000 image.
MAX_SIDE = 4096

_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


class ImageError(ValueError):
    """An image file that cannot be used; the message is one line naming file and rule."""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def load_image(
    path: str | os.PathLike,
    size: int | tuple[int, int] | None = None,
    *,
    max_pixels: int = MAX_PIXELS,
) -> torch.Tensor:
    """Read an image file as an RGB float tensor.

    Greyscale, palette, CMYK and 16-bit images are converted to RGB; transparent images
    are composited over white (the hidden colour under alpha 0 is arbitrary); EXIF
    orientation is applied; animated images give their first frame.

    Args:
        path: the image file.
        size: None to keep the size; an int to scale the shorter side to it (aspect kept,
            unless the longer side would exceed ``MAX_SIDE``: then that side is
            ``MAX_SIDE``); ``(H, W)`` for an exact size. Resampling is antialiased (Lanczos).
        max_pixels: refuse images with more pixels than this before decoding them.

    Returns:
        (3, H, W) float32 tensor in [0, 1].

    Raises:
        ImageError: missing, unreadable, not an image, corrupt or truncated, too large.
    """
    path = Path(path)
    target = _check_size(size)
    if not path.exists():
        raise ImageError(f"image file not found: {path}")
    if path.is_dir():
        raise ImageError(f"image path is a directory, not a file: {path}")
    try:
        # PIL's own bomb check only warns below 2x its limit; make the warning an error too.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise ImageError(
                        f"image {path} is {width}x{height} = {width * height} pixels; the "
                        f"limit is {max_pixels} pixels (decompression-bomb guard)"
                    )
                if target is not None and img.format == "JPEG":
                    # Let the JPEG decoder downscale by 1/2, 1/4 or 1/8 first: much faster.
                    img.draft("RGB", _draft_size(img.size, target))
                img.load()
                img = ImageOps.exif_transpose(img)
                array = _to_rgb_array(img, target)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(
            f"image {path} is too large to decode safely (decompression-bomb guard): "
            f"{_one_line(exc)}"
        ) from None
    except UnidentifiedImageError:
        raise ImageError(f"{path} is not an image file that can be read (unknown format)") from None
    except PermissionError:
        raise ImageError(f"cannot read image file {path}: permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"image {path} is corrupt or truncated: {_one_line(exc)}") from None
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def _check_size(size: int | tuple[int, int] | None) -> int | tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        if not 1 <= size <= MAX_SIDE:
            raise ValueError(f"size must be in [1, {MAX_SIDE}] or (H, W); got {size!r}")
        return int(size)
    try:
        h, w = size
        ok = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (h, w))
    except (TypeError, ValueError):
        ok = False
    if not ok or not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise ValueError(
            f"size must be a positive int or (H, W) of ints in [1, {MAX_SIDE}]; got {size!r}"
        )
    return int(h), int(w)


def _output_size(width: int, height: int, target: int | tuple[int, int]) -> tuple[int, int]:
    """(W, H) in PIL order for a shorter-side int or an exact (H, W) target."""
    if isinstance(target, tuple):
        return target[1], target[0]
    scale = min(target / min(width, height), MAX_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _draft_size(size: tuple[int, int], target: int | tuple[int, int]) -> tuple[int, int]:
    return _output_size(*size, target)


def _to_rgb_array(img: Image.Image, target: int | tuple[int, int] | None) -> np.ndarray:
    """Convert a loaded PIL image to (H, W, 3) float32 in [0, 1], resized if asked."""
    if img.mode in _SIXTEEN_BIT_MODES or img.mode == "F":
        # PIL's convert("RGB") clips 16-bit values at 255; scale through float instead.
        grey = img.convert("F")
        if target is not None:
            grey = grey.resize(_output_size(*grey.size, target), Image.Resampling.LANCZOS)
        values = np.asarray(grey, dtype=np.float32)
        if img.mode == "F":
            peak = 1.0
        else:
            peak = 65535.0 if img.mode != "I" or float(np.max(values, initial=0)) > 255 else 255.0
        values = np.clip(np.nan_to_num(values / peak, nan=0.0, posinf=1.0, neginf=0.0), 0, 1)
        return np.repeat(values[:, :, None], 3, axis=2)
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode == "P" and "transparency" in img.info
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    img = img.convert("RGB")
    if target is not None:
        out = _output_size(*img.size, target)
        if out != img.size:
            img = img.resize(out, Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.float32) / 255.0


def mean_colour(image: torch.Tensor) -> torch.Tensor:
    """Average colour of an image (the paper's background for style transfer).

    Args:
        image: (3, H, W) RGB.

    Returns:
        (3,) mean RGB.
    """
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"image must have shape (3, H, W); got {tuple(image.shape)}")
    return image.float().mean(dim=(1, 2))


def to_uint8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """Convert an image to (H, W, 3) uint8, cleaning NaN/Inf and clamping floats to [0, 1].

    Accepted layouts: (3, H, W) or (1, H, W) channels-first, (H, W, 3) or (H, W, 1)
    channels-last, (H, W) grey. Floats are in [0, 1]; integer arrays in 0..255. A shape
    that fits both layouts (such as (3, 4, 3)) is read channels-first for torch tensors and
    channels-last for NumPy arrays, each library's convention.

    Args:
        image: the image.

    Returns:
        (H, W, 3) uint8 array (a copy).
    """
    is_torch = isinstance(image, torch.Tensor)
    array = image.detach().cpu().numpy() if is_torch else np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ValueError(f"image must have shape (3, H, W), (H, W, 3) or (H, W); got {array.shape}")
    first, last = array.shape[0] in (1, 3), array.shape[2] in (1, 3)
    if first and (not last or is_torch):
        array = array.transpose(1, 2, 0)
    elif not last:
        raise ValueError(f"image must have 1 or 3 channels, first or last; got {array.shape}")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype == np.bool_ or np.issubdtype(array.dtype, np.integer):
        return np.clip(array, 0, 255).astype(np.uint8)
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"image must be float or integer; got {array.dtype}")
    clean = np.nan_to_num(array.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return np.round(np.clip(clean, 0.0, 1.0) * 255.0).astype(np.uint8)


def save_png(path: str | os.PathLike, image: torch.Tensor | np.ndarray) -> Path:
    """Write an image as PNG, atomically.

    Args:
        path: destination.
        image: any layout :func:`to_uint8` accepts.

    Returns:
        The path written.
    """
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())


def save_gif(
    path: str | os.PathLike,
    frames: Sequence[torch.Tensor | np.ndarray],
    fps: float = 20.0,
) -> Path:
    """Write frames as a looping animated GIF (a turntable), atomically.

    Args:
        path: destination.
        frames: (H, W, 3) uint8 frames (or any layout :func:`to_uint8` accepts), all the same
            size.
        fps: frames per second, at most 50; GIF stores delays in 1/100 s, so 20, 25 or 50
            play exactly. Identical consecutive frames are merged (their delays add up).

    Returns:
        The path written.
    """
    if len(frames) == 0:
        raise ValueError("frames must hold at least one frame; got none")
    if not (isinstance(fps, (int, float)) and 0 < fps <= 50):
        # Viewers play delays under 20 ms (over 50 fps) at 100 ms: far slower, not faster.
        raise ValueError(f"fps must be a number in (0, 50]; got {fps!r}")
    arrays = [to_uint8(frame) for frame in frames]
    shape = arrays[0].shape
    for i, array in enumerate(arrays):
        if array.shape != shape:
            raise ValueError(f"frames must all have shape {shape}; frame {i} has {array.shape}")
    images = [Image.fromarray(array) for array in arrays]
    buffer = io.BytesIO()
    images[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=round(1000.0 / fps),
        loop=0,
        disposal=1,
    )
    return atomic_write_bytes(path, buffer.getvalue())


def contact_sheet(
    rows: Sequence[Sequence[torch.Tensor | np.ndarray]],
    labels: Sequence[str] | Sequence[Sequence[str]] | None = None,
    *,
    margin: int = 8,
    background: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """Lay images out on a grid, e.g. a before/after sheet (rows: before, after).

    Cells are as large as the largest image; smaller ones are centred.

    Args:
        rows: rows of images, any layout :func:`to_uint8` accepts.
        labels: one caption per row (written above the row) or one per image (above each
            image), or None.
        margin: pixels between and around cells.
        background: RGB of the sheet.

    Returns:
        (H, W, 3) uint8 sheet.
    """
    if not rows or any(len(row) == 0 for row in rows):
        raise ValueError("rows must be a non-empty list of non-empty lists of images")
    cells = [[to_uint8(image) for image in row] for row in rows]
    per_image = labels is not None and any(not isinstance(label, str) for label in labels)
    if labels is not None:
        if len(labels) != len(rows):
            raise ValueError(f"labels must have one entry per row ({len(rows)}); got {len(labels)}")
        if per_image and any(len(lr) != len(r) for lr, r in zip(labels, rows, strict=True)):
            raise ValueError("per-image labels must match the rows' lengths")
    cell_h = max(image.shape[0] for row in cells for image in row)
    cell_w = max(image.shape[1] for row in cells for image in row)
    columns = max(len(row) for row in cells)
    try:
        # A scalable font sized to the cells when FreeType is available; else PIL's bitmap.
        font = ImageFont.load_default(size=max(12, min(cell_h, cell_w) // 14))
    except (TypeError, ImportError, OSError):
        font = ImageFont.load_default()
    text_h = 0
    if labels is not None:
        top, bottom = font.getbbox("Ag")[1::2]
        text_h = int(bottom - top) + 4
        texts = [t for lab in labels for t in ([lab] if isinstance(lab, str) else lab)]
        if per_image:
            # Captions sit above their own cell: widen cells rather than let text overlap.
            cell_w = max([cell_w] + [math.ceil(font.getlength(str(t))) for t in texts])
    width = margin + columns * (cell_w + margin)
    height = margin + len(cells) * (text_h + cell_h + margin)
    sheet = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(sheet)
    ink = (0, 0, 0) if sum(background) > 382 else (255, 255, 255)
    y = margin
    for r, row in enumerate(cells):
        if labels is not None and not per_image:
            draw.text((margin, y), str(labels[r]), fill=ink, font=font)
        for c, image in enumerate(row):
            x = margin + c * (cell_w + margin)
            if per_image:
                draw.text((x, y), str(labels[r][c]), fill=ink, font=font)
            h, w = image.shape[:2]
            sheet.paste(
                Image.fromarray(image),
                (x + (cell_w - w) // 2, y + text_h + (cell_h - h) // 2),
            )
        y += text_h + cell_h + margin
    return np.asarray(sheet, dtype=np.uint8).copy()

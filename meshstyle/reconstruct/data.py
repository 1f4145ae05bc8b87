"""Reading a reconstruction data set: ``{class}_{split}_images.npz`` and ``_voxels.npz``.

Each images file holds one uint8 array (N, 24, 4, 64, 64): RGB on black and the alpha mask
in channel 3, one image per view of :mod:`.layout`; each voxels file one bool array
(N, 32, 32, 32). Voxels are converted to our index order on load, so everything after this
module sees one convention.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from meshstyle.reconstruct.layout import IMAGE_SIZE, VIEWS, VOXEL_SIZE, Layout

SPLIT_NAMES = ("train", "val", "test")
_FILE = re.compile(r"^(?P<cls>.+)_(?P<split>train|val|test)_images\.npz$")


@dataclass(frozen=True)
class Split:
    """One split of a data set, all classes together.

    Attributes:
        images: (N, 24, 4, 64, 64) uint8.
        voxels: (N, 32, 32, 32) bool, indexed [x, y, z] (our order).
        labels: (N,) int class index into ``classes``.
        classes: class names in file order.
        layout: the conventions the files were read with.
    """

    images: np.ndarray
    voxels: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    layout: Layout

    def __len__(self) -> int:
        return len(self.images)

    def class_members(self, index: int) -> np.ndarray:
        """(M,) object indices of class ``index``."""
        return np.flatnonzero(self.labels == index)


def find_classes(folder: str | Path, split: str = "train") -> list[str]:
    """Class names that have an images file for ``split`` in ``folder``, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: data folder not found")
    names = []
    for path in folder.iterdir():
        match = _FILE.match(path.name)
        if match and match["split"] == split:
            names.append(match["cls"])
    return sorted(names)


def _load_array(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found (expected beside the other split files)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.keys())
            if len(keys) != 1:
                raise ValueError(f"{path}: must hold exactly one array; holds {len(keys)}")
            return archive[keys[0]]
    except (OSError, ValueError, EOFError) as exc:
        if str(path) in str(exc):
            raise
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from None


def load_class(
    folder: Path, name: str, split: str, layout: Layout
) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 24, 4, 64, 64) uint8 and voxels (N, 32, 32, 32) bool (our order) of one class.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: a file breaks the layout's rules (the message names the file and rule).
    """
    images_path = folder / f"{name}_{split}_images.npz"
    voxels_path = folder / f"{name}_{split}_voxels.npz"
    images = _load_array(images_path)
    want = (VIEWS, 4, IMAGE_SIZE, IMAGE_SIZE)
    if images.dtype != np.uint8 or images.ndim != 5 or images.shape[1:] != want or not len(images):
        raise ValueError(
            f"{images_path}: images must be uint8, shape (N, {', '.join(map(str, want))}) "
            f"with N >= 1; got {images.dtype} {images.shape}"
        )
    voxels = _load_array(voxels_path)
    if voxels.ndim != 4 or voxels.shape[1:] != (VOXEL_SIZE,) * 3:
        raise ValueError(
            f"{voxels_path}: voxels must be shape (N, 32, 32, 32); "
            f"got {voxels.dtype} {voxels.shape}"
        )
    if voxels.dtype != np.bool_:
        if not np.isin(voxels, (0, 1)).all():
            raise ValueError(f"{voxels_path}: voxels must be bool (or 0/1); got other values")
        voxels = voxels.astype(bool)
    if len(voxels) != len(images):
        raise ValueError(
            f"{voxels_path}: {len(voxels)} voxel grids for {len(images)} objects in "
            f"{images_path.name}; they must match one to one"
        )
    return images, layout.voxels_to_ours(voxels)


def load_split(
    folder: str | Path, split: str, layout: Layout, classes: list[str] | None = None
) -> Split:
    """Every class's files of one split, concatenated.

    Args:
        folder: the data folder.
        split: "train", "val" or "test".
        layout: the files' conventions.
        classes: class names; all found for ``split`` when None.

    Raises:
        FileNotFoundError, ValueError: with the file and the rule broken.
    """
    folder = Path(folder)
    if split not in SPLIT_NAMES:
        raise ValueError(f"split must be one of {list(SPLIT_NAMES)}; got {split!r}")
    if classes is None:
        classes = find_classes(folder, split)
        if not classes:
            raise FileNotFoundError(
                f"{folder}: no *_{split}_images.npz files (expected {{class}}_{split}_images.npz "
                "and {class}_" + split + "_voxels.npz)"
            )
    elif not folder.is_dir():
        raise FileNotFoundError(f"{folder}: data folder not found")
    images, voxels, labels = [], [], []
    for index, name in enumerate(classes):
        class_images, class_voxels = load_class(folder, name, split, layout)
        images.append(class_images)
        voxels.append(class_voxels)
        labels.append(np.full(len(class_images), index))
    return Split(
        images=np.concatenate(images),
        voxels=np.concatenate(voxels),
        labels=np.concatenate(labels),
        classes=tuple(classes),
        layout=layout,
    )


def sample_batch(split: Split, rng: np.random.Generator, batch_size: int):
    """A training batch as the original draws it: a class uniformly, then an object of it,
    then two independent views.

    Returns:
        objects (B,), views_a (B,), views_b (B,) int arrays.
    """
    members = [split.class_members(c) for c in range(len(split.classes))]
    classes = rng.integers(0, len(members), batch_size)
    objects = np.array([members[c][rng.integers(0, len(members[c]))] for c in classes])
    views_a = rng.integers(0, VIEWS, batch_size)
    views_b = rng.integers(0, VIEWS, batch_size)
    return objects, views_a, views_b


def to_float(images: np.ndarray):
    """uint8 (..., 4, 64, 64) -> float32 torch tensor in [0, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)

"""Mesh loading, validation, welding, normalisation and decimation.

Every mesh enters the tool through :func:`load_mesh`: whatever trimesh can read (OBJ, PLY,
STL, OFF, GLB/GLTF) becomes one :class:`Mesh` of triangles, with per-face UVs and the
diffuse/base-colour image kept when the file has them. Vertices that share a position are
welded so that moving a vertex during editing cannot tear the surface open at UV or normal
seams; the UVs stay per face corner, so the welding loses nothing.

Bad input never reaches the user as a traceback: every rule a file breaks raises
:class:`MeshError` with one line naming the file, the rule and the value.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import sys
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

#: File suffixes :func:`load_mesh` accepts (lower case), for scanning folders.
SUPPORTED_SUFFIXES: tuple[str, ...] = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")

# A folder name longer than this is awkward in shells and file browsers; output folders and
# exported file names are derived from mesh names, so they are cut here once.
_MAX_NAME_LENGTH = 64

# Names Windows refuses for files and folders whatever the suffix.
_RESERVED_NAMES = frozenset(
    ["con", "prn", "aux", "nul"]
    + [f"com{i}" for i in range(1, 10)]
    + [f"lpt{i}" for i in range(1, 10)]
)

# A face whose doubled area is below this fraction of its longest edge squared has collinear
# corners up to rounding: it covers no pixels and its normal is undefined.
_DEGENERATE_RELATIVE_AREA = 1e-10

_FLOAT32_MAX = float(np.finfo(np.float32).max)


class MeshError(ValueError):
    """A mesh file that cannot be used; the message is one line naming the file and the rule."""


@dataclass(frozen=True, eq=False)
class Mesh:
    """A triangle mesh ready for editing.

    Attributes:
        vertices: (V, 3) float32 positions; welded, so vertices never share a position.
        faces: (F, 3) int64 vertex indices, counter-clockwise seen from outside when the
            source file is oriented that way.
        face_uvs: (F, 3, 2) float32 texture coordinates per face corner (origin bottom-left,
            as OBJ and glTF-through-trimesh give them), or None for an untextured mesh.
        texture: (H, W, 3) uint8 RGB image that ``face_uvs`` index, or None. Row 0 is the top
            of the image.
        name: file stem made safe as a folder or file name (see :func:`sanitise_name`).
        source: the file the mesh was loaded from, or None for a mesh built in code.
    """

    vertices: np.ndarray
    faces: np.ndarray
    face_uvs: np.ndarray | None = None
    texture: np.ndarray | None = None
    name: str = "mesh"
    source: Path | None = None

    def __post_init__(self) -> None:
        vertices = np.ascontiguousarray(self.vertices, dtype=np.float32)
        if vertices.ndim != 2 or vertices.shape[1] != 3:
            raise ValueError(f"vertices must have shape (V, 3); got {vertices.shape}")
        faces = np.asarray(self.faces)
        if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
            raise ValueError(f"faces must be int, shape (F, 3); got {faces.dtype} {faces.shape}")
        faces = np.ascontiguousarray(faces, dtype=np.int64)
        if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
            raise ValueError(
                f"faces must index vertices 0..{len(vertices) - 1}; "
                f"got indices {faces.min()}..{faces.max()}"
            )
        object.__setattr__(self, "vertices", vertices)
        object.__setattr__(self, "faces", faces)
        if self.face_uvs is not None:
            uvs = np.ascontiguousarray(self.face_uvs, dtype=np.float32)
            if uvs.shape != (len(faces), 3, 2):
                raise ValueError(f"face_uvs must have shape ({len(faces)}, 3, 2); got {uvs.shape}")
            object.__setattr__(self, "face_uvs", uvs)
        if self.texture is not None:
            texture = np.ascontiguousarray(self.texture)
            if texture.dtype != np.uint8 or texture.ndim != 3 or texture.shape[2] != 3:
                raise ValueError(
                    f"texture must be uint8, shape (H, W, 3); got {texture.dtype} {texture.shape}"
                )
            object.__setattr__(self, "texture", texture)
        if self.source is not None:
            object.__setattr__(self, "source", Path(self.source))
        object.__setattr__(self, "name", sanitise_name(self.name))

    @property
    def num_vertices(self) -> int:
        """V, the number of vertices."""
        return len(self.vertices)

    @property
    def num_faces(self) -> int:
        """F, the number of faces."""
        return len(self.faces)

    @property
    def has_texture(self) -> bool:
        """Whether the mesh carries both per-face UVs and a texture image."""
        return self.face_uvs is not None and self.texture is not None


@dataclass(frozen=True, eq=False)
class Normalisation:
    """The similarity that maps a mesh into the unit frame and back.

    ``apply(v) = (v - centre) * scale``: the bounding box is centred at the origin and its
    longest side spans [-1, 1]. Computed in float64 so that meshes with huge or tiny
    coordinates survive the round trip.

    Attributes:
        centre: (3,) float64 bounding-box centre in the input frame.
        scale: positive factor from input units to normalised units.
    """

    centre: np.ndarray
    scale: float

    def __post_init__(self) -> None:
        centre = np.asarray(self.centre, dtype=np.float64).reshape(3).copy()
        if not np.all(np.isfinite(centre)):
            raise ValueError(f"centre must be finite; got {centre.tolist()}")
        scale = float(self.scale)
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be finite and positive; got {scale}")
        centre.setflags(write=False)  # the dataclass is frozen; so is its array
        object.__setattr__(self, "centre", centre)
        object.__setattr__(self, "scale", scale)

    def apply(self, vertices):
        """Map input-frame positions into the normalised frame.

        Args:
            vertices: (..., 3) numpy array or torch tensor.

        Returns:
            Same shape and array type; float inputs keep their dtype, integer ones become
            float64.
        """
        return _affine(vertices, self.centre, self.scale, forward=True)

    def invert(self, vertices):
        """Map normalised positions back into the input frame (inverse of :meth:`apply`).

        Args:
            vertices: (..., 3) numpy array or torch tensor.

        Returns:
            Same shape and array type; float inputs keep their dtype.
        """
        return _affine(vertices, self.centre, self.scale, forward=False)

    def as_dict(self) -> dict:
        """Plain values for writing into a config or JSON file."""
        return {"centre": [float(c) for c in self.centre], "scale": self.scale}


def _affine(vertices, centre: np.ndarray, scale: float, *, forward: bool):
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(vertices, torch.Tensor):
        if vertices.shape[-1:] != (3,):
            raise ValueError(f"vertices must have shape (..., 3); got {tuple(vertices.shape)}")
        c = torch.tensor(centre.tolist(), dtype=torch.float64, device=vertices.device)
        v = vertices.to(torch.float64)
        out = (v - c) * scale if forward else v / scale + c
        dtype = vertices.dtype if vertices.is_floating_point() else torch.float64
        return out.to(dtype)
    array = np.asarray(vertices)
    if array.shape[-1:] != (3,):
        raise ValueError(f"vertices must have shape (..., 3); got {array.shape}")
    v = array.astype(np.float64)
    out = (v - centre) * scale if forward else v / scale + centre
    dtype = array.dtype if np.issubdtype(array.dtype, np.floating) else np.float64
    return out.astype(dtype)


def sanitise_name(name: str) -> str:
    """Make ``name`` safe as a file or folder name on every platform.

    Keeps ASCII letters, digits, ``-``, ``_`` and single inner dots; everything else
    (path separators, spaces, control characters, ``..``) becomes ``_``. The result is at
    most 64 characters and never empty, hidden or a reserved Windows name.

    Args:
        name: any string, typically a file stem.

    Returns:
        The safe name, e.g. ``"my_teapot_v2"`` for ``"my teapot/v2"``.
    """
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", text)
    text = re.sub(r"\.{2,}", "_", text)
    text = text.strip("._-")[:_MAX_NAME_LENGTH].rstrip("._-")
    if not text:
        return "mesh"
    if text.split(".")[0].lower() in _RESERVED_NAMES:
        text = f"{text}_"
    return text


# --------------------------------------------------------------------------------------
# loading


@dataclass(frozen=True, eq=False)
class _Part:
    """One scene geometry in the scene frame, before concatenation."""

    vertices: np.ndarray  # (n, 3) float64
    faces: np.ndarray  # (m, 3) int64
    face_uvs: np.ndarray | None  # (m, 3, 2) float64
    image: np.ndarray | None  # (h, w, 3) uint8
    colour: np.ndarray  # (3,) uint8, stands in for the image where there is none


def load_mesh(path: str | os.PathLike, *, max_faces: int | None = None) -> Mesh:
    """Read a mesh file into a welded, validated :class:`Mesh`.

    Scenes are flattened with their node transforms applied; polygons are triangulated;
    faces with zero area or out-of-range indices are dropped while good faces remain.
    Textures of several scene parts are packed side by side into one image. The file is
    only read, never written.

    Args:
        path: an OBJ, PLY, STL, OFF, GLB or GLTF file.
        max_faces: refuse meshes with more faces than this (after cleaning).

    Returns:
        The mesh, with ``face_uvs`` (F, 3, 2) and ``texture`` (H, W, 3) when the file has a
        UV-mapped diffuse or base-colour image.

    Raises:
        MeshError: the file is missing, unreadable, of an unsupported type, not parsable,
            empty, has NaN/Inf coordinates, no faces, only degenerate faces, or more faces
            than ``max_faces``.
    """
    path = Path(path)
    label = str(path)
    _check_file(path, label)
    # Geometry only: the plain reading gives what trimesh would, without its import (about
    # half a second of every start).
    plain = _plain_obj(path) if path.suffix.lower() == ".obj" else None
    try:
        scene = None if plain is not None else _read_scene(path, label)
    except _NotText:
        raise
    except MeshError:
        # trimesh's OBJ reader gives up on a single bad face index; a plain reading of the
        # v/f lines keeps the good faces (without materials) and drops the bad ones below
        fallback = _read_obj_geometry(path) if path.suffix.lower() == ".obj" else None
        if fallback is None:
            raise
        parts, points = [fallback], False
    else:
        parts, points = ([plain], False) if plain is not None else _collect_parts(scene, label)
    if not parts:
        if points:
            raise MeshError(f"{label}: mesh has no faces (a point cloud?)")
        raise MeshError(f"{label}: no mesh data found (empty or not a valid {_kind(path)} file)")

    vertices, faces, face_uvs, texture = _concatenate(parts)
    if not np.all(np.isfinite(vertices)):
        bad = int(np.count_nonzero(~np.all(np.isfinite(vertices), axis=1)))
        raise MeshError(f"{label}: {bad} vertices have NaN or Inf coordinates")
    if np.abs(vertices).max(initial=0.0) > _FLOAT32_MAX:
        raise MeshError(
            f"{label}: coordinates exceed the float32 range "
            f"(largest magnitude {np.abs(vertices).max():.3g})"
        )

    total = len(faces)
    keep = _valid_faces(vertices, faces)
    if not keep.any():
        raise MeshError(
            f"{label}: all {total} faces are degenerate (corners on one line up to rounding, "
            "or bad vertex indices)"
        )
    faces = faces[keep]
    if face_uvs is not None:
        face_uvs = face_uvs[keep]
    if max_faces is not None and len(faces) > max_faces:
        raise MeshError(
            f"{label}: mesh has {len(faces)} faces, more than the limit of {max_faces}; "
            f"simplify it with --decimate {max_faces}"
        )

    vertices, faces = weld(vertices, faces)
    return Mesh(
        vertices=vertices.astype(np.float32),
        faces=faces,
        face_uvs=None if face_uvs is None else face_uvs.astype(np.float32),
        texture=texture,
        name=sanitise_name(path.stem),
        source=path,
    )


def _kind(path: Path) -> str:
    return path.suffix.lstrip(".").upper() or "mesh"


def _check_file(path: Path, label: str) -> None:
    if not path.exists():
        raise MeshError(f"{label}: no such file")
    if not path.is_file():
        raise MeshError(f"{label}: not a regular file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise MeshError(
            f"{label}: unsupported file type {suffix or '(no suffix)'!r}; "
            f"expected one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    try:
        with open(path, "rb") as fh:
            first = fh.read(1)
    except OSError as exc:
        raise MeshError(f"{label}: cannot read file ({exc.strerror or exc})") from None
    if not first:
        raise MeshError(f"{label}: file is empty")


def _read_scene(path: Path, label: str):
    import trimesh

    if path.suffix.lower() == ".gltf":
        try:
            json.loads(path.read_bytes())
        except (ValueError, OSError):
            raise MeshError(f"{label}: cannot parse as GLTF: not a JSON document") from None
    try:
        # process=False keeps vertices and faces as written: welding is done here, where it
        # can keep the UV seams, and the loader must not merge or reorder anything first.
        if path.suffix.lower() == ".obj":
            return trimesh.load_scene(
                file_obj=io.BytesIO(_obj_text(path, label).encode("utf-8")),
                file_type="obj",
                resolver=_TextResolver(path.parent),
                process=False,
            )
        if path.suffix.lower() in _TEXT_HEADER_SUFFIXES:
            return trimesh.load_scene(
                file_obj=io.BytesIO(_utf8_text_parts(path, label)),
                file_type=path.suffix.lower()[1:],
                resolver=_TextResolver(path.parent),
                process=False,
            )
        return trimesh.load_scene(str(path), file_type=path.suffix.lower()[1:], process=False)
    except MeshError:
        raise
    except FileNotFoundError as exc:
        missing = Path(exc.filename or str(exc)).name
        raise MeshError(f"{label}: a file it references is missing: {missing}") from None
    except Exception as exc:  # trimesh raises anything from KeyError to struct.error
        detail = " ".join(str(exc).split())[:120]
        reason = f": {type(exc).__name__}: {detail}" if detail else f": {type(exc).__name__}"
        raise MeshError(f"{label}: cannot parse as {_kind(path)}{reason}") from None


# Formats that are text, or (PLY) begin with a text header: trimesh reads their text as UTF-8
# only, and fails on anything else with a message about an optional module.
_TEXT_HEADER_SUFFIXES = (".off", ".ply", ".stl")


def _utf8_text_parts(path: Path, label: str) -> bytes:
    """The file with its text parts in UTF-8 and binary parts as they are.

    OFF is text throughout; a PLY file's header is text and its body may be binary; an STL
    file is either binary (its size matches the triangle count at byte 80) or text.

    Raises:
        MeshError: the file cannot be read, or an OFF file holds binary data.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MeshError(f"{label}: cannot read file ({exc.strerror or exc})") from None
    suffix = path.suffix.lower()
    if suffix == ".ply":
        end = data.find(b"end_header")
        if end < 0:
            return data
        end = data.find(b"\n", end) + 1 or len(data)
        return _decode_text(data[:end]).encode("utf-8") + data[end:]
    if suffix == ".stl" and len(data) >= 84:
        triangles = int.from_bytes(data[80:84], "little")
        if len(data) == 84 + 50 * triangles or not data.lstrip()[:5].lower() == b"solid":
            return data  # binary STL
    nul = data.find(b"\x00")
    if nul >= 0 and suffix == ".off":
        raise _NotText(f"{label}: cannot parse as OFF: binary data at byte {nul} (OFF is text)")
    return _decode_text(data).encode("utf-8")


def _decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), else Latin-1, which reads any byte: OBJ and MTL files
    are ASCII in their numbers and keywords, so only comments and names differ."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _obj_text(path: Path, label: str) -> str:
    """The OBJ file as text trimesh reads right: comments dropped, indices made absolute.

    trimesh resolves negative (relative) face indices against the whole file's vertex
    list instead of the vertices read so far, looks for ``mtllib`` even inside comments,
    and needs an optional module to read anything but UTF-8; this pass removes all three
    traps and refuses binary data with a message.

    Raises:
        MeshError: the file holds NUL bytes (binary data) or cannot be read.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MeshError(f"{label}: cannot read file ({exc.strerror or exc})") from None
    nul = data.find(b"\x00")
    if nul >= 0:
        raise _NotText(f"{label}: cannot parse as OBJ: binary data at byte {nul} (OBJ is text)")
    counts = {"v": 0, "vt": 0, "vn": 0}
    lines = []
    for line in _decode_text(data).replace("\r\n", "\n").replace("\\\n", "").split("\n"):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        key = fields[0]
        if key in counts:
            counts[key] += 1
        elif key in ("f", "l", "p") and "-" in line:
            line = " ".join([key] + [_absolute_corner(f, counts) for f in fields[1:]])
        lines.append(line)
    return "\n".join(lines) + "\n"


def _absolute_corner(corner: str, counts: dict[str, int]) -> str:
    """``-1/-2/-1`` -> absolute 1-based ``v/vt/vn`` indices given the counts read so far."""
    parts = corner.split("/")
    for slot, key in enumerate(("v", "vt", "vn")[: len(parts)]):
        text = parts[slot]
        if text.startswith("-") and text[1:].isdigit():
            parts[slot] = str(counts[key] + 1 + int(text))
    return "/".join(parts)


class _NotText(MeshError):
    """A text format's file holds binary data: no plain reading can rescue it."""


class _TextResolver:
    """trimesh's file resolver, with MTL files passed on as UTF-8 (see :func:`_decode_text`).

    It also gives the folder of a file read from memory, for the textures it names.
    """

    def __init__(self, folder: Path):
        import trimesh

        self._inner = trimesh.resolvers.FilePathResolver(str(folder))

    def get(self, name: str) -> bytes:
        data = self._inner.get(name)
        if name.strip().lower().endswith(".mtl"):
            return _decode_text(data).encode("utf-8")
        return data

    def __getitem__(self, name: str) -> bytes:
        return self.get(name)

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


# OBJ statements the plain reading handles exactly as trimesh does: everything but faces and
# positions is either ignored by both (normals, smoothing groups, comments) or absent.
_PLAIN_OBJ_KEYS = frozenset(("v", "vn", "f", "s", "o", "g"))


def _plain_obj(path: Path) -> _Part | None:
    """The geometry of an OBJ file that holds only positions and faces, else None.

    A file qualifies when every statement is ``v x y z``, ``vn``, ``f``, ``s`` or one ``o``
    or ``g`` name, with no materials, texture coordinates, vertex colours, line joins or
    binary data: then trimesh would read exactly the positions and fan-triangulated faces
    that :func:`_read_obj_geometry` reads. Anything else (or an unreadable file) is left to
    the full reader and its messages.
    """
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if b"\x00" in data or b"\\" in data:
        return None
    names = 0
    for line in data.splitlines():
        fields = line.split(maxsplit=4)
        if not fields or fields[0].startswith(b"#"):
            continue
        key = fields[0].decode("latin-1")
        if key not in _PLAIN_OBJ_KEYS or (key == "v" and len(fields) != 4):
            return None
        if key in ("o", "g"):
            names += 1
            if names > 1:
                return None
    # Lines split as open() splits them (str.splitlines would also split at \x85 and others).
    return _obj_geometry(io.StringIO(data.decode("latin-1"), newline=None))


def _read_obj_geometry(path: Path) -> _Part | None:
    """Vertices and fan-triangulated faces of an OBJ file, ignoring everything else.

    Returns None when the file cannot be read or yields no face at all. Indices are not
    range-checked here.
    """
    try:
        with open(path, encoding="latin-1") as fh:
            return _obj_geometry(fh)
    except OSError:
        return None


def _obj_geometry(lines) -> _Part | None:
    """:func:`_read_obj_geometry` of an iterable of text lines."""
    vertices: list[list[float]] = []
    faces: list[tuple[int, int, int]] = []
    for line in lines:
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "v" and len(fields) >= 4:
            try:
                vertices.append([float(x) for x in fields[1:4]])
            except ValueError:
                vertices.append([math.nan] * 3)
        elif fields[0] == "f" and len(fields) >= 4:
            try:
                ids = [int(field.split("/")[0]) for field in fields[1:]]
            except ValueError:
                continue
            # OBJ indices are 1-based; negative ones count back from the last vertex
            ids = [i - 1 if i > 0 else len(vertices) + i for i in ids]
            faces.extend((ids[0], ids[k], ids[k + 1]) for k in range(1, len(ids) - 1))
    if not faces:
        return None
    return _Part(
        vertices=np.asarray(vertices, dtype=np.float64).reshape(-1, 3),
        faces=np.asarray(faces, dtype=np.int64),
        face_uvs=None,
        image=None,
        colour=np.array([200, 200, 200], dtype=np.uint8),
    )


def _collect_parts(scene, label: str) -> tuple[list[_Part], bool]:
    """Scene geometries as world-frame parts; also whether any point-only geometry was seen."""
    import trimesh

    parts: list[_Part] = []
    points = False
    try:
        for node in scene.graph.nodes_geometry:
            transform, geometry_name = scene.graph[node]
            geometry = scene.geometry[geometry_name]
            if not isinstance(geometry, trimesh.Trimesh):
                points = points or len(getattr(geometry, "vertices", ())) > 0
                continue
            faces = np.asarray(geometry.faces, dtype=np.int64).reshape(-1, 3)
            vertices = np.asarray(geometry.vertices, dtype=np.float64).reshape(-1, 3)
            if len(faces) == 0:
                points = points or len(vertices) > 0
                continue
            transform = np.asarray(transform, dtype=np.float64)
            if not np.array_equal(transform, np.eye(4)):
                # non-finite input is reported once, after concatenation; no warnings here
                with np.errstate(invalid="ignore", over="ignore"):
                    vertices = vertices @ transform[:3, :3].T + transform[:3, 3]
            face_uvs, image, colour = _visual(geometry, faces, len(vertices))
            if np.linalg.det(transform[:3, :3]) < 0:
                # a mirroring node transform turns the surface inside out; flip the winding
                faces = faces[:, ::-1].copy()
                if face_uvs is not None:
                    face_uvs = face_uvs[:, ::-1].copy()
            parts.append(_Part(vertices, faces, face_uvs, image, colour))
    except MeshError:
        raise
    except Exception as exc:
        raise MeshError(f"{label}: cannot read the scene: {type(exc).__name__}: {exc}") from None
    return parts, points


def _visual(geometry, faces: np.ndarray, num_vertices: int):
    """Per-face UVs (m, 3, 2), the RGB image (h, w, 3) and a stand-in colour (3,)."""
    visual = geometry.visual
    colour = np.array([200, 200, 200], dtype=np.uint8)
    try:
        main = np.asarray(visual.main_color, dtype=np.uint8).reshape(-1)[:3]
        if main.shape == (3,):
            colour = main
    except Exception:  # visuals without a usable colour keep the neutral grey
        pass
    if getattr(visual, "kind", None) != "texture":
        return None, None, colour
    material = getattr(visual, "material", None)
    image = _material_image(material)
    uv = getattr(visual, "uv", None)
    if uv is None or image is None:
        return None, None, colour
    uv = np.asarray(uv, dtype=np.float64)
    if uv.ndim != 2 or uv.shape[1] < 2 or len(uv) != num_vertices:
        return None, None, colour
    safe = np.clip(faces, 0, num_vertices - 1)
    return uv[safe][:, :, :2], image, colour


def _material_image(material) -> np.ndarray | None:
    """The diffuse/base-colour image of a trimesh material as (h, w, 3) uint8, or None."""
    if material is None:
        return None
    image = getattr(material, "baseColorTexture", None)
    factor = getattr(material, "baseColorFactor", None)
    if image is None:
        image = getattr(material, "image", None)
        factor = None
    if image is None:
        return None
    try:
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except Exception:
        return None
    if rgb.ndim != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        return None
    if factor is not None:
        # glTF multiplies the (linear) texel by baseColorFactor; fold it into the image
        f = np.asarray(factor, dtype=np.float64).reshape(-1)[:3]
        if f.max() > 1.0:
            f = f / 255.0
        if not np.allclose(f, 1.0):
            linear = _srgb_to_linear(rgb / 255.0) * f
            rgb = np.round(_linear_to_srgb(linear) * 255.0).clip(0, 255).astype(np.uint8)
    return np.ascontiguousarray(rgb)


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


def _concatenate(parts: list[_Part]):
    """Join parts into one (vertices, faces, face_uvs, texture); pack several images."""
    offsets = np.cumsum([0] + [len(p.vertices) for p in parts])
    vertices = np.concatenate([p.vertices for p in parts])
    faces = np.concatenate([p.faces + o for p, o in zip(parts, offsets[:-1], strict=True)])
    textured = [p for p in parts if p.image is not None]
    if not textured:
        return vertices, faces, None, None
    if len(parts) == 1:
        return vertices, faces, parts[0].face_uvs, parts[0].image
    texture, uv_list = _pack_images(parts)
    return vertices, faces, np.concatenate(uv_list), texture


def _pack_images(parts: list[_Part]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Place each part's image (or a colour swatch) side by side in one texture.

    Each part's UVs are brought into [0, 1] per face (dropping whole-tile repeats) and kept
    half a texel inside its own image, so bilinear lookups never read a neighbour's texels.
    """
    images = [
        p.image if p.image is not None else np.broadcast_to(p.colour, (4, 4, 3)) for p in parts
    ]
    height = max(im.shape[0] for im in images)
    width = sum(im.shape[1] for im in images)
    atlas = np.zeros((height, width, 3), dtype=np.uint8)
    uv_list = []
    x0 = 0
    for part, image in zip(parts, images, strict=True):
        h, w = image.shape[:2]
        # bottom-aligned, so that v=0 of every image is the bottom row of the atlas
        atlas[height - h :, x0 : x0 + w] = image
        if part.image is None or part.face_uvs is None:
            uv = np.full((len(part.faces), 3, 2), 0.5)
        else:
            uv = part.face_uvs - np.floor(part.face_uvs.mean(axis=1, keepdims=True))
        u = np.clip(uv[..., 0], 0.5 / w, 1 - 0.5 / w)
        v = np.clip(uv[..., 1], 0.5 / h, 1 - 0.5 / h)
        uv_list.append(np.stack([(x0 + u * w) / width, v * h / height], axis=-1))
        x0 += w
    return atlas, uv_list


def _valid_faces(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F,) bool: faces with in-range, distinct indices and non-zero area."""
    n = len(vertices)
    keep = np.all((faces >= 0) & (faces < n), axis=1)
    keep &= (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2])
    keep &= faces[:, 0] != faces[:, 2]
    safe = np.where(keep[:, None], faces, 0)
    tri = vertices[safe]
    e0 = tri[:, 1] - tri[:, 0]
    e1 = tri[:, 2] - tri[:, 0]
    e2 = tri[:, 2] - tri[:, 1]
    doubled_area = np.linalg.norm(np.cross(e0, e1), axis=1)
    longest = np.max(np.stack([(e * e).sum(axis=1) for e in (e0, e1, e2)]), axis=0)
    keep &= doubled_area > _DEGENERATE_RELATIVE_AREA * longest
    return keep


def weld(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge vertices with identical positions and drop unreferenced ones.

    Args:
        vertices: (V, 3) float positions.
        faces: (F, 3) int indices into ``vertices``.

    Returns:
        ``(vertices (V', 3), faces (F, 3) int64)`` with V' <= V; face order is unchanged.
    """
    vertices = np.asarray(vertices)
    faces = np.asarray(faces, dtype=np.int64)
    # + 0.0 turns -0.0 into 0.0 so that both signs of zero weld together
    used, remap = np.unique(faces.ravel(), return_inverse=True)
    positions = vertices[used] + 0.0
    unique, inverse = np.unique(positions, axis=0, return_inverse=True)
    # keep first-seen order so that welding does not shuffle the vertex list
    first = np.full(len(unique), len(positions), dtype=np.int64)
    np.minimum.at(first, inverse.reshape(-1), np.arange(len(positions)))
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    new_faces = rank[inverse.reshape(-1)][remap].reshape(-1, 3)
    return positions[first[order]], new_faces


# --------------------------------------------------------------------------------------
# normalisation and decimation


def normalise(mesh: Mesh) -> tuple[Mesh, Normalisation]:
    """Centre the bounding box at the origin and scale its longest side to [-1, 1].

    Args:
        mesh: any mesh; flat (zero-thickness) meshes are fine.

    Returns:
        ``(normalised mesh, normalisation)``; ``normalisation.invert`` maps edited vertices
        back into the input frame.

    Raises:
        MeshError: all vertices coincide (nothing to scale) or coordinates are not finite.
    """
    label = str(mesh.source) if mesh.source is not None else mesh.name
    v = mesh.vertices.astype(np.float64)
    if len(v) == 0 or not np.all(np.isfinite(v)):
        raise MeshError(f"{label}: cannot normalise: vertices are empty or not finite")
    lo = v.min(axis=0)
    hi = v.max(axis=0)
    centre = (lo + hi) / 2.0
    longest = float(np.max(hi - lo))
    if not longest > 0.0:
        raise MeshError(
            f"{label}: cannot normalise: all {len(v)} vertices lie at one point {centre.tolist()}"
        )
    scale = 2.0 / longest
    if not math.isfinite(scale):
        raise MeshError(f"{label}: cannot normalise: extent {longest:.3g} is too small")
    norm = Normalisation(centre=centre, scale=scale)
    vertices = norm.apply(v)
    # rounding may put a bbox corner a hair outside [-1, 1]; the contract says it spans it
    vertices = np.clip(vertices, -1.0, 1.0).astype(np.float32)
    return replace(mesh, vertices=vertices), norm


def decimate(mesh: Mesh, target_faces: int) -> Mesh:
    """Simplify a mesh to about ``target_faces`` faces with quadric edge collapse.

    Uses trimesh's ``simplify_quadric_decimation`` (package ``fast-simplification``).
    Collapsing edges moves vertices, so UVs and the texture do not carry over: the result
    is untextured. A mesh already at or below the target is returned unchanged.

    Args:
        mesh: the mesh to simplify.
        target_faces: wanted number of faces, at least 4.

    Returns:
        A new welded :class:`Mesh` with at most about ``target_faces`` faces.

    Raises:
        MeshError: bad target, the simplifier is not installed, or it fails.
    """
    label = str(mesh.source) if mesh.source is not None else mesh.name
    if isinstance(target_faces, bool) or not isinstance(target_faces, int | np.integer):
        raise MeshError(f"{label}: decimate target must be an integer; got {target_faces!r}")
    if target_faces < 4:
        raise MeshError(f"{label}: decimate target must be at least 4 faces; got {target_faces}")
    if mesh.num_faces <= target_faces:
        return mesh
    try:
        import fast_simplification  # noqa: F401
    except ImportError:
        raise MeshError(
            f"{label}: decimation needs the 'fast-simplification' package; "
            "install it with: pip install fast-simplification"
        ) from None
    import trimesh

    try:
        source = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
        simple = source.simplify_quadric_decimation(face_count=int(target_faces))
        vertices = np.asarray(simple.vertices, dtype=np.float64)
        faces = np.asarray(simple.faces, dtype=np.int64)
    except Exception as exc:
        raise MeshError(
            f"{label}: decimation to {target_faces} faces failed: {type(exc).__name__}: {exc}"
        ) from None
    keep = _valid_faces(vertices, faces) if len(faces) else np.zeros(0, dtype=bool)
    if not keep.any():
        raise MeshError(f"{label}: decimation to {target_faces} faces left no usable faces")
    vertices, faces = weld(vertices, faces[keep])
    return Mesh(
        vertices=vertices.astype(np.float32), faces=faces, name=mesh.name, source=mesh.source
    )


_OBJ_REFERENCE = re.compile(rb"^\s*(mtllib|map_\w+|bump|disp|norm)\s+(.+?)\s*$", re.MULTILINE)


def referenced_files(path: Path) -> dict[str, Path]:
    """The MTL files an OBJ names and the images those name, by the name written there.

    Part of the mesh as input: a changed texture is a changed input, and an output must
    never replace one of them.
    """
    if path.suffix.lower() != ".obj":
        return {}
    found: dict[str, Path] = {}
    queue = [path]
    while queue:
        current = queue.pop()
        try:
            data = current.read_bytes()
        except OSError:
            continue
        for match in _OBJ_REFERENCE.finditer(data):
            # the file name is the last word: map_Kd may carry options (-s 1 1 1 file.png)
            name = match[2].split()[-1].decode("utf-8", "replace")
            target = path.parent / name
            if name in found or not target.is_file():
                continue
            found[name] = target
            if match[1] == b"mtllib":
                queue.append(target)
    return found

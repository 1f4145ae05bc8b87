"""The style objective's parts, and its colour term."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from meshstyle.features import load_feature_network
from meshstyle.objectives import StyleObjective
from meshstyle.settings import EditSettings

LAYERS = ("relu1_2", "relu2_2")


@pytest.fixture(scope="module")
def network():
    return load_feature_network("vgg19", LAYERS)


def _loss(network, settings, images, style):
    objective = StyleObjective(network, style, settings)
    silhouettes = torch.ones(images.shape[0], *images.shape[-2:])
    vertices = torch.zeros(4, 3)
    return objective.loss(network(images), images, silhouettes, vertices, vertices)


def test_colour_term_counts_only_when_weighted(network):
    torch.manual_seed(0)
    style = torch.rand(3, 32, 32) * 0.5  # dark
    images = torch.rand(2, 3, 32, 32) * 0.5 + 0.5  # bright
    base = EditSettings(style_layers=LAYERS)
    off = _loss(network, base, images, style)
    assert "colour" not in off.parts
    on = _loss(network, dataclasses.replace(base, colour_weight=1e10), images, style)
    assert on.parts["colour"] > 0
    total = sum(on.parts[k] for k in ("style", "content", "tv", "colour"))
    assert on.parts["loss"] == pytest.approx(total, rel=1e-6)
    assert float(on.total) == pytest.approx(off.parts["loss"] + on.parts["colour"], rel=1e-5)


def test_colour_term_repeats_with_the_seed(network):
    torch.manual_seed(1)
    style, images = torch.rand(3, 32, 32), torch.rand(2, 3, 32, 32)
    settings = EditSettings(style_layers=LAYERS, colour_weight=1.0, seed=3)
    a = _loss(network, settings, images, style).parts["colour"]
    b = _loss(network, settings, images, style).parts["colour"]
    c = _loss(network, dataclasses.replace(settings, seed=4), images, style).parts["colour"]
    assert a == b and a != c

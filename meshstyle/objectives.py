"""What an edit optimises: the style-transfer loss and the DeepDream objective.

An objective turns one step's renders into a scalar loss (lower is better) and a record of
its parts for the loss log. The edit loop knows nothing about either application.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from meshstyle.camera import Cameras
from meshstyle.settings import EditSettings
from meshstyle.shading import Lights
from meshstyle.views import backgrounds, tilted_lights

# Projection directions per step of the colour term: 16 random directions already pin a 3D
# colour distribution closely; more cost sorting time for no visible change.
COLOUR_DIRECTIONS = 16


@dataclass(frozen=True)
class LossParts:
    """One step's loss.

    Attributes:
        total: the scalar that is minimised (requires grad).
        parts: named, already weighted terms as floats, for the log.
    """

    total: torch.Tensor
    parts: dict[str, float]


class StyleObjective:
    """style·Σ‖G − G_style‖² + content·Σ(v − v₀)² + tv·TV, as in the paper, plus
    colour·SW₂(rendered colours, painting's colours) when ``colour_weight`` > 0 (see
    docs/architecture.md, section 8).

    Args:
        network: a feature network returning the style layers.
        style_image: (3, H, W) style image in [0, 1].
        settings: weights, layers and the view/light rules.
    """

    name = "style"

    def __init__(self, network, style_image: torch.Tensor, settings: EditSettings):
        from meshstyle.images import mean_colour
        from meshstyle.losses import style_grams

        self.network = network
        self.settings = settings
        self.style_mean = mean_colour(style_image)
        self.style_pixels = style_image.detach().float().reshape(3, -1).T.contiguous()
        # Fresh projection directions every step (seeded, so runs repeat) cover colour
        # space without favouring a fixed few.
        self.directions = torch.Generator().manual_seed(settings.seed)
        with torch.no_grad():
            self.target_grams = style_grams(network, style_image[None], settings.style_layers)

    def lights(self, cameras: Cameras, rng: np.random.Generator) -> Lights:
        return tilted_lights(cameras, self.settings, rng)

    def backgrounds(self, rng: np.random.Generator) -> torch.Tensor:
        return backgrounds(self.settings, rng, self.style_mean)

    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        # The trunk's own dtype: the style loss's Grams widen the maps themselves.
        return self.network(images, widen=False)

    def loss(
        self,
        features: dict[str, torch.Tensor],
        images: torch.Tensor,
        silhouettes: torch.Tensor,
        vertices: torch.Tensor,
        base_vertices: torch.Tensor,
    ) -> LossParts:
        """Weighted loss of one step from its features and renders."""
        from meshstyle.losses import colour_distribution_loss, content_loss, style_loss, tv_loss

        s = self.settings
        style = s.style_weight * style_loss(features, self.target_grams, silhouettes)
        content = s.content_weight * content_loss(vertices, base_vertices)
        tv = s.tv_weight * tv_loss(images, silhouettes)
        terms = {"style": style, "content": content, "tv": tv}
        if s.colour_weight > 0:
            d = torch.randn(3, COLOUR_DIRECTIONS, generator=self.directions)
            d = d / torch.linalg.vector_norm(d, dim=0, keepdim=True)
            terms["colour"] = s.colour_weight * colour_distribution_loss(
                images, silhouettes, self.style_pixels, d
            )
        total = sum(terms.values())
        parts = {"loss": float(total.detach())}
        parts.update({name: float(term.detach()) for name, term in terms.items()})
        return LossParts(total, parts)


class DreamObjective:
    """−mean(activation²) of one layer (or channel) + edge_weight·F·var(edge lengths).

    Args:
        network: a feature network returning ``settings.layer``.
        faces: (F, 3) mesh faces, for the edge-length regulariser.
        settings: layer, channel, weights and view rules.
    """

    name = "deepdream"

    def __init__(self, network, faces: torch.Tensor, settings: EditSettings):
        from meshstyle.losses import unique_edges

        self.network = network
        self.settings = settings
        self.edges = unique_edges(faces)
        self.face_count = int(faces.shape[0])

    def lights(self, cameras: Cameras, rng: np.random.Generator) -> Lights:
        b = cameras.batch_size
        # DeepDream lights with ambient only, so colour is what the network sees, not shading.
        return Lights(
            ambient=torch.full((b,), self.settings.ambient),
            directional=torch.full((b,), self.settings.directional),
            direction=-cameras.forward,
        )

    def backgrounds(self, rng: np.random.Generator) -> torch.Tensor:
        return backgrounds(self.settings, rng)

    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.network(images)

    def activation(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        from meshstyle.losses import deepdream_objective

        channel = None if self.settings.channel < 0 else self.settings.channel
        return deepdream_objective(features[self.settings.layer], channel)

    def loss(
        self,
        features: dict[str, torch.Tensor],
        images: torch.Tensor,
        silhouettes: torch.Tensor,
        vertices: torch.Tensor,
        base_vertices: torch.Tensor,
    ) -> LossParts:
        """Weighted loss of one step: minus the activation plus the edge regulariser."""
        from meshstyle.losses import edge_length_variance

        activation = self.activation(features)
        edges = (
            self.settings.edge_weight * self.face_count * edge_length_variance(vertices, self.edges)
        )
        total = -activation + edges
        return LossParts(
            total,
            {
                "loss": float(total.detach()),
                "activation": float(activation.detach()),
                "edge": float(edges.detach()),
            },
        )

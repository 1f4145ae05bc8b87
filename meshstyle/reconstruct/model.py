"""The reconstruction networks of Kato et al. (2018) and their regularisers.

- :class:`Encoder`: 4 x 64 x 64 RGBA -> 512 features (3 conv 5x5 stride 2: 64, 128, 256
  channels, optionally batch-normalised as in Liu et al.'s port; then fully connected 1024,
  1024, 512; ReLU throughout).
- :class:`MeshDecoder`: features -> FC 1024 -> 2048, then a centroid head (3) and a
  per-vertex bias head (642 x 3) deforming a sphere template. A vertex moves in a squashed
  coordinate (logit of its template coordinate plus the bias, back through a sigmoid), so it
  can never leave the unit cube, and the cube is re-centred on the centroid.
- :class:`VoxelDecoder`: features -> 32^3 occupancy probabilities (FC then 3-D transposed
  convolutions), the voxel baseline of the paper's comparison, trained with silhouettes by
  projecting occupancy along view rays (:func:`project_voxels`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as functional
from torch import nn

from meshstyle.reconstruct.layout import IMAGE_SIZE

DECODERS = ("mesh", "voxel")


def sphere_template() -> tuple[torch.Tensor, torch.Tensor]:
    """The 642-vertex unit icosphere, turned so that no coordinate is exactly zero.

    The decoder takes the logit of each |coordinate|: a zero would be stuck at zero forever.

    Returns:
        vertices (642, 3) float32 and faces (1280, 3) int64, outward-facing.
    """
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    # A fixed turn about an oblique axis moves every vertex off the coordinate planes.
    turn = trimesh.transformations.rotation_matrix(math.radians(23.0), [1.0, 2.0, 3.0])[:3, :3]
    vertices = np.asarray(sphere.vertices) @ turn.T
    return (
        torch.tensor(vertices, dtype=torch.float32),
        torch.tensor(np.asarray(sphere.faces), dtype=torch.int64),
    )


class Encoder(nn.Module):
    """(B, 4, 64, 64) images in [0, 1] -> (B, 512) features.

    Args:
        channels_in: input channels (RGBA).
        features: output width.
        batch_norm: batch-normalise each convolution's output (SoftRas's port of the model
            does; Kato et al.'s original does not). Off by default: in 15 minutes on two
            CPU cores it scored lower on test data (0.548 against 0.572 mean voxel IoU).
    """

    def __init__(self, channels_in: int = 4, features: int = 512, batch_norm: bool = False):
        super().__init__()
        layers: list[nn.Module] = []
        for width_in, width in ((channels_in, 64), (64, 128), (128, 256)):
            layers.append(nn.Conv2d(width_in, width, 5, stride=2, padding=2))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU())
        # NHWC, the layout oneDNN's convolutions are fastest in: the encoder's forward and
        # backward at batch 32 on two cores took 114 -> 102 ms in fp32, 56 -> 50 ms in bf16.
        # A loaded state dict is copied into these weights and keeps their layout.
        self.convs = nn.Sequential(*layers).to(memory_format=torch.channels_last)
        side = IMAGE_SIZE // 8
        self.fcs = nn.Sequential(
            nn.Linear(256 * side * side, 1024),
            nn.ReLU(),
            nn.Linear(1024, 1024),
            nn.ReLU(),
            nn.Linear(1024, features),
            nn.ReLU(),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        maps = self.convs(images.contiguous(memory_format=torch.channels_last))
        # flatten reads (C, H, W) order whatever the layout, as the first layer was trained.
        return self.fcs(maps.flatten(1))


class MeshDecoder(nn.Module):
    """(B, 512) features -> (B, 642, 3) vertices in [-0.5, 0.5]^3 of the sphere's faces.

    Args:
        features: input width.
        centroid_scale: the centroid head's output is multiplied by this (0.1 in the
            original) so the object starts centred.
        template_scale: the template sphere's radius inside the unit cube (0.5 originally).
    """

    #: Stays in float32 in a bf16 run, its vertex heads keeping float32's resolution (see
    #: ``Trainer.forward``).
    bf16_tolerant = False

    def __init__(self, features: int = 512, centroid_scale: float = 0.1, template_scale=0.5):
        super().__init__()
        vertices, faces = sphere_template()
        base = vertices * template_scale
        self.register_buffer("sign", torch.sign(base), persistent=False)
        self.register_buffer("base_logit", torch.logit(base.abs()), persistent=False)
        self.register_buffer("faces", faces, persistent=False)
        self.centroid_scale = centroid_scale
        self.fcs = nn.Sequential(
            nn.Linear(features, 1024), nn.ReLU(), nn.Linear(1024, 2048), nn.ReLU()
        )
        self.centroid = nn.Linear(2048, 3)
        self.bias = nn.Linear(2048, len(vertices) * 3)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden = self.fcs(features)
        centroid = torch.tanh(self.centroid(hidden) * self.centroid_scale)[:, None, :]
        bias = self.bias(hidden).view(len(features), -1, 3)
        # |v| = sigmoid(logit|template| + bias) keeps each coordinate inside (-1, 1); the
        # positive and negative halves are then rescaled so the cube is re-centred on the
        # centroid without leaving it.
        v = torch.sigmoid(self.base_logit + bias) * self.sign
        v = functional.relu(v) * (1 - centroid) - functional.relu(-v) * (1 + centroid)
        return (v + centroid) * 0.5


class VoxelDecoder(nn.Module):
    """(B, 512) features -> (B, 32, 32, 32) occupancy probabilities indexed [x, y, z].

    Its transposed convolutions run channels_last (NDHWC). In a bf16 run it runs in bf16
    (its output probabilities in float32): occupancy needs no float32 resolution, and this
    decoder is most of a voxel step's time (its forward and backward at batch 32 on two AMX
    cores: 145 to 149 ms in float32, 70 to 72 ms in bf16).
    """

    #: Whether a bf16 run may run this decoder in bf16 (see ``Trainer.forward``).
    bf16_tolerant = True

    def __init__(self, features: int = 512):
        super().__init__()
        self.fcs = nn.Sequential(
            nn.Linear(features, 1024), nn.ReLU(), nn.Linear(1024, 128 * 4 * 4 * 4), nn.ReLU()
        )
        self.deconvs = nn.Sequential(
            nn.ConvTranspose3d(128, 64, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose3d(64, 32, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose3d(32, 1, 4, stride=2, padding=1),
        ).to(memory_format=torch.channels_last_3d)
        # Start nearly empty (p = sigmoid(-5) = 0.007 a voxel) so that a ray through the
        # grid is stopped with a probability well below 1 and every voxel gets a gradient.
        with torch.no_grad():
            self.deconvs[-1].bias.fill_(-5.0)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden = self.fcs(features).view(len(features), 128, 4, 4, 4)
        logits = self.deconvs(hidden.contiguous(memory_format=torch.channels_last_3d))
        return torch.sigmoid(logits[:, 0].float())


def init_like_original(module: nn.Module) -> None:
    """Initialise every linear and 2-D convolution layer of ``module`` as the original
    (Chainer's default): weights normal with variance 1 / fan-in, biases zero.

    PyTorch's default (uniform, variance 1 / (3 fan-in), random biases) shrinks the signal
    through the encoder's six ReLU layers: at its start the decoder's output differs between
    input images about 100 times less, and training first fits one mean shape for every
    image, from which some seeds never escape.
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            fan_in = layer.weight[0].numel()  # inputs x kernel size
            with torch.no_grad():
                layer.weight.normal_(0.0, 1.0 / math.sqrt(fan_in))
                layer.bias.zero_()


class Reconstructor(nn.Module):
    """Encoder plus a mesh or voxel decoder.

    Args:
        decoder: "mesh" or "voxel".
        batch_norm: batch-normalise the encoder's convolutions (see :class:`Encoder`).
    """

    def __init__(self, decoder: str = "mesh", batch_norm: bool = False):
        super().__init__()
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {list(DECODERS)}; got {decoder!r}")
        self.kind = decoder
        self.encoder = Encoder(batch_norm=batch_norm)
        self.decoder = MeshDecoder() if decoder == "mesh" else VoxelDecoder()
        # The voxel model (not the original's) keeps PyTorch's initialisation: with the
        # original's it fell back after a good start, all of it initialised so (validation
        # IoU 0.29 at step 450, 0.09 at step 750) or the encoder alone (0.24 at step 250,
        # 0.14 to 0.21 from step 500 to 1000); both runs were stopped.
        if decoder == "mesh":
            init_like_original(self)

    @property
    def faces(self) -> torch.Tensor:
        """(1280, 3) template faces (mesh decoder only)."""
        return self.decoder.faces

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 4, 64, 64) -> (B, 642, 3) vertices or (B, 32, 32, 32) occupancy."""
        return self.decoder(self.encoder(images))


# --------------------------------------------------------------------------- regularisers


def adjacent_face_pairs(faces: torch.Tensor) -> torch.Tensor:
    """Every interior edge with the two vertices opposite it.

    Args:
        faces: (F, 3) faces of a closed manifold mesh.

    Returns:
        (E, 4) int64 rows (v0, v1, v2, v3): edge v0-v1, v2 opposite in one face, v3 in the other.
    """
    f = faces.cpu().numpy()
    edges = np.concatenate([f[:, [0, 1, 2]], f[:, [1, 2, 0]], f[:, [2, 0, 1]]])
    key = np.sort(edges[:, :2], axis=1)
    order = np.lexsort((key[:, 1], key[:, 0]))
    key, opposite = key[order], edges[order, 2]
    same = np.all(key[:-1] == key[1:], axis=1)
    first = np.flatnonzero(same)
    rows = np.stack([key[first, 0], key[first, 1], opposite[first], opposite[first + 1]], 1)
    return torch.as_tensor(rows, dtype=torch.int64)


def flatten_loss(vertices: torch.Tensor, pairs: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """The original "smoothness" loss: Σ (cos θ + 1)² over dihedral angles θ, batch mean.

    θ is the angle between the two faces' in-plane normals to their shared edge; a flat
    pair has θ = 180 degrees and costs nothing.

    Args:
        vertices: (B, V, 3).
        pairs: (E, 4) from :func:`adjacent_face_pairs`.

    Returns:
        Scalar.
    """
    v0, v1, v2, v3 = (vertices[:, pairs[:, k]] for k in range(4))
    edge = v1 - v0
    edge_sq = (edge * edge).sum(-1, keepdim=True) + eps

    def away_from_edge(p):
        d = p - v0
        return d - edge * (d * edge).sum(-1, keepdim=True) / edge_sq

    a, b = away_from_edge(v2), away_from_edge(v3)
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1) + eps)
    return ((cos + 1) ** 2).sum() / len(vertices)


def laplacian_loss(vertices: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
    """Σ ‖v − mean of v's neighbours‖² per mesh, batch mean.

    Args:
        vertices: (B, V, 3).
        neighbours: (V, V) row-normalised adjacency (see :func:`mean_neighbours`).

    Returns:
        Scalar.
    """
    batch, count, _ = vertices.shape
    flat = vertices.permute(1, 0, 2).reshape(count, -1)
    mean = (neighbours @ flat).reshape(count, batch, 3).permute(1, 0, 2)
    return ((vertices - mean) ** 2).sum() / batch


def mean_neighbours(faces: torch.Tensor, count: int) -> torch.Tensor:
    """(V, V) matrix averaging each vertex's mesh neighbours."""
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = torch.unique(torch.cat([edges, edges.flip(1)]), dim=0)
    degree = torch.bincount(edges[:, 0], minlength=count).clamp_min(1).float()
    values = 1.0 / degree[edges[:, 0]]
    # Dense: 642 x 642 is small, and a dense product is as fast here as a sparse one.
    matrix = torch.zeros(count, count)
    matrix[edges[:, 0], edges[:, 1]] = values
    return matrix


def soft_iou_loss(target: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """1 − mean soft IoU of (B, H, W) silhouettes."""
    inter = (target * predicted).flatten(1).sum(1)
    union = (target + predicted - target * predicted).flatten(1).sum(1)
    return 1 - (inter / union.clamp_min(1e-6)).mean()


# --------------------------------------------------------------------------- voxel projection


def view_rays(cameras, image_size: int = IMAGE_SIZE, samples: int = 64, extent: float = 0.5):
    """Sample points along every pixel's ray through the voxel cube, in grid_sample units.

    Args:
        cameras: B cameras (:class:`meshstyle.camera.Cameras`), perspective.
        image_size: S; rays through the pixel centres of an S x S image, row 0 at the top.
        samples: points per ray, evenly spaced over the depths the cube can occupy.
        extent: the grid spans [-extent, extent]^3.

    Returns:
        (B, S, S, samples, 3) coordinates for :func:`torch.nn.functional.grid_sample` on a
        (B, 1, X, Y, Z) volume: last axis (z, y, x) / extent.
    """
    from meshstyle.camera import look_at_rotation

    centres = (2 * torch.arange(image_size, dtype=torch.float32) + 1 - image_size) / image_size
    y, x = torch.meshgrid(-centres, centres, indexing="ij")  # row 0 is the top
    tan = math.tan(math.radians(cameras.viewing_angle))
    direction = torch.stack([x * tan, y * tan, torch.ones_like(x)], -1)  # camera space, z = depth
    rotation = look_at_rotation(cameras.eye, cameras.at, cameras.up)  # world -> camera
    world_dir = torch.einsum("bji,hwj->bhwi", rotation, direction)
    radius = math.sqrt(3) * extent
    distance = cameras.eye.norm(dim=-1)
    depth = torch.linspace(-radius, radius, samples)[None, :] + distance[:, None]  # (B, D)
    points = cameras.eye[:, None, None, None, :] + (
        world_dir[:, :, :, None, :] * depth[:, None, None, :, None]
    )
    return points.flip(-1) / extent


def project_voxels(occupancy: torch.Tensor, rays: torch.Tensor) -> torch.Tensor:
    """Silhouettes of occupancy grids: the probability that a pixel's ray is stopped.

    ``1 - prod(1 - p)`` over the occupancies ``p`` sampled along the ray (the ray
    termination of Tulsiani et al.'s differentiable ray consistency, a smooth form of the
    maximum along the ray that Yan et al.'s perspective transformer nets project with).
    Every sample on a ray gets a gradient; with the plain maximum only the largest does,
    and trained from silhouettes the grid then fills up and saturates.

    Args:
        occupancy: (B, X, Y, Z) probabilities indexed [x, y, z].
        rays: (B, H, W, D, 3) from :func:`view_rays`.

    Returns:
        (B, H, W) silhouettes in [0, 1].
    """
    sampled = functional.grid_sample(
        occupancy[:, None], rays, mode="bilinear", padding_mode="zeros", align_corners=False
    )  # (B, 1, H, W, D)
    free = torch.log1p(-sampled[:, 0].clamp(0.0, 1.0 - 1e-6)).sum(-1)
    return 1.0 - torch.exp(free)

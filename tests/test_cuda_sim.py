"""The CUDA kernels against the CPU kernels, through the public ``rasterize``.

These tests run in their own process, because numba's CUDA simulator must be switched on
before numba is first imported::

    NUMBA_ENABLE_CUDASIM=1 python -m pytest -q -m cudasim tests/test_cuda_sim.py

The simulator runs every CUDA thread as a Python thread on CPU tensors, so the scenes are
tiny. On a machine with a GPU the same command without the variable runs the same tests on
CUDA tensors. Where there is neither, the module is skipped; numba.cuda is not even imported.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from meshstyle import runtime

if runtime.cuda_simulator_enabled():
    DEVICE = "cpu"  # the simulator runs the CUDA kernels on NumPy views of CPU tensors
elif torch.cuda.is_available() and runtime.numba_sees_gpu():
    DEVICE = "cuda"
else:
    pytest.skip(
        "CUDA kernel tests need a GPU or numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1)",
        allow_module_level=True,
    )

from meshstyle.raster import rasterize  # noqa: E402

pytestmark = pytest.mark.cudasim

N_BATCH = 2
N_FACES = 20
TEXTURE_SIZE = 3


def _scene(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random overlapping faces plus the cases where backends could disagree.

    Returns:
        face_vertices (B, F, 3, 3), textures (B, F, T, T, T, 3) and background (B, 3), on
        the CPU.
    """
    generator = torch.Generator().manual_seed(seed)

    def uniform(*shape):
        return torch.rand(*shape, generator=generator)

    centres = uniform(N_BATCH, N_FACES, 1, 3) * torch.tensor([1.6, 1.6, 2.0])
    centres = centres + torch.tensor([-0.8, -0.8, 2.0])
    face_vertices = centres + (uniform(N_BATCH, N_FACES, 3, 3) - 0.5) * torch.tensor(
        [1.0, 1.0, 0.6]
    )
    # Faces 0 and 1: a quad at constant depth split along a diagonal that passes exactly
    # through pixel centres, so both halves cover those pixels at the same depth.
    face_vertices[:, 0] = torch.tensor([[-0.5, -0.5, 2.2], [0.5, -0.5, 2.2], [0.5, 0.5, 2.2]])
    face_vertices[:, 1] = torch.tensor([[-0.5, -0.5, 2.2], [0.5, 0.5, 2.2], [-0.5, 0.5, 2.2]])
    # Face 2 repeats face 7 exactly: every tie at equal depth must go to face 2.
    face_vertices[:, 2] = face_vertices[:, 7]
    # Face 3 has a corner behind the camera and must be skipped.
    face_vertices[:, 3, 1, 2] = -0.5
    # Face 4 reaches far beyond the image on three sides.
    face_vertices[:, 4] = torch.tensor([[-1.7, -0.3, 3.5], [1.9, -0.5, 3.6], [0.1, 1.8, 3.4]])
    textures = uniform(N_BATCH, N_FACES, TEXTURE_SIZE, TEXTURE_SIZE, TEXTURE_SIZE, 3)
    background = uniform(N_BATCH, 3)
    return face_vertices, textures, background


def _render(
    backend: str,
    face_vertices: torch.Tensor,
    textures: torch.Tensor | None,
    background: torch.Tensor,
    *,
    loss_terms=("rgb", "alpha", "depth"),
    grad_vertices: bool = True,
    grad_textures: bool = True,
    seed: int = 1,
    **settings,
) -> dict[str, torch.Tensor | None]:
    """Rasterize on a backend, back-propagate a random linear loss, return CPU results.

    The CPU backend runs on CPU tensors; the CUDA backend on tensors of ``DEVICE``.
    """
    device = "cpu" if backend == "cpu" else DEVICE
    # Fresh leaves on every call: ``.to`` returns the same tensor when it is on the device
    # already, and gradients of two runs must not accumulate in one ``.grad``.
    vertices = face_vertices.to(device).clone().requires_grad_(grad_vertices)
    texture = None
    if textures is not None:
        texture = textures.to(device).clone().requires_grad_(grad_textures)
    fragments = rasterize(
        vertices, texture, background=background.to(device), backend=backend, **settings
    )
    generator = torch.Generator().manual_seed(seed)
    loss = torch.zeros((), device=device)
    for name in loss_terms:
        output = getattr(fragments, name)
        if output is None:
            continue
        weight = torch.randn(output.shape, generator=generator).to(device)
        loss = loss + (weight * output).sum()
    if loss.requires_grad:
        loss.backward()

    def host(tensor):
        return None if tensor is None else tensor.detach().cpu().clone()

    return {
        "rgb": host(fragments.rgb),
        "alpha": host(fragments.alpha),
        "depth": host(fragments.depth),
        "face_index": host(fragments.face_index),
        "grad_vertices": host(vertices.grad),
        "grad_textures": None if texture is None else host(texture.grad),
    }


def _both(*args, **kwargs):
    return _render("cpu", *args, **kwargs), _render("cuda", *args, **kwargs)


def _assert_forward_equal(cpu, gpu) -> None:
    for name in ("rgb", "alpha", "depth", "face_index"):
        if cpu[name] is None:
            assert gpu[name] is None, name
            continue
        assert gpu[name].dtype == cpu[name].dtype, name
        assert torch.equal(gpu[name], cpu[name]), (
            f"{name}: {int((gpu[name] != cpu[name]).sum())} elements differ"
        )


def _assert_gradient_close(actual, expected, name: str) -> None:
    """Agreement to 1e-4 relative to the gradient's largest magnitude."""
    assert actual is not None and expected is not None, name
    scale = float(expected.abs().max())
    assert scale > 0.0, f"{name}: the CPU gradient is zero, the test proves nothing"
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4 * scale, msg=name)


@pytest.fixture(scope="module")
def scene():
    return _scene()


# --------------------------------------------------------------------------- forward


@pytest.mark.parametrize(
    ("image_size", "anti_aliasing", "textured"),
    [
        (16, True, True),  # 32 x 32 render grid: 2 x 2 full tiles
        ((12, 20), False, True),  # non-square, tiles cut by both image edges
        ((10, 7), True, False),  # silhouettes only, 20 x 14 render grid
    ],
)
def test_forward_equals_cpu(scene, image_size, anti_aliasing, textured):
    face_vertices, textures, background = scene
    cpu, gpu = _both(
        face_vertices,
        textures if textured else None,
        background,
        loss_terms=(),
        image_size=image_size,
        anti_aliasing=anti_aliasing,
    )
    _assert_forward_equal(cpu, gpu)
    # The scene must exercise what it was built for.
    index = cpu["face_index"]
    assert (index == -1).any() and (index >= 0).sum() > index.numel() // 2
    assert not (index == 3).any() and not (index == 7).any() and (index == 2).any()


def test_shared_edge_and_duplicate_ties_go_to_the_lower_face_index():
    # One quad at constant depth, split on a diagonal through pixel centres, drawn twice.
    quad = torch.tensor(
        [
            [[-0.5, -0.5, 2.0], [0.5, -0.5, 2.0], [0.5, 0.5, 2.0]],
            [[-0.5, -0.5, 2.0], [0.5, 0.5, 2.0], [-0.5, 0.5, 2.0]],
        ]
    )
    face_vertices = torch.cat([quad, quad])[None].repeat(N_BATCH, 1, 1, 1)
    textures = torch.rand(N_BATCH, 4, 2, 2, 2, 3, generator=torch.Generator().manual_seed(3))
    background = torch.zeros(N_BATCH, 3)
    cpu, gpu = _both(
        face_vertices, textures, background, loss_terms=(), image_size=16, anti_aliasing=False
    )
    _assert_forward_equal(cpu, gpu)
    index = gpu["face_index"]
    assert set(index.unique().tolist()) == {-1, 0, 1}
    # Pixel centres on the diagonal (col + row = 15 inside the quad) belong to face 0.
    assert index[0, 8, 7] == 0 and index[0, 7, 8] == 0


def test_faces_beyond_one_binning_chunk():
    # More faces than threads in a tile block, so each tile bins them in several chunks;
    # face 290 repeats face 10 so that a depth tie spans two chunks.
    n_faces = 300
    generator = torch.Generator().manual_seed(5)
    centres = torch.rand(N_BATCH, n_faces, 1, 3, generator=generator) * 2.0 - 1.0
    centres[..., 2] += 3.0
    offsets = (torch.rand(N_BATCH, n_faces, 3, 3, generator=generator) - 0.5) * 0.5
    face_vertices = centres + offsets
    face_vertices[:, 290] = face_vertices[:, 10]
    textures = torch.rand(N_BATCH, n_faces, 2, 2, 2, 3, generator=generator)
    background = torch.zeros(N_BATCH, 3)
    cpu, gpu = _both(face_vertices, textures, background, image_size=12, anti_aliasing=False)
    _assert_forward_equal(cpu, gpu)
    assert (cpu["face_index"] >= 256).any() and not (cpu["face_index"] == 290).any()
    _assert_gradient_close(gpu["grad_vertices"], cpu["grad_vertices"], "face vertices")
    _assert_gradient_close(gpu["grad_textures"], cpu["grad_textures"], "textures")


def test_no_faces():
    face_vertices = torch.zeros(N_BATCH, 0, 3, 3)
    textures = torch.zeros(N_BATCH, 0, 2, 2, 2, 3)
    background = torch.full((N_BATCH, 3), 0.25)
    cpu, gpu = _both(face_vertices, textures, background, image_size=8, anti_aliasing=False)
    _assert_forward_equal(cpu, gpu)
    assert (gpu["face_index"] == -1).all()
    assert gpu["grad_vertices"].shape == (N_BATCH, 0, 3, 3)


# --------------------------------------------------------------------------- backward


@pytest.mark.parametrize("occlusion_aware", [False, True])
@pytest.mark.parametrize(
    ("image_size", "anti_aliasing"),
    [(16, True), ((14, 24), False)],
)
def test_gradients_match_cpu(scene, image_size, anti_aliasing, occlusion_aware):
    face_vertices, textures, background = scene
    cpu, gpu = _both(
        face_vertices,
        textures,
        background,
        image_size=image_size,
        anti_aliasing=anti_aliasing,
        occlusion_aware=occlusion_aware,
    )
    _assert_forward_equal(cpu, gpu)
    _assert_gradient_close(gpu["grad_vertices"], cpu["grad_vertices"], "face vertices")
    _assert_gradient_close(gpu["grad_textures"], cpu["grad_textures"], "textures")


def test_silhouette_gradients_match_cpu(scene):
    face_vertices, _, background = scene
    cpu, gpu = _both(
        face_vertices,
        None,
        background,
        loss_terms=("alpha",),
        image_size=(12, 9),
        anti_aliasing=True,
        occlusion_aware=True,
    )
    _assert_forward_equal(cpu, gpu)
    _assert_gradient_close(gpu["grad_vertices"], cpu["grad_vertices"], "face vertices")


@pytest.mark.parametrize(
    ("loss_terms", "grad_vertices", "grad_textures"),
    [
        (("depth",), True, False),  # exact depth gradient only: no scan pass
        (("rgb",), False, True),  # texture gradient only
    ],
)
def test_partial_gradients_match_cpu(scene, loss_terms, grad_vertices, grad_textures):
    face_vertices, textures, background = scene
    cpu, gpu = _both(
        face_vertices,
        textures,
        background,
        loss_terms=loss_terms,
        grad_vertices=grad_vertices,
        grad_textures=grad_textures,
        image_size=(12, 16),
        anti_aliasing=False,
    )
    for name, wanted in (("grad_vertices", grad_vertices), ("grad_textures", grad_textures)):
        if wanted:
            _assert_gradient_close(gpu[name], cpu[name], name)
        else:
            assert gpu[name] is None and cpu[name] is None, name


# --------------------------------------------------------------------------- backends


def test_auto_backend_follows_the_tensor_device(scene):
    from meshstyle.raster import _resolve_backend

    assert _resolve_backend("auto", torch.device("cpu")) == "cpu"
    assert _resolve_backend("auto", torch.device("cuda")) == "cuda"
    face_vertices, textures, background = scene
    auto = _render("auto", face_vertices, textures, background, image_size=8, anti_aliasing=False)
    cpu = _render("cpu", face_vertices, textures, background, image_size=8, anti_aliasing=False)
    _assert_forward_equal(cpu, auto)


@pytest.mark.skipif(DEVICE == "cuda", reason="this machine has a GPU")
def test_cuda_backend_without_gpu_or_simulator_says_how_to_get_it():
    # A process of its own: the simulator cannot be switched off once numba is imported.
    code = (
        "import torch\n"
        "from meshstyle.raster import rasterize\n"
        "from meshstyle.raster.function import kernels_for\n"
        "for attempt in (lambda: kernels_for('cuda'),\n"
        "                lambda: rasterize(torch.zeros(1, 1, 3, 3), image_size=4,"
        " backend='cuda')):\n"
        "    try:\n"
        "        attempt()\n"
        "    except (RuntimeError, ValueError) as error:\n"
        "        print(type(error).__name__, error)\n"
        "    else:\n"
        "        print('no error')\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "NUMBA_ENABLE_CUDASIM"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2, result.stdout
    assert lines[0].startswith("RuntimeError backend 'cuda' is not available"), lines[0]
    assert lines[1].startswith("ValueError backend 'cuda' needs face_vertices on a cuda"), lines[1]
    for line in lines:
        assert 'pip install "meshstyle[cuda]"' in line, line


# --------------------------------------------------------------------------- GPU only

gpu_only = pytest.mark.skipif(DEVICE != "cuda", reason="needs a GPU, not the simulator")


@gpu_only
def test_kernels_run_on_the_current_stream(scene):
    face_vertices, textures, background = scene
    expected = _render("cpu", face_vertices, textures, background, loss_terms=(), image_size=16)
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        # The inputs are written on the side stream after a long sleep: kernels on any
        # other stream would read them before they exist.
        torch.cuda._sleep(50_000_000)
        vertices = face_vertices.to("cuda") * 1.0
        fragments = rasterize(
            vertices, textures.to("cuda") * 1.0, background=background.to("cuda"), image_size=16
        )
        face_index = fragments.face_index.clone()
    side.synchronize()
    assert torch.equal(face_index.cpu(), expected["face_index"])


@gpu_only
@pytest.mark.skipif(DEVICE != "cuda" or torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_second_gpu(scene):
    face_vertices, textures, background = scene
    cpu = _render("cpu", face_vertices, textures, background, image_size=16)
    vertices = face_vertices.to("cuda:1").requires_grad_()
    texture = textures.to("cuda:1").requires_grad_()
    fragments = rasterize(vertices, texture, background=background.to("cuda:1"), image_size=16)
    assert fragments.rgb.device == torch.device("cuda:1")
    assert torch.equal(fragments.face_index.cpu(), cpu["face_index"])
    generator = torch.Generator().manual_seed(1)
    loss = torch.zeros((), device="cuda:1")
    for output in (fragments.rgb, fragments.alpha, fragments.depth):
        loss = loss + (torch.randn(output.shape, generator=generator).to("cuda:1") * output).sum()
    loss.backward()
    _assert_gradient_close(vertices.grad.cpu(), cpu["grad_vertices"], "face vertices")


@gpu_only
def test_kernels_compile_without_fused_multiply_add(scene):
    import re

    from meshstyle.raster import cuda as kernels

    face_vertices, textures, background = scene
    _render("cuda", face_vertices, textures, background, image_size=8)
    for kernel in (kernels.setup_faces, kernels.raster_tiles, kernels.face_gradients):
        with kernels._exact_arithmetic():
            listings = kernel.inspect_asm()
        assert listings, kernel
        for ptx in listings.values():
            assert not re.search(r"\bfma\.", ptx), f"{kernel}: fused multiply-add in PTX"
            assert not re.search(r"\b(mul|add|sub)\.f(32|64)\b", ptx), (
                f"{kernel}: multiply or add without a rounding mode, which ptxas may fuse"
            )

"""ZeroSkipAdam: plain Adam where gradients are non-zero, untouched elements elsewhere."""

from __future__ import annotations

import io

import pytest
import torch

import meshstyle.optim as optim
from meshstyle.optim import ZeroSkipAdam


@pytest.fixture(params=["torch", "kernel"])
def path(request, monkeypatch):
    """Run a test through the torch form, then through the one-pass CPU kernel."""
    monkeypatch.setattr(optim, "KERNEL_MIN_SIZE", 0 if request.param == "kernel" else 2**62)
    return request.param


def _same(a: torch.Tensor, b: torch.Tensor, path: str) -> None:
    """Bit for bit through the torch form; to float32 rounding through the kernel (torch's
    vectorised lerp fuses a multiply-add, the kernel does not)."""
    if path == "torch":
        assert torch.equal(a, b)
    else:
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6 * float(b.abs().max()))


def _random_grad(shape, generator) -> torch.Tensor:
    scale = 10.0 ** torch.randint(-4, 3, (1,), generator=generator).item()
    return torch.randn(shape, generator=generator) * scale


@pytest.mark.parametrize("foreach", [False, None])
def test_matches_torch_adam_for_nonzero_gradients(foreach, path):
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(50, 3, generator=gen), torch.randn(20, 4, 4, generator=gen)]
    ours = [p.clone().requires_grad_() for p in start]
    theirs = [p.clone().requires_grad_() for p in start]
    # The callers' layout: vertex offsets at lr·0.01, texture logits at lr.
    opt = ZeroSkipAdam([{"params": [ours[0]], "lr": 0.05 * 0.01}, {"params": [ours[1]]}], lr=0.05)
    ref = torch.optim.Adam(
        [{"params": [theirs[0]], "lr": 0.05 * 0.01}, {"params": [theirs[1]]}],
        lr=0.05,
        foreach=foreach,
    )
    for _ in range(30):
        for a, b in zip(ours, theirs, strict=True):
            grad = _random_grad(a.shape, gen)
            a.grad, b.grad = grad.clone(), grad.clone()
        opt.step()
        ref.step()
    for a, b in zip(ours, theirs, strict=True):
        _same(a.detach(), b.detach(), path)
        _same(opt.state[a]["exp_avg"], ref.state[b]["exp_avg"], path)
        _same(opt.state[a]["exp_avg_sq"], ref.state[b]["exp_avg_sq"], path)
        assert torch.all(opt.state[a]["step"] == 30)


def test_zero_gradient_elements_are_left_untouched(path):
    gen = torch.Generator().manual_seed(1)
    param = torch.randn(100, requires_grad=True)
    opt = ZeroSkipAdam([param], lr=0.1)
    param.grad = torch.randn(100, generator=gen)
    opt.step()  # every element now has non-zero moments
    before = {k: v.clone() for k, v in opt.state[param].items()}
    value_before = param.detach().clone()
    seen = torch.arange(100) % 3 == 0
    param.grad = torch.where(seen, torch.randn(100, generator=gen), 0.0)
    opt.step()
    unseen = ~seen
    assert torch.equal(param[unseen], value_before[unseen])
    for key in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(opt.state[param][key][unseen], before[key][unseen])
    assert torch.all(param[seen] != value_before[seen])
    assert torch.all(opt.state[param]["step"][seen] == 2)
    assert torch.all(opt.state[param]["step"][unseen] == 1)


def test_bias_correction_is_per_element(path):
    # An element first seen at step 6 moves exactly as a fresh Adam's first step.
    param = torch.zeros(2, requires_grad=True)
    opt = ZeroSkipAdam([param], lr=0.1)
    for _ in range(5):
        param.grad = torch.tensor([1.0, 0.0])
        opt.step()
    param.grad = torch.tensor([1.0, 0.5])
    opt.step()
    fresh = torch.zeros(1, requires_grad=True)
    ref = torch.optim.Adam([fresh], lr=0.1)
    fresh.grad = torch.tensor([0.5])
    ref.step()
    if path == "torch":
        assert param[1].item() == fresh.item()
    else:
        assert param[1].item() == pytest.approx(fresh.item(), rel=1e-6)
    assert opt.state[param]["step"].tolist() == [6.0, 1.0]


def test_nan_and_inf_gradients_are_skipped(path):
    param = torch.ones(4, requires_grad=True)
    opt = ZeroSkipAdam([param], lr=0.1)
    param.grad = torch.tensor([float("nan"), float("inf"), -float("inf"), 1.0])
    opt.step()
    assert torch.equal(param[:3].detach(), torch.ones(3))
    assert param[3].item() < 1.0
    for value in opt.state[param].values():
        assert torch.isfinite(value).all()
    assert opt.state[param]["step"].tolist() == [0.0, 0.0, 0.0, 1.0]


def test_all_zero_or_missing_gradients_change_nothing(path):
    a = torch.ones(3, requires_grad=True)
    b = torch.ones(3, requires_grad=True)
    opt = ZeroSkipAdam([a, b], lr=0.1)
    a.grad = torch.zeros(3)
    opt.step()
    assert torch.equal(a.detach(), torch.ones(3)) and torch.equal(b.detach(), torch.ones(3))
    assert b not in opt.state


def test_resume_from_state_dict_continues_identically(path):
    gen = torch.Generator().manual_seed(2)
    grads = [
        torch.where(torch.rand(8, generator=gen) > 0.5, torch.randn(8, generator=gen), 0.0)
        for _ in range(12)
    ]
    a = torch.zeros(8, requires_grad=True)
    opt_a = ZeroSkipAdam([a], lr=0.05)
    for g in grads[:6]:
        a.grad = g.clone()
        opt_a.step()
    b = a.detach().clone().requires_grad_()
    opt_b = ZeroSkipAdam([b], lr=0.05)
    # Through bytes, as a checkpoint on disk: a live state_dict shares its tensors.
    buffer = io.BytesIO()
    torch.save(opt_a.state_dict(), buffer)
    buffer.seek(0)
    opt_b.load_state_dict(torch.load(buffer, weights_only=True))
    for g in grads[6:]:
        a.grad, b.grad = g.clone(), g.clone()
        opt_a.step()
        opt_b.step()
    assert torch.equal(a, b)


def test_a_step_marks_the_parameter_modified(path):
    # As for any in-place update: a graph that saved the old value cannot be backpropagated.
    param = torch.ones(4, requires_grad=True)
    opt = ZeroSkipAdam([param], lr=0.1)
    loss = (param * param).sum()
    param.grad = torch.ones(4)
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_closure_and_training_reduce_a_loss(path):
    target = torch.tensor([1.0, -2.0, 3.0])
    x = torch.zeros(3, requires_grad=True)
    opt = ZeroSkipAdam([x], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (x - target).square().sum()
        loss.backward()
        return loss

    first = opt.step(closure).item()
    for _ in range(200):
        last = opt.step(closure).item()
    assert last < 1e-2 * first


@pytest.mark.parametrize("dtype, uses_kernel", [(torch.float32, True), (torch.float64, False)])
def test_large_float32_cpu_parameters_take_the_kernel(dtype, uses_kernel, monkeypatch):
    import meshstyle.adam_kernel as adam_kernel

    calls = []
    real = adam_kernel.zero_skip_adam_step
    monkeypatch.setattr(adam_kernel, "zero_skip_adam_step", lambda *a: calls.append(1) or real(*a))
    param = torch.zeros(optim.KERNEL_MIN_SIZE, dtype=dtype, requires_grad=True)
    opt = ZeroSkipAdam([param], lr=0.1)
    param.grad = torch.ones_like(param)
    opt.step()
    assert bool(calls) == uses_kernel
    assert torch.allclose(param.detach(), torch.full_like(param, -0.1))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lr": -1.0}, "lr must be"),
        ({"lr": float("nan")}, "lr must be"),
        ({"betas": (0.9, 1.0)}, "betas must be"),
        ({"eps": -1e-8}, "eps must be"),
    ],
)
def test_hyper_parameters_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ZeroSkipAdam([torch.zeros(1, requires_grad=True)], **kwargs)


def test_group_overrides_are_validated():
    with pytest.raises(ValueError, match="lr must be"):
        ZeroSkipAdam([{"params": [torch.zeros(1, requires_grad=True)], "lr": -0.5}], lr=0.1)

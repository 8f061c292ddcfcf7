"""Tests for dipcourse.admm: Algorithms 1 and 2 and gradient descent on (36), against hand-written steps.

The references below are written from the thesis's equations only: the augmented Lagrangians (27)
and (30) and the loss (36) are spelled out term by term, their gradients come from autograd, and
one torch.optim.Adam step is taken on them, exactly as §3.3 describes.
"""
import copy
import sys

import pytest
import torch

from dipcourse import admm
from dipcourse.operators import Identity, RandomMask

SHAPE = (3, 8, 8)
LAM = 0.05            # weight of the hand-written L1 prior R(x) = LAM ‖x‖₁


def tiny_net_and_input(seed=0):
    """A tiny stand-in for G(z; θ): one convolution and a sigmoid, with a fixed random input."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(4, 3, 3, padding=1), torch.nn.Sigmoid())
    z = torch.randn(1, 4, *SHAPE[1:])
    return net, z


def l1_prox(v, rho):
    """prox_{R/ρ}(v) for R(x) = LAM ‖x‖₁: soft-thresholding at LAM/ρ."""
    return torch.sign(v) * torch.clamp(v.abs() - LAM / rho, min=0.0)


def l1_value(x):
    return LAM * x.abs().sum()


l1_prox.value = l1_value


def tv(x):
    """Anisotropic TV (thesis footnote 1), written out."""
    return (x[:, 1:, :] - x[:, :-1, :]).abs().sum() + (x[:, :, 1:] - x[:, :, :-1]).abs().sum()


def problem(operator="mask", seed=1):
    gen = torch.Generator().manual_seed(seed)
    truth = torch.rand(SHAPE, generator=gen)
    A = Identity(SHAPE) if operator == "identity" else RandomMask(SHAPE, keep=0.5, seed=seed)
    b = A.forward(truth) + 0.05 * torch.randn(A.out_shape, generator=gen)
    return A, b, truth


class Capture:
    """Callback that keeps each iteration's state (x, u, G(θ))."""

    def __init__(self):
        self.states = []

    def __call__(self, it):
        self.states.append({k: v.clone() for k, v in it.state.items() if torch.is_tensor(v)})


def assert_same_params(net_a, net_b):
    for pa, pb in zip(net_a.parameters(), net_b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# One (two) iterations against the thesis's equations
# ---------------------------------------------------------------------------------------------

def hand_v1(A, b, net, z, rho, inner, lr, iters):
    """Algorithm 1 by hand: ISTA (29) with autograd's ∇x of (27); Adam on (27) in θ; u += x − G."""
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    L = A.norm_sq + rho
    x = net(z)[0].detach().clone()
    u = torch.zeros_like(x)
    states = []
    for _ in range(iters):
        g = net(z)[0].detach()
        for _ in range(inner):
            xv = x.clone().requires_grad_(True)
            smooth = 0.5 * torch.sum((b - A.forward(xv)) ** 2) + rho / 2 * torch.sum((xv - g + u) ** 2)
            (grad,) = torch.autograd.grad(smooth, xv)
            x = l1_prox(x - grad / L, L)
        optimizer.zero_grad()
        lagrangian = (0.5 * torch.sum((b - A.forward(x)) ** 2) + l1_value(x)
                      + rho / 2 * torch.sum((x - net(z)[0] + u) ** 2) - rho / 2 * torch.sum(u ** 2))
        lagrangian.backward()
        optimizer.step()
        u = u + (x - net(z)[0].detach())
        states.append(dict(x=x, u=u, g=net(z)[0].detach()))
    return states


def hand_v2(A, b, net, z, rho, lr, iters):
    """Algorithm 2 by hand: x = prox_{R/ρ}(G − u); Adam on (30) in θ; u += x − G."""
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    u = torch.zeros(SHAPE)
    states = []
    for _ in range(iters):
        x = l1_prox(net(z)[0].detach() - u, rho)
        optimizer.zero_grad()
        g = net(z)[0]
        lagrangian = (0.5 * torch.sum((b - A.forward(g)) ** 2) + l1_value(x)
                      + rho / 2 * torch.sum((x - g + u) ** 2) - rho / 2 * torch.sum(u ** 2))
        lagrangian.backward()
        optimizer.step()
        u = u + (x - net(z)[0].detach())
        states.append(dict(x=x, u=u, g=net(z)[0].detach()))
    return states


@pytest.mark.parametrize("inner", [1, 3])
def test_v1_steps_match_algorithm_1(inner):
    A, b, _ = problem()
    net, z = tiny_net_and_input()
    hand_net = copy.deepcopy(net)
    capture = Capture()
    result = admm.dip_admm_v1(A, b, l1_prox, iters=2, rho=0.7, inner=inner, lr=1e-2, net=net, z=z,
                              callback=capture, progress=False)
    expected = hand_v1(A, b, hand_net, z, rho=0.7, inner=inner, lr=1e-2, iters=2)
    for got, want in zip(capture.states, expected):
        for key in ("x", "u", "g"):
            torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-6)
    assert_same_params(net, hand_net)
    torch.testing.assert_close(result.x, expected[-1]["g"], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(expected[-1]["u"], torch.zeros(SHAPE))   # the dual really moved


def test_v2_steps_match_algorithm_2():
    A, b, truth = problem()
    net, z = tiny_net_and_input()
    hand_net = copy.deepcopy(net)
    capture = Capture()
    result = admm.dip_admm_v2(A, b, l1_prox, iters=2, rho=0.7, lr=1e-2, ref=truth, net=net, z=z,
                              callback=capture, progress=False)
    expected = hand_v2(A, b, hand_net, z, rho=0.7, lr=1e-2, iters=2)
    for got, want in zip(capture.states, expected):
        for key in ("x", "u", "g"):
            torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-6)
    assert_same_params(net, hand_net)
    # the recorded loss is (36) with this prior, evaluated on G(θ_2): ½‖b − AG‖² + R(G)
    g = expected[-1]["g"]
    loss36 = 0.5 * torch.sum((b - A.forward(g)) ** 2) + l1_value(g)
    assert result.history["loss"][-1] == pytest.approx(float(loss36), rel=1e-5)
    assert result.history["data"][-1] == pytest.approx(float(0.5 * torch.sum((b - A.forward(g)) ** 2)),
                                                       rel=1e-5)
    from dipcourse.metrics import psnr
    assert result.history["psnr_x"][-1] == pytest.approx(psnr(truth, expected[-1]["x"]), rel=1e-5)
    assert result.history["psnr"][-1] == pytest.approx(psnr(truth, g), rel=1e-5)


def test_gd_step_matches_loss_36():
    A, b, _ = problem()
    net, z = tiny_net_and_input()
    hand_net = copy.deepcopy(net)
    result = admm.dip_tv_gd(A, b, iters=2, lam=0.03, lr=1e-2, net=net, z=z, progress=False)
    optimizer = torch.optim.Adam(hand_net.parameters(), lr=1e-2)
    for _ in range(2):
        optimizer.zero_grad()
        g = hand_net(z)[0]
        (0.5 * torch.sum((b - A.forward(g)) ** 2) + 0.03 * tv(g)).backward()
        optimizer.step()
    assert_same_params(net, hand_net)
    g = hand_net(z)[0].detach()
    loss36 = 0.5 * torch.sum((b - A.forward(g)) ** 2) + 0.03 * tv(g)
    assert result.history["loss"][-1] == pytest.approx(float(loss36), rel=1e-5)
    assert list(result.history["prox_calls"]) == [0, 0]


def test_same_seed_same_history():
    A, b, truth = problem()
    runs = []
    for _ in range(2):
        net, z = tiny_net_and_input(seed=3)
        runs.append(admm.dip_admm_v2(A, b, l1_prox, iters=3, ref=truth, net=net, z=z, progress=False))
    for key in ("loss", "psnr", "psnr_x"):
        assert list(runs[0].history[key]) == list(runs[1].history[key])


# ---------------------------------------------------------------------------------------------
# Prox calls: v2 once per iteration, v1 `inner` times
# ---------------------------------------------------------------------------------------------

class CountingL1:
    def __init__(self):
        self.calls = 0

    def __call__(self, v, rho):
        self.calls += 1
        return l1_prox(v, rho)


@pytest.mark.parametrize("inner", [1, 4])
def test_v1_calls_prox_inner_times_per_iteration(inner):
    A, b, _ = problem()
    net, z = tiny_net_and_input()
    prox = CountingL1()
    result = admm.dip_admm_v1(A, b, prox, iters=5, inner=inner, net=net, z=z, progress=False)
    assert prox.calls == 5 * inner
    assert list(result.history["prox_calls"]) == [inner * t for t in range(1, 6)]


def test_v2_calls_prox_once_per_iteration():
    A, b, _ = problem()
    net, z = tiny_net_and_input()
    prox = CountingL1()
    result = admm.dip_admm_v2(A, b, prox, iters=5, net=net, z=z, progress=False)
    assert prox.calls == 5
    assert list(result.history["prox_calls"]) == [1, 2, 3, 4, 5]


# ---------------------------------------------------------------------------------------------
# The x-step of v1 against its closed form (R = 0)
# ---------------------------------------------------------------------------------------------

def no_prior(v, rho):
    """R = 0: the prox is the identity."""
    return v


def test_v1_x_step_closed_form_identity():
    """A = I, R = 0: argmin ½‖b − x‖² + ρ/2‖x − G + u‖² = (b + ρ(G − u)) / (1 + ρ)."""
    A, b, _ = problem("identity")
    gen = torch.Generator().manual_seed(5)
    g, u, x0 = (torch.rand(SHAPE, generator=gen) for _ in range(3))
    rho = 0.5
    closed = (b + rho * (g - u)) / (1 + rho)
    for inner in (1, 10):
        x = admm.ista_x_step(A, b, no_prior, x0, g, u, rho, inner)
        torch.testing.assert_close(x, closed, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(x0, closed, atol=1e-2)


def test_v1_x_step_converges_to_closed_form_mask():
    """A = mask, R = 0: ISTA converges to (AᵀA + ρI)⁻¹(Aᵀb + ρ(G − u)), geometrically in N."""
    A, b, _ = problem("mask")
    gen = torch.Generator().manual_seed(6)
    g, u, x0 = (torch.rand(SHAPE, generator=gen) for _ in range(3))
    rho = 1.0
    diag = A.normal(torch.ones(SHAPE)) + rho                    # AᵀA is diagonal for a mask
    closed = (A.adjoint(b) + rho * (g - u)) / diag
    errors = [float((admm.ista_x_step(A, b, no_prior, x0, g, u, rho, n) - closed).abs().max())
              for n in (1, 5, 40)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-6


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rho", [0.0, -1.0])
@pytest.mark.parametrize("algorithm", [admm.dip_admm_v1, admm.dip_admm_v2])
def test_rho_must_be_positive(algorithm, rho):
    A, b, _ = problem()
    net, z = tiny_net_and_input()
    with pytest.raises(ValueError, match="rho"):
        algorithm(A, b, l1_prox, iters=1, rho=rho, net=net, z=z, progress=False)


@pytest.mark.parametrize("inner", [0, -2, 2.5])
def test_inner_must_be_positive_integer(inner):
    A, b, _ = problem()
    net, z = tiny_net_and_input()
    with pytest.raises((TypeError, ValueError), match="inner"):
        admm.dip_admm_v1(A, b, l1_prox, iters=1, inner=inner, net=net, z=z, progress=False)


def test_unknown_prior_name():
    A, b, _ = problem()
    net, z = tiny_net_and_input()
    with pytest.raises(ValueError, match="nope"):
        admm.dip_admm_v2(A, b, "nope", iters=1, net=net, z=z, progress=False)


def test_prox_must_be_callable():
    A, b, _ = problem()
    with pytest.raises(TypeError, match="make_prox"):
        admm.dip_admm_v2(A, b, 42, iters=1, progress=False)


def test_mismatched_measurement():
    A, _, _ = problem()
    with pytest.raises(ValueError, match="shape"):
        admm.dip_admm_v2(A, torch.zeros(5), l1_prox, iters=1, progress=False)


def test_missing_bm3d_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "bm3d", None)
    A, b, _ = problem()
    net, z = tiny_net_and_input()
    with pytest.raises(ImportError, match="bm3d"):
        admm.dip_admm_v2(A, b, "bm3d", iters=1, net=net, z=z, progress=False)


def test_missing_prox_tv(monkeypatch):
    """Without the prox-tv library, asking for it is a clear ImportError; the default TV prior falls
    back to the torch backend (with a warning) and the algorithms still run."""
    from dipcourse import priors
    monkeypatch.setitem(sys.modules, "prox_tv", None)
    with pytest.raises(ImportError, match="prox-tv"):
        priors.make_prox("tv", backend="proxtv")
    A, b, _ = problem()
    net, z = tiny_net_and_input()
    result = admm.dip_admm_v2(A, b, "tv", iters=1, net=net, z=z, progress=False)
    assert result.history["prox_calls"][-1] == 1

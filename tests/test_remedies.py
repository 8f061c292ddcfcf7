"""The remedies of lesson 07 against independent references (closed forms, autograd, explicit loops).

* SURE (eq. 15–17): the Monte-Carlo divergence against the exact trace of a linear denoiser (mean and
  one-sample spread), against the exact ηᵀJη of a network (forward-mode jvp), with the input jitter, and
  SURE itself as an unbiased estimate of the error (eq. 16) over noise draws;
* SGLD (eq. 14): the noise variance ε and drift −(ε/2)∇L of one step, the stationary variance of a Gaussian
  target in closed form; Cheng et al.'s kernel noise (variance s², kernels only); the posterior mean is the
  running mean of the samples after the burn-in;
* the deep decoder (§2.3.3): its parameter count by formula, its layers (1×1, no bias), its input and sizes;
* RED (eq. 21–22): x − f(x) against autograd of ½xᵀ(x − f(x)) for a symmetric linear f (and not for a
  non-symmetric one); the x-step's fixed point against the linear solve; DeepRED's denoiser calls;
* weight decay (eq. 13, μ = 0, Σ = I): fit_dip's against plain Adam on the loss with λ‖θ‖² written out;
* bad input: clear errors; the lesson's widget builder.
"""
import copy
import math

import numpy as np
import pytest
import torch

from dipcourse import admm, dip, priors
from dipcourse.networks import DeepDecoder, SkipNet
from dipcourse.operators import Identity, RandomMask, measure
from dipcourse.training import SGLD, SingleNetwork, prepare_network

NET = dict(nd=[4, 4], ns=[2, 2])
SHAPE = (3, 16, 16)


def image(shape=SHAPE, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------------
# A linear denoiser with a known matrix


def gaussian_blur(x, s=1.0):
    """Zero-padded separable Gaussian blur of a (C, H, W) or (N, C, H, W) tensor: a symmetric linear map."""
    r = int(math.ceil(3 * s))
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    g = torch.exp(-t ** 2 / (2 * s * s))
    g = g / g.sum()
    batch = x if x.dim() == 4 else x[None]
    kernel = (g[:, None] * g[None, :])[None, None].repeat(batch.shape[1], 1, 1, 1)
    out = torch.nn.functional.conv2d(batch, kernel, padding=r, groups=batch.shape[1])
    return out if x.dim() == 4 else out[0]


def matrix_of(f, shape, dtype=torch.float64):
    """The n × n matrix of a linear map f on images of ``shape`` (column j = f(e_j))."""
    n = int(np.prod(shape))
    eye = torch.eye(n, dtype=dtype)
    return torch.stack([f(eye[j].reshape(shape)).reshape(-1) for j in range(n)], dim=1)


class LinearNetworks:
    """The interface SureLoss sees (``networks(noise)`` = G(z + noise)) for a linear G = W."""

    def __init__(self, f, z):
        self.f, self.z = f, z

    def __call__(self, noise=None):
        return self.f(self.z if noise is None else self.z + noise)


# ----------------------------------------------------------------------------------------------
# SURE (eq. 15-17)


def test_sure_divergence_is_the_trace_of_a_linear_denoiser():
    shape = (1, 8, 8)
    W = matrix_of(gaussian_blur, shape)
    trace, frob_sq = float(torch.trace(W)), float(torch.sum(W ** 2))
    b = image(shape).double()[None]
    networks = LinearNetworks(gaussian_blur, b)
    for delta in (0.1, 1e-3):
        sure = dip.SureLoss(25 / 255, b, seeds=[7], delta=delta)
        x = networks()
        draws = []
        for _ in range(4000):
            sure.draw()
            draws.append(float(sure.divergence(networks, x)))
        draws = np.array(draws)
        # E[εᵀWε] = tr W; Var = 2‖(W + Wᵀ)/2‖²_F = 2‖W‖²_F for a symmetric W
        sd = math.sqrt(2 * frob_sq)
        assert abs(draws.mean() - trace) < 4 * sd / math.sqrt(len(draws)), (delta, draws.mean(), trace)
        assert abs(draws.std() / sd - 1) < 0.1, (draws.std(), sd)


def test_sure_divergence_with_input_jitter_is_taken_at_the_jittered_input():
    shape = (1, 8, 8)
    b = image(shape).double()[None]
    networks = LinearNetworks(gaussian_blur, b)
    sure = dip.SureLoss(0.1, b, seeds=[0])
    sure.draw()
    offset = torch.randn(b.shape, generator=torch.Generator().manual_seed(5), dtype=b.dtype) / 30
    x = networks(offset)
    exact = float(torch.sum(sure.direction * gaussian_blur(sure.direction)))
    assert abs(float(sure.divergence(networks, x, offset)) - exact) < 1e-6 * abs(exact)


def test_sure_divergence_of_a_network_matches_forward_mode_derivative():
    torch.manual_seed(0)
    b = image().double()
    net = SkipNet(in_channels=3, out_channels=3, **NET).double()
    networks = SingleNetwork(net, b[None], "cpu")
    # the finite difference is first-order accurate in δ; the untrained network's divergence is small, so
    # its second-order term shows at δ = 1e-5 (0.1 %): in float64 δ = 1e-6 and 1e-7 leave rounding only
    for delta in (1e-6, 1e-7):
        sure = dip.SureLoss(25 / 255, networks.z, seeds=[1], delta=delta)
        sure.draw()
        x = networks()
        estimate = float(sure.divergence(networks, x).detach())
        _, tangent = torch.autograd.functional.jvp(lambda inp: networks.net(inp), networks.z, sure.direction)
        exact = float(torch.sum(sure.direction * tangent))
        assert abs(estimate - exact) < 3e-4 * abs(exact), (delta, estimate, exact)


def test_sure_is_an_unbiased_estimate_of_the_error_for_a_linear_denoiser():
    """Eq. (16): (1/N)‖b − Wb‖² − σ² + (2σ²/N) tr W has the mean of (1/N)‖x − Wb‖² over the noise; SureLoss
    is (N/2)·(that + σ²) (eq. 17)."""
    shape = (1, 8, 8)
    x = image(shape).double()
    W = matrix_of(gaussian_blur, shape)
    sigma, n = 0.1, x.numel()
    sure_values, errors = [], []
    generator = torch.Generator().manual_seed(3)
    for _ in range(3000):
        b = x + sigma * torch.randn(shape, generator=generator, dtype=x.dtype)
        denoised = gaussian_blur(b)
        value = 0.5 * torch.sum((b - denoised) ** 2) + sigma ** 2 * torch.trace(W)      # eq. (17), exact trace
        sure_values.append(float(2 * value / n - sigma ** 2))                              # back to eq. (16)
        errors.append(float(torch.mean((x - denoised) ** 2)))
    diff = np.array(sure_values) - np.array(errors)
    assert abs(diff.mean()) < 4 * diff.std() / math.sqrt(len(diff))
    # ... and SureLoss computes eq. (17) with its Monte-Carlo divergence
    b = (x + sigma * torch.randn(shape, generator=generator, dtype=x.dtype))[None]
    networks = LinearNetworks(gaussian_blur, b)
    sure = dip.SureLoss(sigma, b, seeds=[0])
    sure.draw()

    class P:
        A, ref = Identity(shape), None
    P.b = b[0]
    value = float(sure([P], networks, networks())[0])
    expected = float(0.5 * torch.sum((b - gaussian_blur(b)) ** 2)
                     + sigma ** 2 * torch.sum(sure.direction * gaussian_blur(sure.direction)))
    assert value == pytest.approx(expected, rel=1e-9)


def test_fit_dip_sure_feeds_the_noisy_image_and_its_loss_has_the_divergence_term():
    x = image()
    A = Identity(SHAPE)
    b = measure(A, x, 25 / 255, seed=0)
    result = dip.fit_dip(A, b, 3, loss="sure", sigma=25 / 255, net_kwargs=NET, lr=1e-3, progress=False)
    assert result.params["loss"] == "sure"
    net, z = prepare_network(SHAPE, seed=0, in_channels=3, **NET)
    x0 = SingleNetwork(net, b[None], "cpu")()[0].detach()
    data = 0.5 * float(torch.sum((b - x0) ** 2))
    # the first recorded loss is the data term plus σ²·(a divergence that a 3-channel skip net makes clearly > 0)
    assert result.history["loss"][0] > data + 1e-3 * (25 / 255) ** 2 * x.numel()
    plain = dip.fit_dip(A, b, 3, net=copy.deepcopy(net), z=b[None], lr=1e-3, progress=False)
    assert plain.history["loss"][0] == pytest.approx(data, rel=1e-5)


# ----------------------------------------------------------------------------------------------
# SGLD (eq. 14) and Cheng et al.'s kernel noise


def test_sgld_step_has_noise_variance_epsilon_and_drift_minus_half_epsilon_gradient():
    epsilon = 1e-3
    theta = torch.zeros(200_000, dtype=torch.float64, requires_grad=True)
    gradient = torch.linspace(-1, 1, theta.numel(), dtype=torch.float64)
    step = SGLD([theta], epsilon, torch.Generator().manual_seed(0))
    theta.grad = gradient.clone()
    step.step()
    increment = theta.detach() - 0.0
    noise = increment + epsilon / 2 * gradient
    assert abs(float(noise.var()) / epsilon - 1) < 0.01
    assert abs(float(noise.mean())) < 4 * math.sqrt(epsilon / theta.numel())
    # the drift: regress the increment on the gradient
    slope = float(torch.sum(increment * gradient) / torch.sum(gradient ** 2))
    assert slope == pytest.approx(-epsilon / 2, abs=4 * math.sqrt(epsilon / float(torch.sum(gradient ** 2))))


def test_sgld_samples_a_gaussian_target_with_the_discretisation_variance():
    """L(θ) = θ²/(2s²): θ ← (1 − ε/(2s²))θ + √ε η, whose stationary variance is s²/(1 − ε/(4s²))."""
    s, epsilon = 0.5, 0.2
    theta = torch.zeros(50_000, dtype=torch.float64, requires_grad=True)
    step = SGLD([theta], epsilon, torch.Generator().manual_seed(1))
    for _ in range(200):
        theta.grad = theta.detach() / s ** 2
        step.step()
    expected = s ** 2 / (1 - epsilon / (4 * s ** 2))
    assert float(theta.detach().var()) == pytest.approx(expected, rel=0.03)
    assert abs(float(theta.detach().var()) - s ** 2) > 0.1 * s ** 2     # the bias is real at this ε


def test_kernel_noise_has_variance_s_squared_and_touches_the_kernels_only():
    torch.manual_seed(0)
    net = SkipNet(in_channels=4, out_channels=3, **NET)
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    kernels = [p for p in net.parameters() if p.dim() == 4]
    noise = dip.KernelNoise(kernels, 0.02, [3])
    noise.add()
    increments = []
    for name, p in net.named_parameters():
        change = p.detach() - before[name]
        if p.dim() == 4:
            increments.append(change.reshape(-1))
        else:
            assert torch.equal(change, torch.zeros_like(change)), f"{name} changed"
    increments = torch.cat(increments)
    assert float(increments.std()) == pytest.approx(0.02, rel=0.05)


def test_kernel_noise_of_stacked_networks_repeats_each_runs_draws():
    torch.manual_seed(0)
    single = [torch.zeros(5, 4, 3, 3), torch.zeros(2, 5, 1, 1)]
    stacked = [torch.zeros(2, 5, 4, 3, 3), torch.zeros(2, 2, 5, 1, 1)]
    dip.KernelNoise(single, 0.1, [8]).add()
    dip.KernelNoise(stacked, 0.1, [7, 8]).add()
    for one, both in zip(single, stacked):
        torch.testing.assert_close(both[1], one, rtol=0, atol=0)


def test_posterior_mean_is_the_running_mean_of_the_samples_after_burn_in():
    x = image()
    A = Identity(SHAPE)
    b = measure(A, x, 0.1, seed=0)
    for options in (dict(weight_noise=0.02, reg_noise_std=1 / 30, lr=0.01),
                    dict(optimizer="sgld", lr=1e-5, sigma=0.1)):
        result = dip.fit_dip(A, b, 8, ref=x, net_kwargs=NET, burn_in=5, snapshots=range(8), progress=False,
                             **options)
        mean = torch.stack([result.snapshots[t] for t in range(5, 8)]).mean(0)
        torch.testing.assert_close(result.extras["posterior_mean"], mean, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(result.extras["posterior_mean"], result.x)
        assert result.history["psnr_mean"][-1] == pytest.approx(float(
            10 * torch.log10(x.max() ** 2 / torch.mean((x - mean) ** 2))), abs=1e-3)
        assert result.history["psnr_mean"][2] == pytest.approx(result.history["psnr"][2])   # before the burn-in


# ----------------------------------------------------------------------------------------------
# The deep decoder (§2.3.3)


@pytest.mark.parametrize("k, depth, out", [(4, 2, 1), (16, 3, 3), (32, 4, 3), (128, 5, 3)])
def test_deep_decoder_parameter_count_by_formula(k, depth, out):
    net = DeepDecoder(out_channels=out, channels=k, depth=depth)
    formula = (depth + 1) * (k * k + 2 * k) + k * out
    assert net.parameter_count() == formula
    assert sum(p.numel() for p in net.parameters()) == formula
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == depth + 2
    assert all(m.kernel_size == (1, 1) and m.bias is None for m in convs)
    upsamplings = [m for m in net.modules() if isinstance(m, torch.nn.Upsample)]
    assert len(upsamplings) == depth and all(m.mode == "bilinear" for m in upsamplings)


def test_deep_decoder_input_and_output_shapes():
    net = DeepDecoder(3, 8, 3)
    assert net.input_shape(32, 48) == (8, 4, 6)
    z = net.make_input(32, 48, seed=2)
    assert z.shape == (1, 8, 4, 6) and 0 <= float(z.min()) and float(z.max()) < 0.1
    out = net(z)
    assert out.shape == (1, 3, 32, 48) and 0 < float(out.detach().min()) and float(out.detach().max()) < 1
    result = dip.fit_dip(Identity((3, 32, 32)), image((3, 32, 32)), 3, net=DeepDecoder(3, 8, 3), lr=0.01,
                         progress=False)
    assert result.x.shape == (3, 32, 32) and result.params["net"]["kind"] == "deep decoder"


@pytest.mark.parametrize("height, width, error, match", [
    (30, 32, ValueError, "divisible by 8"), (8, 8, ValueError, "at least 2 px left"),
    (32.0, 32, TypeError, "DeepDecoder: height must be an integer ≥ 1"),
    ("32", 32, TypeError, "DeepDecoder: height must be an integer ≥ 1"),
    (0, 32, ValueError, "DeepDecoder: height must be an integer ≥ 1"),
])
def test_deep_decoder_sizes_that_do_not_fit_are_refused(height, width, error, match):
    with pytest.raises(error, match=match):
        DeepDecoder(3, 8, 3).check_size(height, width)


def test_deep_decoder_in_fit_dip_refuses_an_image_that_does_not_fit():
    with pytest.raises(ValueError, match="Depths that fit: \\[0, 1, 2, 3\\]"):
        dip.fit_dip(Identity((3, 24, 24)), image((3, 24, 24)), 2, net=DeepDecoder(3, 8, 4), progress=False)


@pytest.mark.parametrize("kwargs", [dict(channels=0), dict(depth=-1), dict(out_channels=2.0), dict(channels=True)])
def test_deep_decoder_bad_settings(kwargs):
    with pytest.raises((ValueError, TypeError), match="DeepDecoder"):
        DeepDecoder(**kwargs)


# ----------------------------------------------------------------------------------------------
# RED (eq. 21-22) and DeepRED (eq. 12)


def test_red_gradient_is_the_gradient_of_the_red_prior_for_a_symmetric_linear_denoiser():
    shape = (1, 8, 8)
    x = image(shape).double().requires_grad_()
    rho = 0.5 * torch.sum(x * (x - gaussian_blur(x)))            # eq. (21)
    (autograd,) = torch.autograd.grad(rho, x)
    torch.testing.assert_close(priors.red_gradient(x.detach(), gaussian_blur), autograd, rtol=0, atol=1e-12)
    # RED's formula needs a symmetric Jacobian: for a one-sided (non-symmetric) filter it is not the gradient
    shift = lambda v: 0.5 * v + 0.5 * torch.roll(v, 1, dims=-1)   # noqa: E731
    rho = 0.5 * torch.sum(x * (x - shift(x)))
    (autograd,) = torch.autograd.grad(rho, x)
    assert float(torch.max(torch.abs(priors.red_gradient(x.detach(), shift) - autograd))) > 0.05


def test_red_x_step_converges_to_the_linear_solve():
    """min_x (λ/2)xᵀ(x − Wx) + (ρ/2)‖x − v‖² for symmetric W: x* = (ρI + λ(I − W))⁻¹ ρv."""
    shape = (1, 6, 6)
    W = matrix_of(gaussian_blur, shape)
    v = image(shape).double()
    lam, rho = 2.0, 1.0
    exact = torch.linalg.solve(rho * torch.eye(W.shape[0], dtype=W.dtype) + lam * (torch.eye(W.shape[0]) - W),
                               rho * v.reshape(-1)).reshape(shape)
    prox = priors.red_prox(gaussian_blur, lam=lam, inner=200, refresh_every=1)
    torch.testing.assert_close(prox(v, rho), exact, rtol=0, atol=1e-10)
    # the optimality condition (eq. 22): λ(x − f(x)) + ρ(x − v) = 0
    out = prox(v, rho)
    residual = lam * priors.red_gradient(out, gaussian_blur) + rho * (out - v)
    assert float(residual.abs().max()) < 1e-10


def test_red_prox_refreshes_the_denoiser_every_k_steps():
    calls = []

    def denoiser(x):
        calls.append(1)
        return 0.5 * x

    prox = priors.red_prox(denoiser, lam=1.0, inner=1, refresh_every=10)
    v = image((1, 4, 4))
    for _ in range(25):
        prox(v, 1.0)
    assert len(calls) == 3                     # calls 0, 10, 20
    calls.clear()
    thesis = priors.red_prox(denoiser, lam=1.0, inner=3, refresh_every=1)
    for _ in range(4):
        thesis(v, 1.0)
    assert len(calls) == 12                    # the thesis's inner loop: 3 denoiser calls per iteration


def test_deep_red_uses_its_denoiser():
    x = image()
    A = Identity(SHAPE)
    b = measure(A, x, 0.1, seed=0)
    kwargs = dict(iters=12, lr=0.01, ref=x, net_kwargs=NET, progress=False, lam=1.0, inner=60, refresh_every=1)
    smooth = admm.deep_red(A, b, priors.make_prox("tv", lam=0.2), **kwargs)
    identity = admm.deep_red(A, b, lambda v: v, **kwargs)       # f(x) = x: RED's prior is 0, the x-step x = v
    plain = admm.dip_admm_v2(A, b, lambda v, rho: v, 12, lr=0.01, ref=x, net_kwargs=NET, progress=False)
    np.testing.assert_allclose(identity.history["psnr"], plain.history["psnr"], rtol=1e-5)
    assert not np.allclose(smooth.history["psnr"], identity.history["psnr"], rtol=1e-3)
    assert smooth.params["algorithm"] == "DeepRED" and smooth.params["lam"] == 1.0


# ----------------------------------------------------------------------------------------------
# Weight decay (eq. 13 with μ = 0, Σ = I)


def test_weight_decay_equals_adam_on_the_loss_with_an_explicit_l2_term():
    """Compare the outputs (the parameters may differ: the biases before a BatchNorm have no true gradient,
    so Adam turns their rounding noise into full steps that the BatchNorm cancels)."""
    x = image().double()
    A = Identity(SHAPE)
    b = measure(A, x, 0.1, seed=0)
    lam, lr, iters = 0.3, 0.01, 25
    result = dip.fit_dip(A, b, iters, lr=lr, weight_decay=lam, net_kwargs=NET, progress=False, seed=4)
    net, z = prepare_network(SHAPE, seed=4, dtype=torch.float64, **NET)
    net.train()
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)          # no weight_decay, not fused: a plain loop
    for _ in range(iters):
        optimizer.zero_grad()
        out = net(z)[0]
        loss = 0.5 * torch.sum((b - out) ** 2) + lam * sum(torch.sum(p ** 2) for p in net.parameters())
        loss.backward()
        optimizer.step()
        last = out.detach()
    torch.testing.assert_close(result.x, last, rtol=0, atol=1e-8)
    no_decay = dip.fit_dip(A, b, iters, lr=lr, net_kwargs=NET, progress=False, seed=4)
    assert float(torch.max(torch.abs(no_decay.x - result.x))) > 1e-4


# ----------------------------------------------------------------------------------------------
# Bad input


def problem(A=None):
    A = A or Identity(SHAPE)
    return A, measure(A, image(), 0.1, seed=0)


@pytest.mark.parametrize("lr", [0.0, -1e-4, float("nan")])
def test_sgld_step_must_be_positive(lr):
    with pytest.raises(ValueError, match="step ε of eq. \\(14\\)"):
        dip.fit_dip(*problem(), 2, optimizer="sgld", lr=lr, net_kwargs=NET, progress=False)


@pytest.mark.parametrize("kwargs, match", [
    (dict(loss="sure"), "needs the noise level σ > 0"),
    (dict(loss="sure", sigma=0.0), "needs the noise level σ > 0"),
    (dict(loss="sure", sigma=-0.1), "sigma must be a finite number ≥ 0"),
    (dict(loss="sure", sigma=0.1, z=torch.zeros(1, 3, 16, 16)), "do not pass z"),
    (dict(optimizer="sgld", lr=1e-4, sigma=0.0), "must be > 0"),
    (dict(loss="mse"), "loss must be one of"),
    (dict(optimizer="sgd"), "optimizer must be one of"),
    (dict(weight_decay=-1.0), "weight_decay"),
    (dict(weight_noise=-0.1), "weight_noise"),
    (dict(burn_in=-1), "burn_in"),
])
def test_remedy_options_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dip.fit_dip(*problem(), 2, net_kwargs=NET if "z" not in kwargs else None, progress=False, **kwargs)


def test_sure_on_a_non_denoising_operator_is_refused():
    A, b = problem(RandomMask(SHAPE, keep=0.5, seed=0))
    with pytest.raises(ValueError, match="denoising only"):
        dip.fit_dip(A, b, 2, loss="sure", sigma=0.1, net_kwargs=NET, progress=False)


@pytest.mark.parametrize("kwargs, error", [
    (dict(lam=0.0), ValueError), (dict(lam=-1.0), ValueError), (dict(inner=0), ValueError),
    (dict(refresh_every=0), ValueError), (dict(inner=1.5), TypeError),
])
def test_deep_red_settings_are_checked(kwargs, error):
    with pytest.raises(error, match=f"deep_red: {next(iter(kwargs))} must be"):
        admm.deep_red(*problem(), priors.make_prox("tv"), 2, net_kwargs=NET, progress=False, **kwargs)


def test_red_gradient_needs_a_callable_denoiser():
    with pytest.raises(TypeError, match="denoiser"):
        priors.red_gradient(image(), 0.5)


# ----------------------------------------------------------------------------------------------
# The lesson's runs and widget (dipcourse.widgets.lessons)

TINY = dict(nd=[4, 4], ns=[2, 2])


def tiny_remedies():
    return {
        "DIP": ("dip", dict(lr=0.01, net_kwargs=TINY)),
        "deep decoder": ("dip", dict(lr=0.01, net=DeepDecoder(1, 4, 2))),
        "SURE": lambda sigma: ("dip", dict(lr=1e-3, net_kwargs=TINY, loss="sure", sigma=sigma)),
    }


def smooth_image(size=16):
    g = torch.Generator().manual_seed(0)
    return torch.nn.functional.avg_pool2d(torch.rand(1, 1, size, size, generator=g), 3, 1, 1)[0].clamp(0, 1)


def test_fit_remedies_equals_the_single_functions():
    from dipcourse.widgets import fit_remedies

    ref = smooth_image()
    A = Identity(ref.shape)
    bs = [measure(A, ref, 0.1, seed=k) for k in range(2)]
    remedies = tiny_remedies()
    runs = fit_remedies(remedies, [A, A], bs, 6, 0.1, refs=[ref, ref], seeds=[3, 4], workers=0, progress=False)
    assert list(runs) == ["DIP", "deep decoder", "SURE"] and all(len(r) == 2 for r in runs.values())
    direct = dip.fit_dip(A, bs[1], 6, lr=1e-3, ref=ref, seed=4, net_kwargs=TINY, loss="sure", sigma=0.1,
                         progress=False)
    np.testing.assert_allclose(runs["SURE"][1].history["psnr"], direct.history["psnr"], rtol=1e-6)
    decoder = copy.deepcopy(remedies["deep decoder"][1]["net"])      # each run trains a copy of the template
    direct = dip.fit_dip(A, bs[0], 6, lr=0.01, ref=ref, seed=3, net=decoder, progress=False)
    np.testing.assert_allclose(runs["deep decoder"][0].history["psnr"], direct.history["psnr"], rtol=1e-6)
    with pytest.raises(ValueError, match="unknown remedies"):
        fit_remedies(tiny_remedies(), [A], bs[:1], 2, 0.1, names=["SGLD"], workers=0)


def test_remedies_explorer_trains_only_what_is_missing_and_caches_per_remedy():
    from dipcourse.widgets import remedies_explorer

    ref = smooth_image()
    explorer = remedies_explorer(ref, tiny_remedies(), shown=("DIP",), sigma=0.1, iters=5, refresh_s=60.0)
    assert explorer.result is None and not explorer.busy          # headless: nothing trained
    assert "dipcourse-slider-remedies" in explorer.sliders["remedies"]._dom_classes
    assert "dipcourse-slider-sigma" in explorer.sliders["sigma"]._dom_classes
    run = explorer.run_now()
    assert list(run["runs"]) == ["DIP"] and len(run["runs"]["DIP"].history["psnr"]) == 5
    dip_run = run["runs"]["DIP"]
    run = explorer.run_now({"remedies": ("DIP", "SURE")})
    assert run["runs"]["DIP"] is dip_run                            # not trained again
    assert explorer.runner.current.curve.done == 5                  # only SURE's 5 iterations ran
    A = Identity(ref.shape)
    direct = dip.fit_dip(A, measure(A, ref, 0.1, seed=0), 5, lr=1e-3, ref=ref, seed=0, net_kwargs=TINY,
                         loss="sure", sigma=0.1, progress=False)
    np.testing.assert_allclose(run["runs"]["SURE"].history["psnr"], direct.history["psnr"], rtol=1e-6)
    png = explorer.image.value
    explorer.sliders["sigma"].value = 0.05                            # a new σ trains in the background
    explorer.wait(60)
    assert explorer.image.value != png and explorer.message.value == ""
    assert set(explorer.result["runs"]) == {"DIP", "SURE"} and explorer.result["values"]["sigma"] == 0.05
    empty = explorer.run_now({"remedies": ()})
    assert empty["runs"] == {} and explorer.message.value == ""


def test_remedies_explorer_shows_precomputed_runs_and_refuses_bad_arguments():
    import html

    from dipcourse.widgets import remedies_explorer

    ref = smooth_image()
    A = Identity(ref.shape)
    done = dip.fit_dip(A, measure(A, ref, 0.1, seed=0), 4, lr=0.01, ref=ref, net_kwargs=TINY, progress=False)
    explorer = remedies_explorer(ref, tiny_remedies(), shown=("DIP",), sigma=0.1, iters=4,
                                 precomputed={"DIP": done})
    assert explorer.result["runs"]["DIP"] is done and explorer.image.value[:4] == b"\x89PNG"
    for build, match in [
        (lambda: remedies_explorer(ref, tiny_remedies(), sigma=-0.1, iters=2), "starting value -0.1 lies outside"),
        (lambda: remedies_explorer(ref, tiny_remedies(), shown=("SGLD",), iters=2), "not among the remedies"),
        (lambda: remedies_explorer(ref, {}, iters=2), "non-empty dict"),
        (lambda: remedies_explorer(ref, {"x": ("nope", {})}, iters=2), "method must be one of"),
        (lambda: remedies_explorer(ref, tiny_remedies(), iters=0), "iters must be an integer ≥ 1"),
        (lambda: remedies_explorer(ref, {**tiny_remedies(), "decay": ("dip", dict(weight_decay=-1.0, net_kwargs=TINY))},
                                   iters=2), "fit_dip: weight_decay must be"),
    ]:
        widget = build()
        message = widget.children[0]
        assert "dipcourse-message" in message._dom_classes and match in html.unescape(message.value), message.value


def test_the_summary_of_the_remedies_is_computed_from_their_histories(capsys):
    from dipcourse.metrics import psnr
    from dipcourse.remedies import against, estimate, fit_remedies, print_summary, summarise

    ref = smooth_image()
    A = Identity(ref.shape)
    bs = [measure(A, ref, 0.1, seed=k) for k in range(2)]
    remedies = {"DIP": tiny_remedies()["DIP"],
                "SGLD": ("dip", dict(lr=1e-6, optimizer="sgld", sigma=0.1, net_kwargs=TINY, burn_in=2))}
    runs = fit_remedies(remedies, [A, A], bs, 5, 0.1, refs=[ref, ref], workers=0, progress=False)
    rows = summarise(runs, [ref, ref])
    for name, results in runs.items():
        for k, r in enumerate(results):
            psnrs = r.history["psnr"]
            assert rows[name]["peak"][k] == pytest.approx(psnrs.max())
            assert rows[name]["peak_at"][k] == int(np.argmax(psnrs))
            assert rows[name]["fall"][k] == pytest.approx(psnrs.max() - psnrs[-1])
            assert rows[name]["ms"][k] == pytest.approx(1e3 * np.median(np.diff(r.history["time_cpu"])))
    sampler = runs["SGLD"][0]   # the sampler hands back the mean of its samples, not its last one
    assert estimate(sampler) is sampler.extras["posterior_mean"] and estimate(runs["DIP"][0]) is runs["DIP"][0].x
    assert rows["SGLD"]["estimate"][0] == pytest.approx(psnr(ref, sampler.extras["posterior_mean"]))
    assert against(rows, "SGLD", "final") == [a - b for a, b in zip(rows["SGLD"]["final"], rows["DIP"]["final"])]
    print_summary(rows)
    printed = capsys.readouterr().out
    assert "(means over 2 images)" in printed and printed.count("\n") == 3
    sgld_row = printed.splitlines()[2].split()
    assert sgld_row[0] == "SGLD" and float(sgld_row[3]) == pytest.approx(np.mean(rows["SGLD"]["final"]), abs=0.006)
    assert float(sgld_row[5]) == pytest.approx(np.mean(rows["SGLD"]["estimate"]), abs=0.006)
    with pytest.raises(ValueError, match="summarise: runs\\['DIP'\\] must be a list of 1 entries"):
        summarise(runs, [ref])

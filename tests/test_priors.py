"""Tests of dipcourse.priors against independent references: prox-tv's tv1_2d, closed forms of the
L1 and step-signal proxes, scipy's DCT, explicit loops, and optimality under random perturbations."""
import sys

import numpy as np
import pytest
import scipy.fft
import torch

from dipcourse import priors
from dipcourse.data import load_image
from dipcourse.metrics import psnr
from dipcourse.priors import (dct2, dct_matrix, idct2, make_prox, nlm_denoise, prox_dct_l1, prox_l1,
                              prox_tv, tv_norm, tv_objective)


def _noisy(x, sigma, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return x + sigma * torch.randn(x.shape, generator=gen, dtype=x.dtype)


def _accurate_proxtv(x, lam):
    """prox-tv's most accurate solver (Kolmogorov's splitting, run to its own tolerance), float64, per
    channel: the reference optimum. The default (Douglas–Rachford) stops early -- up to 5e-4 relative
    objective error on noise at λ = 0.5 -- and even 1000 DR iterations stall 1.5e-6 above the optimum."""
    import prox_tv

    planes = x.double().reshape(-1, x.shape[-2], x.shape[-1]).numpy()
    out = np.stack([prox_tv.tv1_2d(p, lam, method="kolmogorov") for p in planes])
    return torch.from_numpy(out).reshape(x.shape)


# ------------------------------------------------------------------------------------------ tv_norm


def test_tv_norm_matches_a_hand_loop():
    x = torch.rand(2, 5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    expected = 0.0
    for c in range(2):
        for i in range(5):
            for j in range(7):
                if i + 1 < 5:
                    expected += abs(x[c, i, j] - x[c, i + 1, j]).item()
                if j + 1 < 7:
                    expected += abs(x[c, i, j] - x[c, i, j + 1]).item()
    assert tv_norm(x).item() == pytest.approx(expected, rel=1e-12)
    batch = torch.stack([x, 2 * x, torch.zeros_like(x)])
    assert torch.allclose(tv_norm(batch), torch.tensor([expected, 2 * expected, 0.0], dtype=torch.float64))


def test_tv_norm_gradient_is_the_sign_pattern():
    x = torch.rand(1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2), requires_grad=True)
    tv_norm(x).backward()
    dv, dh = priors.image_gradient(x.detach())
    assert torch.allclose(x.grad, priors.image_gradient_adjoint(torch.sign(dv), torch.sign(dh)))
    assert torch.autograd.gradcheck(tv_norm, (x.detach().clone().requires_grad_(),))


def test_gradient_adjoint_identity():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, 6, 9, dtype=torch.float64, generator=gen)
    pv, ph = torch.randn(3, 5, 9, dtype=torch.float64, generator=gen), torch.randn(3, 6, 8, dtype=torch.float64,
                                                                                    generator=gen)
    dv, dh = priors.image_gradient(x)
    lhs = (dv * pv).sum() + (dh * ph).sum()
    rhs = (x * priors.image_gradient_adjoint(pv, ph)).sum()
    assert lhs.item() == pytest.approx(rhs.item(), rel=1e-12)


# ------------------------------------------------------------------------------------------ prox_tv


def _images():
    """A natural colour image and uniform noise (64 px; the benchmark times the thesis's 128 px)."""
    natural = load_image("astronaut", size=64)
    noise = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(4))
    return {"natural": natural, "random": noise}


@pytest.mark.parametrize("lam", [0.01, 0.1, 0.5])
@pytest.mark.parametrize("kind", ["natural", "random"])
def test_prox_tv_torch_matches_proxtv(optional, kind, lam):
    optional.require("prox_tv")
    x = _images()[kind]
    # The reference is prox-tv run to convergence: with its default stopping rule tv1_2d itself is up
    # to 2e-3 (max-abs) away from the optimum on noise at lam >= 0.1, so it is no yardstick for 1e-3.
    reference = _accurate_proxtv(x, lam)
    # float32, the course's dtype: 1e-3 max-abs
    ours = prox_tv(x, lam, backend="torch")
    assert ours.dtype == x.dtype and ours.shape == x.shape
    assert (ours.double() - reference).abs().max().item() < 1e-3
    # float64 (a float32 image cannot represent the optimum to 1e-6 of the objective): within 1e-6
    # relative of prox-tv's objective, from either side
    x64 = x.double()
    ours64 = prox_tv(x64, lam, backend="torch")
    f_ref, f_ours = tv_objective(reference, x64, lam).item(), tv_objective(ours64, x64, lam).item()
    assert abs(f_ours - f_ref) <= 1e-6 * f_ref
    assert (ours64 - reference).abs().max().item() < 1e-4


def _test_directions(y, x, n, seed=5):
    """Unit directions to probe optimality at y: towards and away from x, random directions that keep
    y's flat regions flat (TV is smooth along them, so a wrong lam shows up), and plain random ones."""
    gen = torch.Generator().manual_seed(seed)
    _, level = torch.unique(torch.round(y / 1e-7), return_inverse=True)
    directions = [x - y, y - x]
    for _ in range(n):
        directions.append(torch.randn(int(level.max()) + 1, generator=gen, dtype=y.dtype)[level])
        directions.append(torch.randn(y.shape, generator=gen, dtype=y.dtype))
    return [d / d.norm() for d in directions]


def test_prox_tv_is_not_improved_by_perturbations():
    """Checked to fail for prox_tv(x, 1.01 lam) in place of prox_tv(x, lam)."""
    x = _noisy(load_image("camera", size=32, gray=True).double(), 0.1)
    lam = 0.05
    y = prox_tv(x, lam, backend="torch")
    best = tv_objective(y, x, lam).item()
    for d in _test_directions(y, x, 20):
        for step in (1e-4, 1e-3, 1e-2, 1e-1):
            assert tv_objective(y + step * d, x, lam).item() >= best - 1e-9 * best


def test_proxtv_backend_returns_a_tensor_like_its_input(optional):
    optional.require("prox_tv")
    x = _noisy(load_image("astronaut", size=32), 0.1)
    y = prox_tv(x, 0.1, backend="proxtv")
    assert isinstance(y, torch.Tensor) and y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
    # the library's default stopping rule: a few 1e-3 from the optimum at most
    assert (y.double() - _accurate_proxtv(x.double(), 0.1)).abs().max().item() < 5e-3
    assert torch.equal(prox_tv(x, 0.1), y)  # "auto" picks prox-tv when it is installed


def test_proxtv_leaves_torch_thread_count_alone(optional):
    """prox-tv sets OpenMP's thread count, which torch shares: left at prox-tv's default (1 thread) it
    silently put every later network step on one thread, so a DIP run's result and speed depended on
    whether a TV prox had run before it in the same process."""
    optional.require("prox_tv")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        prox_tv(torch.rand(3, 16, 16), 0.1, backend="proxtv")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_proxtv_backend_gives_the_same_result_on_any_thread_count(optional):
    """prox-tv solves the independent 1-D row/column problems on torch's threads: bit for bit the same."""
    optional.require("prox_tv")
    import prox_tv as library

    x = _noisy(load_image("astronaut", size=64), 0.1).double()
    single = torch.from_numpy(np.stack([library.tv1_2d(np.ascontiguousarray(p), 0.05) for p in x.numpy()]))
    threads = torch.get_num_threads()
    try:
        for n in (1, 2, 4):
            torch.set_num_threads(n)
            assert torch.equal(prox_tv(x, 0.05, backend="proxtv"), single), n
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("backend", ["torch", "proxtv"])
def test_prox_tv_of_a_step_has_the_closed_form(optional, backend):
    """Rows with a step a → b over m + m pixels: the prox moves each side by lam/m towards the other
    (the jump shrinks by 2 lam/m), or flattens to the mean once 2 lam/m ≥ b − a."""
    if backend == "proxtv":
        optional.require("prox_tv")
    m, a, b = 8, 0.2, 0.8
    row = torch.tensor([a] * m + [b] * m, dtype=torch.float64)
    for rows in (1, 5):  # a 1-D signal (1 row) and a 2-D image of identical rows
        x = row.expand(1, rows, 2 * m).clone()
        for lam in (0.4, 1.0, 5.0):
            shift = min(lam / m, (b - a) / 2)
            expected = torch.tensor([a + shift] * m + [b - shift] * m, dtype=torch.float64).expand_as(x)
            tol = 1e-6 if backend == "torch" else 1e-4
            assert torch.allclose(prox_tv(x, lam, backend=backend), expected, atol=tol)


def test_prox_tv_batch_equals_image_by_image():
    gen = torch.Generator().manual_seed(6)
    batch = torch.rand(3, 2, 16, 20, generator=gen)
    together = prox_tv(batch, 0.1, backend="torch")
    for k in range(3):
        alone = prox_tv(batch[k], 0.1, backend="torch")
        assert (together[k] - alone).abs().max().item() < 2e-4


def test_prox_tv_edge_cases_and_errors(monkeypatch):
    x = torch.rand(3, 8, 8)
    assert torch.equal(prox_tv(x, 0.0, backend="torch"), x)
    flat = torch.full((1, 6, 6), 0.3)
    assert torch.allclose(prox_tv(flat, 0.5, backend="torch"), flat)
    with pytest.raises(ValueError, match="lam"):
        prox_tv(x, -0.1)
    with pytest.raises(TypeError, match="lam"):
        prox_tv(x, "big")
    with pytest.raises(ValueError, match="backend"):
        prox_tv(x, 0.1, backend="cuda")
    with pytest.raises(TypeError, match="torch.Tensor"):
        prox_tv(x.numpy(), 0.1)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        prox_tv(torch.rand(8, 8), 0.1)
    with pytest.raises(ValueError, match="max_iter"):
        prox_tv(x, 0.1, backend="torch", max_iter=0)


def test_prox_tv_without_proxtv(monkeypatch):
    monkeypatch.setitem(sys.modules, "prox_tv", None)  # makes `import prox_tv` raise ImportError
    monkeypatch.setattr(priors, "_fallback_warned", False)
    x = torch.rand(1, 8, 8)
    with pytest.raises(ImportError, match="liblapacke-dev"):
        prox_tv(x, 0.1, backend="proxtv")
    with pytest.raises(ImportError, match="liblapacke-dev"):
        make_prox("tv", backend="proxtv")
    with pytest.warns(RuntimeWarning, match="torch backend"):
        auto = prox_tv(x, 0.1)
    assert torch.equal(auto, prox_tv(x, 0.1, backend="torch"))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prox_tv(x, 0.1)  # warned once only


# ------------------------------------------------------------------------------------------ L1 and DCT


def test_prox_l1_closed_form():
    x = torch.tensor([-2.0, -0.5, -0.2, 0.0, 0.3, 0.5, 1.5])
    assert torch.allclose(prox_l1(x, 0.5), torch.tensor([-1.5, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]))
    # each coordinate is argmin_y ½(y − x)² + lam|y|, found by brute force on a fine grid
    grid = torch.linspace(-3, 3, 60001, dtype=torch.float64)
    values = torch.tensor([-2.3, -0.7, 0.05, 0.9, 2.2], dtype=torch.float64)
    for v in values:
        brute = grid[torch.argmin(0.5 * (grid - v) ** 2 + 0.4 * grid.abs())]
        assert prox_l1(v, 0.4).item() == pytest.approx(brute.item(), abs=2e-4)
    with pytest.raises(ValueError, match="lam"):
        prox_l1(x, -1)


def test_dct_is_orthonormal_and_matches_scipy():
    for n in (1, 7, 32):
        c = dct_matrix(n)
        assert torch.allclose(c @ c.T, torch.eye(n, dtype=torch.float64), atol=1e-12)
    x = torch.rand(3, 12, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    coeffs = dct2(x)
    expected = scipy.fft.dctn(x.numpy(), type=2, norm="ortho", axes=(-2, -1))
    assert np.allclose(coeffs.numpy(), expected, atol=1e-12)
    assert torch.allclose(idct2(coeffs), x, atol=1e-12)
    assert (coeffs ** 2).sum().item() == pytest.approx((x ** 2).sum().item(), rel=1e-12)  # Parseval


def test_prox_dct_l1_is_soft_thresholding_of_the_coefficients():
    x = torch.rand(2, 2, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    y = prox_dct_l1(x, 0.05)
    assert torch.allclose(dct2(y), prox_l1(dct2(x), 0.05), atol=1e-12)
    # optimality of the prox objective ½‖y − x‖² + lam‖DCT y‖₁ under perturbations
    f = lambda z: 0.5 * ((z - x) ** 2).sum() + 0.05 * dct2(z).abs().sum()  # noqa: E731
    gen = torch.Generator().manual_seed(9)
    for scale in (1e-3, 1e-1):
        for _ in range(10):
            assert f(y + scale * torch.randn(y.shape, generator=gen, dtype=y.dtype)) >= f(y)


# ------------------------------------------------------------------------------------------ denoisers


def test_nlm_reduces_noise_and_keeps_shape():
    clean = load_image("astronaut", size=64)
    noisy = _noisy(clean, 10 / 255)
    out = nlm_denoise(noisy)
    assert out.shape == clean.shape and out.dtype == clean.dtype
    assert out.min().item() > -0.2 and out.max().item() < 1.2
    assert psnr(clean, out) > psnr(clean, noisy) + 1.0
    grey = load_image("camera", size=32, gray=True)
    assert nlm_denoise(_noisy(grey, 0.05)).shape == (1, 32, 32)
    batch = torch.stack([noisy, noisy.flip(-1)])
    assert torch.allclose(nlm_denoise(batch)[1], nlm_denoise(noisy.flip(-1)))
    with pytest.raises(ValueError, match="patch_distance"):
        nlm_denoise(noisy, patch_distance=0)
    with pytest.raises(ValueError, match="sigma"):
        nlm_denoise(noisy, sigma=-0.1)


def test_nlm_uses_the_thesis_parameters_under_scikit_image_s_names():
    """§3.3: NLM "noise standard deviation 0.01, patch distance 2, cut-off distance 0.05", which scikit-image
    calls sigma, patch_distance and h. The prior must be exactly that call — and not the call with sigma and
    h swapped, or patch distance and size confused, each of which gives another image here."""
    from skimage.restoration import denoise_nl_means

    noisy = _noisy(load_image("astronaut", size=32), 10 / 255)
    hwc = noisy.double().numpy().transpose(1, 2, 0)

    def skimage_nlm(**settings):
        out = denoise_nl_means(hwc, fast_mode=True, channel_axis=-1, **settings)
        return torch.from_numpy(out.transpose(2, 0, 1).copy()).float()

    thesis = skimage_nlm(sigma=0.01, patch_distance=2, h=0.05, patch_size=7)
    torch.testing.assert_close(nlm_denoise(noisy), thesis, rtol=0, atol=1e-6)
    torch.testing.assert_close(make_prox("nlm")(noisy, 1.0), thesis, rtol=0, atol=1e-6)
    for wrong in (dict(sigma=0.05, patch_distance=2, h=0.01, patch_size=7),
                  dict(sigma=0.01, patch_distance=7, h=0.05, patch_size=2),
                  dict(sigma=0.01, patch_distance=2, h=0.05, patch_size=5)):
        assert (skimage_nlm(**wrong) - thesis).abs().max() > 1e-3, wrong


def test_bm3d_reduces_noise_and_keeps_shape(optional):
    optional.require("bm3d")
    clean = load_image("astronaut", size=64)
    noisy = _noisy(clean, 0.05)
    out = priors.bm3d_denoise(noisy)
    assert out.shape == clean.shape and out.dtype == clean.dtype
    assert out.min().item() > -0.2 and out.max().item() < 1.2
    assert psnr(clean, out) > psnr(clean, noisy) + 2.0
    grey = load_image("camera", size=32, gray=True)
    noisy_grey = _noisy(grey, 0.05)
    assert psnr(grey, priors.bm3d_denoise(noisy_grey)) > psnr(grey, noisy_grey)


def test_bm3d_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "bm3d", None)
    with pytest.raises(ImportError, match="pip install bm3d"):
        priors.bm3d_denoise(torch.rand(3, 8, 8))
    with pytest.raises(ImportError, match="pip install bm3d"):
        make_prox("bm3d")


# ------------------------------------------------------------------------------------------ make_prox


def test_make_prox_tv_scales_lam_by_rho_and_exposes_r():
    v = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(10))
    prox = make_prox("tv", lam=0.2, backend="torch")
    assert prox.name == "tv" and prox.params["lam"] == 0.2
    assert torch.allclose(prox(v, 4.0), prox_tv(v, 0.05, backend="torch"))
    assert prox.value(v).item() == pytest.approx(0.2 * tv_norm(v).item(), rel=1e-6)
    assert make_prox("tv").params["lam"] == 0.01  # the thesis's TV weight (§3.3)
    batch = torch.stack([v, v.flip(-1)])
    assert prox(batch, 2.0).shape == batch.shape and prox.value(batch).shape == (2,)


def test_make_prox_l1_and_dct_l1():
    v = torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(11))
    l1 = make_prox("l1", lam=0.3)
    assert torch.allclose(l1(v, 2.0), prox_l1(v, 0.15))
    assert l1.value(v).item() == pytest.approx(0.3 * v.abs().sum().item(), rel=1e-6)
    dct = make_prox("dct_l1", lam=0.3)
    assert torch.allclose(dct(v, 3.0), prox_dct_l1(v, 0.1), atol=1e-6)
    assert dct.value(v).item() == pytest.approx(0.3 * dct2(v).abs().sum().item(), rel=1e-6)
    assert make_prox("l1").value(torch.ones(4)).item() == pytest.approx(0.04)  # plain vectors (Lasso)


def test_make_prox_denoisers_ignore_rho_and_have_no_value():
    v = _noisy(load_image("astronaut", size=32), 0.05)
    nlm = make_prox("nlm")
    assert nlm.value is None
    assert nlm.params == dict(sigma=0.01, patch_distance=2, cutoff=0.05, patch_size=7)
    assert torch.equal(nlm(v, 1.0), nlm(v, 7.0))
    assert torch.equal(nlm(v, 1.0), nlm_denoise(v))


def test_make_prox_errors():
    with pytest.raises(ValueError, match="tv, nlm, bm3d, l1, dct_l1"):
        make_prox("wavelet")
    with pytest.raises(TypeError, match="accepted: lam"):
        make_prox("tv", sigma=0.1)
    with pytest.raises(ValueError, match="lam"):
        make_prox("l1", lam=-1.0)
    with pytest.raises(ValueError, match="cutoff"):
        make_prox("nlm", cutoff=0)
    with pytest.raises(ValueError, match="backend"):
        make_prox("tv", backend="gpu")
    with pytest.raises(ValueError, match="max_iter"):
        make_prox("tv", max_iter=0)
    with pytest.raises(ValueError, match="tol"):
        make_prox("tv", tol=-1e-3)
    prox = make_prox("tv")
    for rho in (0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="rho"):
            prox(torch.rand(1, 4, 4), rho)


# ------------------------------------------------------------------------------------------ BM3D options


def _bm3d_reference(image, sigma, profile_class, white_noise, threads):
    """The bm3d package called directly: CBM3D (``bm3d_rgb``) with the named profile, nf = 0 for white
    noise (the package's "conventional mode"), num_threads as given."""
    import bm3d

    settings = getattr(bm3d, profile_class)()
    if white_noise:
        settings.nf = 0
    settings.num_threads = threads
    hwc = image.double().numpy().transpose(1, 2, 0)
    out = bm3d.bm3d_rgb(hwc, sigma, settings)
    return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1))).float()


def test_bm3d_options_are_the_bm3d_package_s_own(optional):
    """profile and white_noise reach bm3d.bm3d_rgb: the prior equals the direct call with the same settings
    (to the C code's float32), and each option changes the output (so an option that is dropped fails)."""
    optional.require("bm3d")
    noisy = _noisy(load_image("chelsea", size=32), 0.05)
    expected = {}
    for profile, profile_class, white_noise in (("np", "BM3DProfile", True), ("lc", "BM3DProfileLC", True),
                                                ("np", "BM3DProfile", False)):
        expected[profile, white_noise] = reference = _bm3d_reference(noisy, 0.05, profile_class, white_noise, 1)
        prox = make_prox("bm3d", sigma=0.05, profile=profile, white_noise=white_noise, threads=1)
        torch.testing.assert_close(prox(noisy, 1.0), reference, rtol=0, atol=1e-6)
    torch.testing.assert_close(priors.bm3d_denoise(noisy), expected["np", True], rtol=0, atol=1e-6)
    torch.testing.assert_close(priors.bm3d_denoise(noisy, profile="lc"), expected["lc", True], rtol=0, atol=1e-6)
    assert (expected["lc", True] - expected["np", True]).abs().max() > 1e-3
    assert (expected["np", False] - expected["np", True]).abs().max() > 1e-3


def test_bm3d_defaults_are_white_noise_np_one_thread(optional, monkeypatch):
    """The defaults (and every option) as the bm3d package receives them: a spy on bm3d.bm3d_rgb and
    bm3d.bm3d sees the profile class, nf and num_threads; one-channel images go through bm3d.bm3d."""
    optional.require("bm3d")
    import bm3d

    seen = []

    def spy(real):
        def call(z, sigma_psd, profile, *args, **kwargs):
            seen.append((real.__name__, type(profile).__name__, profile.nf, profile.num_threads, sigma_psd))
            return real(z, sigma_psd, profile, *args, **kwargs)
        return call

    monkeypatch.setattr(bm3d, "bm3d_rgb", spy(bm3d.bm3d_rgb))
    colour, grey = torch.rand(3, 16, 16), torch.rand(1, 16, 16)
    priors.bm3d_denoise(colour)
    assert seen[-1][0] == "bm3d_rgb" and seen[-1][1:] == ("BM3DProfile", 0, 1, 0.05)
    priors.bm3d_denoise(colour, sigma=0.1, profile="lc", white_noise=False, threads=2)
    assert seen[-1][1:] == ("BM3DProfileLC", 32, 2, 0.1)
    for name, cls in (("high", "BM3DProfileHigh"), ("vn", "BM3DProfileVN"), ("deb", "BM3DProfileDeb")):
        priors.bm3d_denoise(colour, profile=name)
        assert seen[-1][1] == cls
    monkeypatch.setattr(bm3d, "bm3d", spy(bm3d.bm3d))
    priors.bm3d_denoise(grey, threads=0)
    assert seen[-1][0] == "bm3d" and seen[-1][1:] == ("BM3DProfile", 0, 0, 0.05)


def test_bm3d_one_thread_repeats_exactly(optional):
    """threads=1 (the default, as in the course's one-thread workers) gives the same output call after call."""
    optional.require("bm3d")
    noisy = _noisy(load_image("astronaut", size=32), 0.05)
    assert torch.equal(priors.bm3d_denoise(noisy), priors.bm3d_denoise(noisy))


def test_bm3d_bad_options_are_clear_errors(optional):
    optional.require("bm3d")
    x = torch.rand(3, 16, 16)
    cases = [(dict(profile="refilter"), ValueError, "profile must be one of 'np', 'lc'"),
             (dict(profile="LC"), ValueError, "profile must be one of"),
             (dict(white_noise="yes"), TypeError, "white_noise must be True or False"),
             (dict(white_noise=1), TypeError, "white_noise must be True or False"),
             (dict(threads=-1), ValueError, "threads must be an integer ≥ 0"),
             (dict(threads=1.5), TypeError, "threads must be an integer"),
             (dict(sigma=0), ValueError, "sigma"),
             (dict(sigma=float("nan")), ValueError, "sigma")]
    for options, error, message in cases:
        with pytest.raises(error, match=message):
            priors.bm3d_denoise(x, **options)
        with pytest.raises(error, match=message):
            make_prox("bm3d", **options)          # at construction, not at the first call of a run
    for bad, error in ((0, ValueError), (-3, ValueError), (2.0, TypeError), (True, TypeError)):
        with pytest.raises(error, match="refresh_every must be an integer"):
            make_prox("bm3d", refresh_every=bad)
    with pytest.raises(TypeError, match="unknown parameter.*stage.*accepted: sigma, profile, white_noise, threads, "
                                        "refresh_every"):
        make_prox("bm3d", stage="hard")


# ------------------------------------------------------------------------------------------ the refreshed variant


class _CountingDenoiser:
    """A deterministic stand-in for a denoiser: a 3-tap blur along the rows; counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, v, rho=1.0):
        self.calls += 1
        return (v + v.roll(1, -1) + v.roll(-1, -1)) / 3


def _sequence(count, shape=(3, 8, 8), seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.rand(shape, generator=gen, dtype=torch.float64) for _ in range(count)]


def test_refreshed_calls_the_denoiser_every_kth_time_and_reuses_the_residual_exactly():
    denoiser = _CountingDenoiser()
    refreshed = priors.Refreshed(denoiser, 3)
    last_residual = None
    for t, v in enumerate(_sequence(10)):
        out = refreshed(v, 1.0)
        if t % 3 == 0:                                   # a refresh: the denoiser's own output, bit for bit
            assert denoiser.calls == t // 3 + 1
            assert torch.equal(out, denoiser.__class__()(v))
            last_residual = v - out
        else:                                            # in between: v_t minus the last residual
            assert denoiser.calls == t // 3 + 1
            assert torch.equal(out, v - last_residual)
            assert not torch.equal(out, denoiser.__class__()(v))
    assert denoiser.calls == 4                           # calls 0, 3, 6, 9 of 10


def test_refreshed_starts_afresh_on_reset_and_on_a_new_shape():
    denoiser = _CountingDenoiser()
    refreshed = priors.Refreshed(denoiser, 5)
    a, b = _sequence(2)
    refreshed(a, 1.0)
    refreshed(b, 1.0)
    assert denoiser.calls == 1
    small = torch.rand(3, 4, 4, dtype=torch.float64)
    assert torch.equal(refreshed(small, 1.0), _CountingDenoiser()(small)) and denoiser.calls == 2
    refreshed.reset()
    assert torch.equal(refreshed(b, 1.0), _CountingDenoiser()(b)) and denoiser.calls == 3
    with pytest.raises(ValueError, match="refresh_every must be an integer ≥ 1"):
        priors.Refreshed(denoiser, 0)


@pytest.fixture
def fake_bm3d(monkeypatch):
    """make_prox('bm3d') with the BM3D call replaced by a counted blur (fast, and the count is visible)."""
    counter = _CountingDenoiser()
    monkeypatch.setattr(priors, "bm3d_available", lambda: True)
    monkeypatch.setattr(priors, "_bm3d_profile", lambda *args: None)
    monkeypatch.setattr(priors, "bm3d_denoise", lambda v, **settings: counter(v))
    return counter


def test_make_prox_bm3d_refresh_every_is_the_refreshed_variant(fake_bm3d):
    exact = make_prox("bm3d")
    assert exact.params["refresh_every"] == 1
    vs = _sequence(9)
    for v in vs:
        assert torch.equal(exact(v, 1.0), _CountingDenoiser()(v))   # the exact prox denoises at every call
    assert fake_bm3d.calls == 9
    fake_bm3d.calls = 0
    prox = make_prox("bm3d", refresh_every=4)
    assert prox.params == dict(sigma=0.05, profile="np", white_noise=True, threads=1, refresh_every=4)
    assert prox.value is None
    outs = [prox(v, 1.0 + v.sum().item()) for v in vs]   # ρ changes nothing (the denoiser ignores it)
    assert fake_bm3d.calls == 3                          # calls 0, 4, 8
    for s in (0, 4, 8):
        assert torch.equal(outs[s], _CountingDenoiser()(vs[s]))
    assert torch.equal(outs[6], vs[6] - (vs[4] - _CountingDenoiser()(vs[4])))


def test_fresh_and_pickled_copies_have_their_own_state(fake_bm3d):
    import pickle

    prox = make_prox("bm3d", refresh_every=3)
    a, b, c = _sequence(3)
    prox(a, 1.0)
    prox(b, 1.0)                                         # the original now holds a's residual
    for copy_ in (prox.fresh(), pickle.loads(pickle.dumps(prox))):
        assert copy_ is not prox and copy_.params == prox.params
        before = fake_bm3d.calls
        assert torch.equal(copy_(c, 1.0), _CountingDenoiser()(c))   # denoised, not c − residual(a)
        assert fake_bm3d.calls == before + 1
    assert torch.equal(prox(c, 1.0), c - (a - _CountingDenoiser()(a)))   # the original's state untouched
    plain = lambda v, rho: v  # noqa: E731
    assert priors.fresh(plain) is plain


def test_every_run_gets_a_fresh_refreshed_prox(fake_bm3d):
    """DIP-ADMM-v2 and PnP-ADMM start each run with a fresh copy: two runs with one refreshed prox are
    identical, and a run calls the denoiser at iterations 1, 1 + k, 1 + 2k, ... of its own."""
    from dipcourse.admm import dip_admm_v2
    from dipcourse.operators import RandomMask, measure
    from dipcourse.solvers import pnp_admm

    ref = load_image("chelsea", size=16)
    A = RandomMask(ref.shape, keep=0.5, seed=0)
    b = measure(A, ref, 0.05, seed=1)
    prox = make_prox("bm3d", refresh_every=3)
    net = dict(nd=[8, 8], ns=[4, 4])
    first = dip_admm_v2(A, b, prox, 7, lr=0.01, ref=ref, net_kwargs=net, progress=False)
    assert fake_bm3d.calls == 3                          # iterations 1, 4, 7
    second = dip_admm_v2(A, b, prox, 7, lr=0.01, ref=ref, net_kwargs=net, progress=False)
    assert fake_bm3d.calls == 6
    np.testing.assert_array_equal(first.history["psnr"], second.history["psnr"])
    assert list(first.history["prox_calls"]) == list(range(1, 8))   # x-steps, each through the variant
    p1, p2 = (pnp_admm(A, b, prox, iters=5, ref=ref) for _ in range(2))
    np.testing.assert_array_equal(p1.history["psnr"], p2.history["psnr"])
    assert fake_bm3d.calls == 6 + 2 * 2                  # iterations 1 and 4 of each PnP run

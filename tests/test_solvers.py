"""Tests for dipcourse.solvers: ISTA/FISTA against an independent Lasso solution, PnP-ADMM with TV."""
import numpy as np
import pytest
import scipy.optimize
import torch

from dipcourse import data
from dipcourse.metrics import psnr
from dipcourse.admm import dip_admm_v2
from dipcourse.operators import Blur, GaussianCS, Identity, RandomMask, measure
from dipcourse.parallel import run_calls
from dipcourse.priors import make_prox, tv_norm
from dipcourse.solvers import (RecordingRun, apply, chambolle_pock_tv, fista, interpolate_missing, ista,
                               lasso_duality_gap, objective, pnp_admm)


def soft_threshold_prox(lam):
    """prox(v, rho) of R = lam‖x‖₁: soft-thresholding at lam/rho (closed form), with its value R."""
    def prox(v, rho):
        return torch.sign(v) * torch.clamp(v.abs() - lam / rho, min=0)
    prox.value = lambda x: lam * x.abs().sum().item()
    return prox


@pytest.fixture(scope="module")
def lasso():
    """A small under-determined Lasso problem (m = 128 < n = 256) and its solution by L-BFGS-B.

    The reference splits x = p − q with p, q ≥ 0, which turns the Lasso into a smooth
    bound-constrained problem -- a different algorithm from the proximal ones under test.
    A small λ and a 20 % dense x keep ISTA in its slow O(1/k) regime for hundreds of steps.
    """
    lam, shape, n, m = 0.001, (1, 16, 16), 256, 128
    A = GaussianCS(shape, m, seed=0)
    generator = torch.Generator().manual_seed(100)
    x_true = torch.zeros(n, dtype=torch.float64)
    x_true[torch.randperm(n, generator=generator)[:51]] = torch.randn(51, generator=generator,
                                                                        dtype=torch.float64)
    b = A.forward(x_true.reshape(shape)) + 0.01 * torch.randn(m, generator=generator,
                                                              dtype=torch.float64)
    matrix, b_np = A.matrix.double().numpy(), b.numpy()

    def split_objective(pq):
        residual = matrix @ (pq[:n] - pq[n:]) - b_np
        gradient = matrix.T @ residual
        return (0.5 * residual @ residual + lam * pq.sum(),
                np.concatenate([gradient + lam, -gradient + lam]))

    solution = scipy.optimize.minimize(split_objective, np.zeros(2 * n), jac=True, method="L-BFGS-B",
                                       bounds=[(0, None)] * (2 * n),
                                       options=dict(ftol=1e-16, gtol=1e-12, maxiter=10_000))
    x_star = torch.from_numpy(solution.x[:n] - solution.x[n:]).reshape(shape)
    return A, b, soft_threshold_prox(lam), x_star, solution.fun


def test_fista_solves_the_lasso(lasso):
    A, b, prox, x_star, f_star = lasso
    result = fista(A, b, prox, 5000)
    assert result.history["loss"][-1] == pytest.approx(f_star, abs=1e-9)
    torch.testing.assert_close(result.x, x_star, rtol=0, atol=5e-4)


def test_ista_decreases_monotonically_towards_the_solution(lasso):
    A, b, prox, x_star, f_star = lasso
    loss = ista(A, b, prox, 500).history["loss"]
    assert np.all(np.diff(loss) <= 1e-12)       # ISTA is a descent method
    assert loss[-1] - f_star > 0                 # ... still above F* after 500 steps
    # the O(1/k) bound F(x_k) − F* ≤ L‖x_0 − x*‖² / (2k)
    x0 = A.adjoint(b)
    bound = A.norm_sq * torch.sum((x0 - x_star) ** 2).item() / (2 * np.arange(1, 501))
    assert np.all(loss - f_star <= bound + 1e-12)


def test_fista_reaches_istas_500_iteration_objective_five_times_faster(lasso):
    A, b, prox, _, _ = lasso
    target = ista(A, b, prox, 500).history["loss"][-1]
    loss = fista(A, b, prox, 500).history["loss"]
    first = int(np.argmax(loss <= target)) + 1
    assert loss[first - 1] <= target and first <= 100, first


def test_loss_is_the_map_objective(lasso):
    A, b, prox, _, _ = lasso
    result = ista(A, b, prox, 3)
    assert result.history["loss"][-1] == pytest.approx(objective(A, b, result.x.double(), prox.value))
    assert list(result.history["iteration"]) == [1, 2, 3]
    # an explicit reg overrides prox.value; without either the loss is the data term
    assert ista(A, b, prox, 3, reg=lambda x: 0.0).history["loss"][-1] == \
        pytest.approx(objective(A, b, result.x.double()))
    assert "R unknown" in ista(A, b, lambda v, rho: v, 3).params["loss"]


def test_identity_denoising_is_one_soft_threshold():
    # With A = I, L = 1 and x0 = b, one ISTA step is the prox of b: the Lasso closed form.
    b = torch.randn(2, 5, 5, generator=torch.Generator().manual_seed(0))
    for solver in (ista, fista):
        result = solver(Identity(b.shape), b, soft_threshold_prox(0.3), 1)
        torch.testing.assert_close(result.x, torch.sign(b) * torch.clamp(b.abs() - 0.3, min=0))


def test_pnp_admm_with_identity_prox_and_no_prior_reaches_the_least_squares_solution():
    # R = 0 (prox = identity): ADMM converges to argmin ½‖b − Ay‖², here for a mask the
    # zero-filled image on the kept entries.
    A = RandomMask((1, 8, 8), keep=0.5, seed=0)
    x = torch.rand(1, 8, 8)
    b = A.forward(x)
    result = pnp_admm(A, b, lambda v, rho: v, rho=1.0, iters=50, ref=x)
    torch.testing.assert_close(A.forward(result.x), b, rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def tv_inpainting():
    """The thesis's inpainting task (§3.3: half the entries, σ = 10/255, TV 0.01) at 32 px."""
    x = data.load_image("astronaut", size=32)
    A = RandomMask(x.shape, keep=0.5, seed=0)
    return x, A, measure(A, x, 10 / 255, seed=0)


def test_pnp_admm_reaches_the_tv_map_objective_of_chambolle_pock(tv_inpainting):
    # Two algorithms for eq. 3 with TV: PnP-ADMM through the TV prox, Chambolle-Pock through the TV formula.
    x, A, b = tv_inpainting
    pnp = pnp_admm(A, b, make_prox("tv", lam=0.01), rho=1.0, iters=100, ref=x)
    cp = chambolle_pock_tv(A, b, 0.01, 1000, ref=x)
    assert cp.history["loss"][-1] == pytest.approx(objective(A, b, cp.x, lambda v: 0.01 * tv_norm(v)))
    assert abs(pnp.history["loss"][-1] / cp.history["loss"][-1] - 1) < 2e-3
    assert abs(pnp.final_psnr - cp.final_psnr) < 0.5
    assert len(pnp.history["psnr"]) == 100
    assert pnp.history["residual"][-1] < 1e-2 * pnp.history["residual"][0]


def test_pnp_admm_with_a_prox_that_returns_its_input_stays_at_the_zero_filled_objective(tv_inpainting):
    # what lesson 01's PnP claim relies on: without the prior, ADMM leaves the missing entries at 0
    x, A, b = tv_inpainting
    broken = pnp_admm(A, b, lambda v, rho: v, rho=1.0, iters=50)
    cp = chambolle_pock_tv(A, b, 0.01, 500)
    F_broken = objective(A, b, broken.x, lambda v: 0.01 * tv_norm(v))
    assert F_broken > 1.5 * cp.history["loss"][-1]


def test_chambolle_pock_with_zero_weight_fits_the_data():
    A = RandomMask((1, 8, 8), keep=0.5, seed=0)
    x = torch.rand(1, 8, 8)
    result = chambolle_pock_tv(A, A.forward(x), 0.0, 200)
    torch.testing.assert_close(A.forward(result.x), A.forward(x), rtol=0, atol=1e-5)


def test_interpolate_missing_keeps_the_measurements_and_fills_smoothly(tv_inpainting):
    x, A, b = tv_inpainting
    filled = interpolate_missing(A, b)
    torch.testing.assert_close(A.forward(filled), b)
    assert psnr(x, filled) > psnr(x, A.adjoint(b)) + 10
    # a constant image is filled exactly
    flat = torch.full((3, 16, 16), 0.4)
    mask = RandomMask(flat.shape, keep=0.3, seed=2)
    torch.testing.assert_close(interpolate_missing(mask, mask.forward(flat)), flat)
    with pytest.raises(TypeError, match="RandomMask"):
        interpolate_missing(Identity((1, 4, 4)), torch.zeros(1, 4, 4))


def test_lasso_duality_gap_bounds_the_suboptimality(lasso):
    A, b, _, x_star, f_star = lasso
    for basis, lam in (("pixels", 0.001),):
        for iterate in (A.adjoint(b), ista(A, b, soft_threshold_prox(lam), 50).x, x_star):
            value, gap = lasso_duality_gap(A, b, iterate, lam, basis=basis)
            assert value == pytest.approx(objective(A, b, iterate.double(), lambda v: lam * v.abs().sum().item()))
            assert value - f_star <= gap + 1e-12            # the gap is an upper bound on F(x) − F*
    assert lasso_duality_gap(A, b, x_star, 0.001, basis="pixels")[1] < 1e-6


def test_lasso_duality_gap_with_the_dct_closes_at_the_minimiser():
    x = data.load_image("camera", size=16, gray=True).double()
    A = Blur(x.shape, width=1.0)
    b = measure(A, x, 1 / 255, seed=0)
    prox = make_prox("dct_l1", lam=1e-3)
    gaps = [lasso_duality_gap(A, b, fista(A, b, prox, iters).x, 1e-3)[1] for iters in (10, 100, 2000)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-7


@pytest.fixture(scope="module")
def deblurring_lasso():
    """Lesson 01's rate problem, smaller: deblurring a 16 px gray image with a small DCT-L1 weight."""
    x = data.load_image("camera", size=16, gray=True).double()
    A = Blur(x.shape, width=1.5)
    b = measure(A, x, 1 / 255, seed=0)
    prox = make_prox("dct_l1", lam=1e-4)
    star = fista(A, b, prox, 4000).history["loss"][-1]
    return A, b, prox, star


def test_ista_is_sublinear_and_fista_about_quadratic_on_the_deblurring_lasso(deblurring_lasso):
    A, b, prox, star = deblurring_lasso
    ks = np.unique(np.geomspace(20, 100, 12).round().astype(int))
    slopes = {}
    for solver in (ista, fista):
        gap = solver(A, b, prox, 100).history["loss"] - star
        slopes[solver.__name__] = np.polyfit(np.log(ks), np.log(gap[ks - 1]), 1)[0]
    assert -1.7 < slopes["ista"] < -0.7, slopes
    assert slopes["fista"] < -1.6, slopes


def test_results_are_reproducible(lasso):
    A, b, prox, _, _ = lasso
    assert torch.equal(fista(A, b, prox, 20).x, fista(A, b, prox, 20).x)


@pytest.mark.parametrize("rho", [0, -1.0, float("nan"), float("inf")])
def test_pnp_admm_refuses_bad_rho(rho):
    A = Identity((1, 4, 4))
    with pytest.raises(ValueError, match="rho must be a finite number > 0"):
        pnp_admm(A, torch.zeros(1, 4, 4), lambda v, r: v, rho=rho, iters=1)


@pytest.mark.parametrize("solver", [ista, fista, pnp_admm])
def test_bad_input_is_refused(solver):
    A = Identity((1, 4, 4))
    b = torch.zeros(1, 4, 4)
    prox = soft_threshold_prox(0.1)
    with pytest.raises(ValueError, match="b must be a tensor of shape"):
        solver(A, torch.zeros(1, 5, 5), prox, iters=1)
    with pytest.raises(TypeError, match="torch.Tensor"):
        solver(A, b.numpy(), prox, iters=1)
    with pytest.raises(ValueError, match="iters must be an integer ≥ 1"):
        solver(A, b, prox, iters=0)
    with pytest.raises(TypeError, match="prox must be a callable"):
        solver(A, b, "tv", iters=1)
    with pytest.raises(ValueError, match="x0 must be a tensor of shape"):
        solver(A, b, prox, iters=1, x0=torch.zeros(2, 2))


def test_recording_run_records_the_constraint_violation_and_the_total_variation():
    from dipcourse.dip import fit_dip

    x = data.load_image("astronaut", size=64)
    A = RandomMask(x.shape, keep=0.5, seed=0)
    b = measure(A, x, 10 / 255, seed=0)
    call = dict(A=A, b=b, prox=make_prox("tv", lam=0.01), iters=4, ref=x, seed=0,
                net_kwargs=dict(nd=[4, 4], nu=[4, 4], ns=[0, 0]))
    seen = []
    result = RecordingRun(dip_admm_v2, total_variation=True)(callback=lambda it: seen.append(it.iteration) or False,
                                                             **call)
    assert seen == [1, 2, 3, 4]
    assert result.history["residual"].shape == (4,) and np.all(result.history["residual"] > 0)
    assert 0 < result.extras["mean_residual"] <= result.history["residual"][-1] + 1e-6   # last 10 % = 1 iteration
    # the TV column is λ‖G‖_TV / λ: the loss (36) minus the data term, divided by the weight
    np.testing.assert_allclose(result.history["tv"], (result.history["loss"] - result.history["data"]) / 0.01,
                               rtol=1e-4)
    # the same, in a worker process, through apply; a method without x and G(θ) records TV only
    del call["prox"]
    dip_call = dict(call, function=RecordingRun(fit_dip, residual=False, total_variation=True))
    v2_call = dict(call, function=RecordingRun(dip_admm_v2, total_variation=True), prox=make_prox("tv", lam=0.01))
    remote_v2, remote_dip = run_calls(apply, [v2_call, dip_call], progress=False)
    np.testing.assert_allclose(remote_v2.history["residual"], result.history["residual"], rtol=1e-4)
    assert remote_dip.history["tv"].shape == (4,) and "residual" not in remote_dip.history
    with pytest.raises(ValueError, match="residual=False"):
        RecordingRun(fit_dip)(**call)


def test_run_calls_survives_an_interrupted_cell(monkeypatch):
    """A student's "interrupt kernel" stops the runs of that cell, and the next cell's runs work."""
    import os
    import signal

    from dipcourse import parallel
    from dipcourse.runs import Progress

    A = Identity((3, 8, 8))
    b = measure(A, torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0)), 0.1, seed=0)
    call = dict(A=A, b=b, prox=make_prox("l1", lam=0.01), iters=10 ** 7)     # minutes, unless stopped
    original, workers = Progress.update, []

    def interrupted(self, n=1):
        workers.extend(parallel._POOL["executor"]._processes.values())   # the runs are under way now
        raise KeyboardInterrupt

    parallel.shutdown()
    monkeypatch.setattr(Progress, "update", interrupted)
    with pytest.raises(KeyboardInterrupt):
        parallel.run_calls(ista, [call, call], workers=2)
    assert parallel._POOL["executor"] is None and len(workers) == 2
    assert all(process.exitcode == -signal.SIGTERM for process in workers)   # stopped, not waited for
    monkeypatch.setattr(Progress, "update", original)
    quick = dict(call, iters=5)
    first = parallel.run_calls(ista, [quick, quick], workers=2, progress=False)
    # Jupyter signals the whole process group: the workers must ignore it
    for process in parallel._POOL["executor"]._processes.values():
        os.kill(process.pid, signal.SIGINT)
    again = parallel.run_calls(ista, [quick, quick], workers=2, progress=False)
    assert torch.equal(first[0].x, again[1].x)

"""Tests for dipcourse.solvers: ISTA/FISTA against an independent Lasso solution, PnP-ADMM with TV."""
import numpy as np
import pytest
import scipy.optimize
import torch

from dipcourse import data
from dipcourse.metrics import psnr
from dipcourse.operators import GaussianCS, Identity, RandomMask, measure
from dipcourse.priors import make_prox
from dipcourse.solvers import fista, ista, objective, pnp_admm


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


@pytest.mark.parametrize("size", [64, 128])
def test_pnp_admm_tv_inpainting_beats_zero_filling_by_12_db(size):
    # The thesis setting (§3.3): half the pixels, σ = 10/255, TV weight 0.01, ρ = 1.
    x = data.load_image("astronaut", size=size)
    A = RandomMask(x.shape, keep=0.5, seed=0)
    b = measure(A, x, 10 / 255, seed=0)
    zero_filled = psnr(x, A.adjoint(b))
    result = pnp_admm(A, b, make_prox("tv", lam=0.01), rho=1.0, iters=100, ref=x)
    assert result.final_psnr >= zero_filled + 12, (result.final_psnr, zero_filled)
    assert len(result.history["psnr"]) == 100
    assert result.history["residual"][-1] < result.history["residual"][0]


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

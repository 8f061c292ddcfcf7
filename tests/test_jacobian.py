"""Tests for dipcourse.jacobian: J Jᵀ against explicit Jacobians, eigenpairs against eigh, eq. 39–44."""
import copy

import numpy as np
import pytest
import torch

from dipcourse import jacobian as jac


def tiny_net(seed=0, out_channels=3):
    """A small conv net with train-mode BatchNorm: small enough for an explicit Jacobian."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.LeakyReLU(0.2),
        torch.nn.Conv2d(8, out_channels, 3, padding=1), torch.nn.BatchNorm2d(out_channels), torch.nn.Sigmoid())


def tiny_input(seed=1, size=6):
    return torch.rand(1, 4, size, size, generator=torch.Generator().manual_seed(seed))


def explicit_jacobian(net, z):
    """J (n × w) by torch.autograd.functional.jacobian, BatchNorm normalising with batch statistics."""
    model = copy.deepcopy(net).double().train()
    names = [name for name, _ in model.named_parameters()]
    params = tuple(p.detach() for _, p in model.named_parameters())

    def output(*weights):
        return torch.func.functional_call(model, dict(zip(names, weights)), (z.double(),)).reshape(-1)

    blocks = torch.autograd.functional.jacobian(output, params)
    return torch.cat([block.reshape(block.shape[0], -1) for block in blocks], dim=1).numpy()


@pytest.fixture(scope="module")
def small_case():
    net, z = tiny_net(), tiny_input()
    J = explicit_jacobian(net, z)
    return net, z, J @ J.T


def relative_error(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


def test_jjt_operator_matches_explicit_jacobian(small_case):
    net, z, gram = small_case
    op = jac.jjt_operator(net, z)
    v = np.random.default_rng(0).standard_normal((op.shape[0], 5))
    assert relative_error(op @ v, gram @ v) < 1e-4           # block products (vmap)
    assert relative_error(op @ v[:, 0], gram @ v[:, 0]) < 1e-4  # one vector (eigsh's path)


def test_jacobian_uses_batch_statistics_not_running_statistics(small_case):
    net, z, gram = small_case
    frozen = copy.deepcopy(net).eval()  # eval mode: the caller's mode must not matter either
    frozen[1].running_mean.fill_(5.0)   # running statistics that would change an eval-mode Jacobian
    op = jac.jjt_operator(frozen, z)
    assert relative_error(op @ np.eye(op.shape[0]), gram) < 1e-4


def test_caller_network_is_not_modified():
    net, z = tiny_net().eval(), tiny_input()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    jac.top_eigenpairs(net, z, 3, method="block")
    jac.ntk_gram(net, z)
    jac.gradient_descent_residuals(net, z, torch.rand(3, 6, 6), lr=1e-2, steps=3)
    assert not net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_ntk_gram_symmetric_psd_and_equal_to_operator_on_identity(small_case):
    net, z, gram = small_case
    K = jac.ntk_gram(net, z, batch_size=16)
    n = K.shape[0]
    assert K.shape == (3 * 6 * 6,) * 2
    assert relative_error(K, K.T) < 1e-5
    assert np.linalg.eigvalsh((K + K.T) / 2).min() > -1e-5 * np.abs(K).max()
    assert relative_error(K, jac.jjt_operator(net, z) @ np.eye(n)) < 1e-5
    assert relative_error(K, gram) < 1e-4


def test_ntk_gram_progress_bar_counts_every_column_and_changes_nothing(small_case, monkeypatch):
    from dipcourse import runs

    net, z, _ = small_case
    counted = []
    monkeypatch.setattr(runs.Progress, "update", lambda self, n=1: counted.append(n))
    K = jac.ntk_gram(net, z, batch_size=16, progress=True)
    assert sum(counted) == K.shape[0] and len(counted) == -(-K.shape[0] // 16)
    np.testing.assert_array_equal(K, jac.ntk_gram(net, z, batch_size=16))
    with pytest.raises(TypeError, match="ntk_gram: progress must be True or False"):
        jac.ntk_gram(net, z, progress="yes")


def test_ntk_gram_refuses_matrices_above_the_memory_bound(small_case):
    net, z, _ = small_case
    with pytest.raises(ValueError, match="max_bytes"):
        jac.ntk_gram(net, z, max_bytes=1000)


@pytest.mark.parametrize("method", ["arpack", "block"])
def test_top_eigenpairs_meet_residual_bar_and_agree_with_eigh(small_case, method):
    net, z, gram = small_case
    k = 8
    exact = np.linalg.eigvalsh(gram)[::-1]
    values, vectors = jac.top_eigenpairs(net, z, k, method=method)
    assert values.shape == (k,) and vectors.shape == (gram.shape[0], k)
    assert np.all(np.diff(values) <= 0)
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(k), atol=1e-8)
    residuals = np.linalg.norm(gram @ vectors - vectors * values, axis=0)  # against the explicit J Jᵀ
    assert residuals.max() <= 1e-3 * exact[0]
    np.testing.assert_allclose(values, exact[:k], rtol=0, atol=1e-3 * exact[0])
    np.testing.assert_allclose(jac.eigenpair_residuals(net, z, values, vectors), residuals, atol=1e-4 * exact[0])


def test_block_method_gives_up_with_a_clear_error(small_case):
    net, z, _ = small_case
    with pytest.raises(ValueError, match="max_passes"):
        jac.top_eigenpairs(net, z, 8, method="block", tol=1e-12, max_passes=2)


def linear_model():
    """G(z; θ) = conv(z; θ) + bias: linear in θ, so the linearisation (38) is exact and J Jᵀ has full rank."""
    torch.manual_seed(3)
    return torch.nn.Conv2d(4, 1, 3, padding=1), tiny_input(size=4)


def full_spectrum(net, z):
    values, vectors = np.linalg.eigh(jac.ntk_gram(net, z, dtype=torch.float64))
    return values[::-1], vectors[:, ::-1]


def test_linearised_prediction_equals_gradient_descent_for_a_linear_model():
    net, z = linear_model()
    values, U = full_spectrum(net, z)
    b = torch.rand(1, 4, 4, generator=torch.Generator().manual_seed(4))
    lr = 0.5 / values[0]
    real = jac.gradient_descent_residuals(net, z, b, lr=lr, steps=50, dtype=torch.float64)
    with torch.no_grad():
        r0 = net.double()(z.double()) - b.double()
    predicted = jac.predict_residuals(r0, values, U, lr=lr, steps=50)
    np.testing.assert_allclose(predicted, real, rtol=1e-8)
    assert predicted[-1] < 0.5 * predicted[0]  # the test would notice a prediction that never moves


def test_prediction_with_partial_basis_keeps_the_rest_unfitted():
    values = np.array([4.0, 1.0])
    U = np.eye(3)[:, :2]
    r = jac.predict_residuals(np.array([1.0, 1.0, 2.0]), values, U, lr=0.25, steps=1)
    np.testing.assert_allclose(r, [np.sqrt(6.0), np.sqrt(0.0 + 0.75 ** 2 + 4.0)])


def test_generalization_bound_43_holds_for_a_linear_model():
    net, z = linear_model()
    values, U = full_spectrum(net, z)
    p, lr, steps = 4, 0.5 / values[0], 200
    rng = np.random.default_rng(5)
    x_true = U[:, :p] @ rng.standard_normal(p)   # the assumption of (43): x♮ = U_p U_pᵀ x♮
    noise = 0.3 * rng.standard_normal(U.shape[0])
    with torch.no_grad():
        g0 = net.double()(z.double()).reshape(-1).numpy()
    errors = [np.linalg.norm(U @ ((1 - lr * values) ** t * (U.T @ (g0 - x_true - noise))) + noise)
              for t in range(steps + 1)]  # (42), exact for a linear model
    terms = jac.generalization_terms(values, U, x_true, noise, g0, lr=lr, steps=steps, p=p)
    assert np.all(terms["bound"] >= np.asarray(errors) - 1e-9)
    assert terms["image"][-1] < 1e-2 * terms["image"][0]          # the image is fitted first ...
    assert terms["noise"][-1] > terms["image"][-1]
    assert np.all(np.diff(terms["noise"]) >= -1e-12)              # ... while the fitted noise grows
    assert terms["noise"][0] == 0.0


def test_subspace_operator_adjoint_projection_and_solve():
    rng = np.random.default_rng(0)
    U, _ = np.linalg.qr(rng.standard_normal((2 * 3 * 3, 5)))
    A = jac.Subspace(U, (2, 3, 3))
    x = torch.randn(2, 3, 3)
    y = torch.randn(5)
    assert A.out_shape == (5,) and A.in_shape == (2, 3, 3)
    assert torch.allclose((A.forward(x) * y).sum(), (x * A.adjoint(y)).sum(), atol=1e-5)
    assert torch.allclose(A.normal(A.normal(x)), A.normal(x), atol=1e-5)
    batch = torch.randn(4, 2, 3, 3)
    assert torch.allclose(A.forward(batch)[2], A.forward(batch[2]), atol=1e-6)
    rho = 0.7
    dense = np.linalg.solve(U @ U.T + rho * np.eye(18), x.reshape(-1).double().numpy())
    np.testing.assert_allclose(A.solve_regularized(x, rho).reshape(-1).numpy(), dense, atol=1e-5)


def test_bad_inputs_give_clear_errors(small_case):
    net, z, _ = small_case
    n = 3 * 6 * 6
    with pytest.raises(ValueError, match="k="):
        jac.top_eigenpairs(net, z, n)
    with pytest.raises(ValueError, match="k must be an integer ≥ 1"):
        jac.top_eigenpairs(net, z, 0, method="block")
    with pytest.raises(TypeError, match="k must be an integer"):
        jac.top_eigenpairs(net, z, 2.5)
    with pytest.raises(ValueError, match="method"):
        jac.top_eigenpairs(net, z, 2, method="lanczos")
    with pytest.raises(ValueError, match="cannot take an input"):
        jac.jjt_operator(net, torch.rand(1, 5, 6, 6))
    with pytest.raises(ValueError, match="shape"):
        jac.jjt_operator(net, torch.rand(2, 4, 6, 6))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        jac.ntk_gram(lambda x: x, z)
    values, U = np.array([2.0, 1.0]), np.eye(n)[:, :2]
    with pytest.raises(ValueError, match="p must be an integer ≥ 1 and ≤ 2, got 3"):
        jac.generalization_terms(values, U, np.zeros(n), np.zeros(n), np.zeros(n), lr=0.1, steps=2, p=3)
    with pytest.raises(ValueError, match="lr"):
        jac.predict_residuals(np.ones(n), values, U, lr=1.0, steps=2)
    with pytest.raises(ValueError, match="entries"):
        jac.predict_residuals(np.ones(n + 1), values, U, lr=0.1, steps=2)
    with pytest.raises(ValueError, match="shape"):
        jac.Subspace(U, (3, 6, 5))
    with pytest.raises(ValueError, match="p must be an integer ≥ 1 and ≤ 2, got 3"):
        jac.fit_along_directions(torch.rand(3, 6, 6), U, iters=1, p=3)


def small_skipnet():
    """The course's DIP network, shrunk (two levels, few channels) so its Jacobian can be written out."""
    from dipcourse.dip import SkipNet, make_input
    torch.manual_seed(0)
    return SkipNet(in_channels=4, out_channels=3, nd=[4, 4]), make_input(4, 8, 8, seed=0)


def test_jjt_operator_on_skipnet_matches_explicit_jacobian():
    net, z = small_skipnet()
    J = explicit_jacobian(net, z)
    op = jac.jjt_operator(net, z)
    v = np.random.default_rng(1).standard_normal((op.shape[0], 4))
    assert relative_error(op @ v, J @ (J.T @ v)) < 1e-4


def test_skipnet_size_error_is_clear():
    from dipcourse.dip import SkipNet
    with pytest.raises(ValueError, match="multiples of 4"):
        jac.jjt_operator(SkipNet(in_channels=4, nd=[4, 4]), torch.rand(1, 4, 8, 10))


def test_fit_along_all_directions_is_plain_dip():
    """Limit case of §5.5: with p = n orthonormal directions, loss (44) is loss (37) and the runs coincide."""
    from dipcourse.dip import fit_dip
    from dipcourse.operators import Identity
    net, z = small_skipnet()
    x = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(2))
    b = (x + 0.1 * torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    U, _ = np.linalg.qr(np.random.default_rng(4).standard_normal((192, 192)))
    along = jac.fit_along_directions(b, U, 20, net=copy.deepcopy(net), z=z, ref=x, progress=False)
    plain = fit_dip(Identity((3, 8, 8)), b, 20, net=copy.deepcopy(net), z=z, ref=x, progress=False)
    np.testing.assert_allclose(along.history["loss"], plain.history["loss"], rtol=1e-3)
    np.testing.assert_allclose(along.history["psnr"], plain.history["psnr"], rtol=1e-3)
    assert along.params["p"] == 192 and along.params["algorithm"] == "fit_along_directions"


def test_fit_along_few_directions_only_fits_those():
    net, z = small_skipnet()
    b = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(5))
    U, _ = np.linalg.qr(np.random.default_rng(6).standard_normal((192, 10)))
    result = jac.fit_along_directions(b, U, 100, net=net, z=z, lr=3e-2, p=3, progress=False)
    A = jac.Subspace(U[:, :3], (3, 8, 8))
    assert torch.linalg.norm(A.forward(result.x - b)) < 0.1 * torch.linalg.norm(A.forward(b))
    assert torch.linalg.norm(result.x - b) > 0.5 * torch.linalg.norm(b - A.normal(b))
    assert result.history["loss"][-1] < 0.05 * result.history["loss"][0]


def test_low_frequency_share_of_constant_checkerboard_and_noise():
    shape = (1, 8, 8)
    constant = np.ones(64) / 8
    checker = np.indices((8, 8)).sum(axis=0).reshape(-1) % 2 * 2 - 1.0
    noise = np.random.default_rng(0).standard_normal((64, 200))
    shares = jac.low_frequency_share(np.column_stack([constant, checker]), shape)
    np.testing.assert_allclose(shares, [1.0, 0.0], atol=1e-12)
    expected = (np.sqrt(np.add.outer(np.fft.fftfreq(8) ** 2, np.fft.fftfreq(8) ** 2)) <= 0.125).mean()
    assert abs(jac.low_frequency_share(noise, shape).mean() - expected) < 0.02
    with pytest.raises(ValueError, match="shape"):
        jac.low_frequency_share(noise, (1, 8, 7))


def test_subspace_limit_is_where_linearised_gradient_descent_on_44_ends():
    net, z = linear_model()
    values, U = full_spectrum(net, z)
    b = torch.rand(1, 4, 4, generator=torch.Generator().manual_seed(7))
    p = 2  # λ₂/λ₁ ≈ 0.13 here, so 300 steps with η = 1/λ₁ converge to rounding
    params = {k: v.detach().double().clone() for k, v in net.named_parameters()}
    model = copy.deepcopy(net).double()
    Up = torch.from_numpy(U[:, :p].copy())
    lr = 1.0 / values[0]
    for _ in range(300):  # plain gradient descent on (44) for the linear model
        out = torch.func.functional_call(model, params, (z.double(),)).reshape(-1)
        _, vjp_fn = torch.func.vjp(lambda q: torch.func.functional_call(model, q, (z.double(),)).reshape(-1), params)
        (grad,) = vjp_fn(Up @ (Up.T @ (out - b.double().reshape(-1))))
        params = {k: v - lr * grad[k] for k, v in params.items()}
    with torch.no_grad():
        g0 = net(z)[0]
    limit = jac.subspace_limit(b, g0, U, p)
    np.testing.assert_allclose(out.reshape(1, 4, 4).numpy(), limit.numpy(), atol=1e-4)
    assert torch.linalg.norm(limit - b) > 0.1  # p < n: not the measurement itself
    with pytest.raises(ValueError, match="got 17"):
        jac.subspace_limit(b, g0, U, 17)


def test_block_method_survives_a_low_rank_spectrum():
    """A 1×1 convolution fed z = 0 outputs its bias everywhere: J = [0 | 1], so J Jᵀ = 1 1ᵀ, with
    λ₁ = n (eigenvector constant) and λ = 0 on the rest. The Krylov space closes after one product:
    the next block is exactly zero after orthogonalisation and must be replaced by fresh random
    directions, or the basis stops being orthonormal and the Ritz values are wrong."""
    net, z = torch.nn.Conv2d(1, 1, 1), torch.zeros(1, 1, 6, 6)
    n = 36
    values, vectors = jac.top_eigenpairs(net, z, 2, method="block", block_size=2, dtype=torch.float64)
    np.testing.assert_allclose(values, [n, 0.0], rtol=0, atol=1e-10 * n)
    np.testing.assert_allclose(np.abs(vectors[:, 0]), np.full(n, 1 / 6), atol=1e-10)
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(2), atol=1e-10)


class DiagonalProducts:
    """Stands in for the network function: J Jᵀ = diag(values), a spectrum known in closed form."""

    def __init__(self, values):
        self.values = torch.as_tensor(values, dtype=torch.float64)
        self.n, self.device, self.dtype = len(values), torch.device("cpu"), torch.float64

    def jjt_block(self, V, batch_size=64):
        return self.values[:, None] * V


def test_block_lanczos_finds_a_known_spectrum_in_few_products():
    """λᵢ = 1/i on n = 400 decays slowly (λ₅/λ₄ = 0.8): subspace iteration with 4 vectors needs 44
    passes (176 products) for the top 4 to 1e-6; a Krylov method that keeps its whole basis needs
    about a fifth of that. The eigenpairs must be the exact 1/i and the unit vectors e_i."""
    n = 400
    values, vectors, info = jac._block_lanczos(DiagonalProducts(1.0 / np.arange(1, n + 1)), k=4, tol=1e-6,
                                               block=4, max_passes=100, seed=0, batch_size=64)
    np.testing.assert_allclose(values, 1.0 / np.arange(1, 5), rtol=1e-8)
    np.testing.assert_allclose(np.abs(vectors[:4]), np.eye(4), atol=1e-5)
    assert info["matvecs"] <= 60, info["matvecs"]


def test_block_size_must_be_positive(small_case):
    net, z, _ = small_case
    with pytest.raises(ValueError, match="block_size"):
        jac.top_eigenpairs(net, z, 2, method="block", block_size=0)

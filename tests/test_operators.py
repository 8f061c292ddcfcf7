"""Tests for dipcourse.operators against dense linear algebra built from the operators themselves."""
import math

import pytest
import torch

from dipcourse import operators as ops
from dipcourse.operators import Blur, Downsample, GaussianCS, Identity, RandomMask, measure

SHAPE = (2, 6, 6)


def make_all(shape=SHAPE):
    """One of each operator on a small image shape (GaussianCS both under- and over-determined)."""
    n = math.prod(shape)
    return [Identity(shape), RandomMask(shape, keep=0.5, seed=3),
            RandomMask(shape, keep=0.3, seed=1, same_across_channels=True),
            Downsample(shape, 2), Downsample(shape, 3),
            GaussianCS(shape, n // 3, seed=2), GaussianCS(shape, 2 * n, seed=5),
            Blur(shape, width=1.0), Blur((1, 5, 7), width=2.5)]


ALL = make_all()
IDS = [repr(A) for A in ALL]


def dense(A):
    """The matrix of A (out × in), built by applying A to every basis vector, in float64."""
    n = math.prod(A.in_shape)
    basis = torch.eye(n, dtype=torch.float64).reshape(n, *A.in_shape)
    return A.forward(basis).reshape(n, -1).T


@pytest.mark.parametrize("A", ALL, ids=IDS)
def test_adjoint_identity(A):
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        x = torch.randn(A.in_shape, generator=generator)
        y = torch.randn(A.out_shape, generator=generator)
        lhs = torch.sum(A.forward(x) * y).item()
        rhs = torch.sum(x * A.adjoint(y)).item()
        assert abs(lhs - rhs) <= 1e-5 * max(abs(lhs), abs(rhs), 1e-12)


@pytest.mark.parametrize("A", ALL, ids=IDS)
def test_matches_dense_linear_algebra(A):
    matrix = dense(A)
    n = matrix.shape[1]
    # adjoint is the transpose
    m = matrix.shape[0]
    basis_out = torch.eye(m, dtype=torch.float64).reshape(m, *A.out_shape)
    adjoint_matrix = A.adjoint(basis_out).reshape(m, -1)
    torch.testing.assert_close(adjoint_matrix, matrix, rtol=0, atol=1e-12)
    gram = matrix.T @ matrix
    # normal = AᵀA
    x = torch.randn(A.in_shape, dtype=torch.float64)
    torch.testing.assert_close(A.normal(x).reshape(-1), gram @ x.reshape(-1))
    # norm_sq = largest eigenvalue of AᵀA
    assert A.norm_sq == pytest.approx(torch.linalg.eigvalsh(gram)[-1].item(), rel=1e-6)
    # solve_regularized = (AᵀA + ρI)⁻¹ rhs, for several ρ
    rhs = torch.randn(A.in_shape, dtype=torch.float64)
    for rho in (0.1, 1.0, 7.0):
        expected = torch.linalg.solve(gram + rho * torch.eye(n, dtype=torch.float64),
                                      rhs.reshape(-1))
        torch.testing.assert_close(A.solve_regularized(rhs, rho).reshape(-1), expected,
                                   rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("A", ALL, ids=IDS)
def test_solve_regularized_in_float32(A):
    rhs = torch.randn(A.in_shape)
    y = A.solve_regularized(rhs, 1.0)
    assert y.dtype == torch.float32
    torch.testing.assert_close(A.normal(y) + y, rhs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("A", ALL, ids=IDS)
def test_batch_dimension(A):
    x = torch.randn(4, *A.in_shape)
    y = torch.randn(4, *A.out_shape)
    outputs = {
        "forward": (A.forward(x), [A.forward(xi) for xi in x]),
        "adjoint": (A.adjoint(y), [A.adjoint(yi) for yi in y]),
        "normal": (A.normal(x), [A.normal(xi) for xi in x]),
        "solve": (A.solve_regularized(x, 0.5), [A.solve_regularized(xi, 0.5) for xi in x]),
    }
    for name, (batched, single) in outputs.items():
        torch.testing.assert_close(batched, torch.stack(single), msg=name)
    assert A.forward(x).shape == (4, *A.out_shape)


def test_mask_is_a_truncated_permutation():
    A = RandomMask((3, 16, 16), keep=0.5, seed=0)
    assert A.out_shape == (384,)
    x = torch.rand(3, 16, 16)
    b = A.forward(x)
    # b holds exactly the kept values, in raster order; zero-filling puts them back
    torch.testing.assert_close(b, x.reshape(-1)[A.mask.reshape(-1) == 1])
    torch.testing.assert_close(A.adjoint(b), x * A.mask)
    # the same seed gives the same mask, another seed a different one
    assert torch.equal(RandomMask((3, 16, 16), seed=0).indices, A.indices)
    assert not torch.equal(RandomMask((3, 16, 16), seed=1).indices, A.indices)
    # per entry, the channels at one location are not all kept or all dropped together
    assert not torch.equal(A.mask[0], A.mask[1])


def test_mask_per_location():
    A = RandomMask((3, 10, 10), keep=0.25, seed=0, same_across_channels=True)
    assert A.out_shape == (75,)
    assert torch.equal(A.mask[0], A.mask[1]) and torch.equal(A.mask[1], A.mask[2])
    assert A.mask[0].sum() == 25


def test_keep_one_is_identity_like():
    A = RandomMask((1, 4, 4), keep=1.0)
    x = torch.rand(1, 4, 4)
    torch.testing.assert_close(A.forward(x), x.reshape(-1))


def test_downsample_is_a_box_average():
    A = Downsample((1, 4, 4), 2)
    x = torch.arange(16.0).reshape(1, 4, 4)
    torch.testing.assert_close(A.forward(x), torch.tensor([[[2.5, 4.5], [10.5, 12.5]]]))
    assert A.norm_sq == 0.25


def test_blur_is_a_circular_gaussian_convolution():
    A = Blur((1, 9, 9), width=1.2)
    # the kernel sums to 1 and is symmetric, so constants pass unchanged and Aᵀ = A
    torch.testing.assert_close(A.forward(torch.full((1, 9, 9), 0.3)), torch.full((1, 9, 9), 0.3))
    # an impulse at (4, 4) becomes the kernel centred there, wrapping around the borders
    impulse = torch.zeros(1, 9, 9, dtype=torch.float64)
    impulse[0, 4, 4] = 1.0
    expected = torch.roll(A.kernel, shifts=(4, 4), dims=(0, 1))
    torch.testing.assert_close(A.forward(impulse)[0], expected)
    r = torch.arange(9.0, dtype=torch.float64)
    d = torch.minimum(r, 9 - r)
    g = torch.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2 * 1.2 ** 2))
    torch.testing.assert_close(A.kernel, g / g.sum())
    assert A.norm_sq == pytest.approx(1.0)


def test_blur_spectrum_reaches_down_to_zero():
    # what lesson 01's ISTA/FISTA test relies on: AᵀA has eigenvalues arbitrarily close to 0
    A = Blur((1, 32, 32), width=1.5)
    eigenvalues = A.gram.flatten()
    assert eigenvalues.max() == pytest.approx(1.0) and eigenvalues.min() < 1e-12
    assert (eigenvalues < 1e-2).float().mean() > 0.5


def test_bad_blur_is_refused():
    with pytest.raises(ValueError, match="width must be a finite number > 0"):
        Blur((1, 8, 8), width=0)
    with pytest.raises(ValueError, match=r"image shape \(C, H, W\)"):
        Blur((8, 8))


def test_gaussian_cs_scaling_and_seed():
    A = GaussianCS((1, 16, 16), 128, seed=0)
    assert A.matrix.shape == (128, 256)
    # entries N(0, 1/m): column norms are about 1
    assert abs(A.matrix.pow(2).sum(0).mean().item() - 1.0) < 0.05
    assert torch.equal(GaussianCS((1, 16, 16), 128, seed=0).matrix, A.matrix)
    assert not torch.equal(GaussianCS((1, 16, 16), 128, seed=1).matrix, A.matrix)


def test_gaussian_cs_refuses_huge_matrices_and_says_what_fits():
    with pytest.raises(ValueError, match="256 MiB") as info:
        GaussianCS((3, 128, 128), 3 * 128 * 128 // 2)
    message = str(info.value)
    assert "m ≤ 1365" in message and "3×62×62" in message
    # the suggested side fits the bound and one pixel more would not
    def nbytes(side):
        return 4 * round(0.5 * 3 * side * side) * 3 * side * side
    assert nbytes(62) <= ops.GAUSSIAN_CS_MAX_BYTES < nbytes(63)


def test_measure_adds_seeded_gaussian_noise():
    A = Identity((1, 64, 64))
    x = torch.full((1, 64, 64), 0.5)
    b = measure(A, x, 0.1, seed=0)
    assert abs((b - x).std().item() - 0.1) < 0.005
    assert abs((b - x).mean().item()) < 0.005
    torch.testing.assert_close(b, measure(A, x, 0.1, seed=0), rtol=0, atol=0)
    assert not torch.equal(b, measure(A, x, 0.1, seed=1))
    torch.testing.assert_close(measure(A, x, 0.0), x, rtol=0, atol=0)
    mask = RandomMask((1, 64, 64))
    assert measure(mask, x, 0.1).shape == mask.out_shape
    assert measure(mask, torch.stack([x, x]), 0.1).shape == (2, *mask.out_shape)


@pytest.mark.parametrize("A", ALL, ids=IDS)
def test_wrong_shapes_are_refused(A):
    wrong = torch.zeros(5, 5)
    for method in (A.forward, A.normal, A.adjoint):
        with pytest.raises(ValueError, match="expects shape"):
            method(wrong)
    with pytest.raises(ValueError, match="expects shape"):
        A.forward(torch.zeros(A.out_shape) if A.out_shape != A.in_shape else torch.zeros(1, 2, 3))
    with pytest.raises(TypeError, match="torch.Tensor"):
        A.forward(torch.zeros(A.in_shape).numpy())


@pytest.mark.parametrize("rho", [0, -1.0, float("nan"), float("inf"), "1"])
def test_bad_rho_is_refused(rho):
    for A in ALL:
        with pytest.raises((TypeError, ValueError), match="rho must be a finite number > 0"):
            A.solve_regularized(torch.zeros(A.in_shape), rho)


@pytest.mark.parametrize("keep", [0, -0.1, 1.5, float("nan"), "half"])
def test_bad_keep_is_refused(keep):
    with pytest.raises((TypeError, ValueError), match=r"keep must be a finite number > 0 and ≤ 1"):
        RandomMask((3, 8, 8), keep=keep)


@pytest.mark.parametrize("sigma", [-0.1, float("nan"), float("inf"), "0.1"])
def test_bad_sigma_is_refused(sigma):
    with pytest.raises((TypeError, ValueError), match="sigma must be a finite number ≥ 0"):
        measure(Identity((1, 4, 4)), torch.zeros(1, 4, 4), sigma)


def test_bad_construction_is_refused():
    with pytest.raises(ValueError, match="multiples of factor 3"):
        Downsample((3, 8, 8), 3)
    with pytest.raises(ValueError, match="factor must be an integer ≥ 1"):
        Downsample((3, 8, 8), 0)
    with pytest.raises(ValueError, match=r"image shape \(C, H, W\)"):
        Downsample((8, 8), 2)
    with pytest.raises(ValueError, match="m must be an integer ≥ 1"):
        GaussianCS((1, 8, 8), 0)
    with pytest.raises(ValueError, match="positive integers"):
        Identity((3, 0, 8))
    with pytest.raises(TypeError, match="tuple of positive integers"):
        Identity(5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_runs_on_the_inputs_device():
    for A in make_all():
        x = torch.randn(A.in_shape, device="cuda")
        y = A.forward(x)
        assert y.device.type == "cuda"
        assert A.adjoint(y).device.type == "cuda"
        assert A.solve_regularized(x, 1.0).device.type == "cuda"
        torch.testing.assert_close(A.forward(x).cpu(), A.forward(x.cpu()), rtol=1e-4, atol=1e-4)

"""Forward operators A of the linear inverse problem b = A x + ε (thesis eq. 1).

Every operator maps an image x of shape ``in_shape`` (usually (C, H, W)) to a measurement of shape
``out_shape`` and offers what the solvers need:

* ``forward(x)``  = A x
* ``adjoint(y)``  = Aᵀ y
* ``normal(x)``   = AᵀA x
* ``norm_sq``     = ‖AᵀA‖₂, the largest eigenvalue of AᵀA (= ‖A‖₂²); ISTA/FISTA step 1/‖AᵀA‖ (eq. 4)
* ``solve_regularized(rhs, rho)`` = (AᵀA + ρI)⁻¹ rhs, the closed-form y-step of PnP-ADMM (Alg. 3, line 3)

All of them also accept a leading batch dimension, (B, *in_shape) → (B, *out_shape), and work on the
device and dtype of their input (index sets and matrices are copied there the first time, then
cached).

The operators of lesson 01:

==================  =====================================  ============  ==========================
operator            A                                      ‖AᵀA‖         (AᵀA + ρI)⁻¹
==================  =====================================  ============  ==========================
Identity            denoising                              1             1/(1+ρ)
RandomMask          inpainting: keep m entries (§3.3)      1             1/(mask+ρ), entrywise
Downsample          super-resolution: f×f box average      1/f²          projector formula
GaussianCS          compressed sensing: dense m×n matrix   computed      Woodbury + Cholesky
Blur                deblurring: periodic Gaussian blur     max k̂²       1/(k̂² + ρ) in Fourier space
==================  =====================================  ============  ==========================
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse.linalg import LinearOperator as ScipyLinearOperator
from scipy.sparse.linalg import eigsh

from dipcourse import checks

#: GaussianCS refuses matrices larger than this (bytes, float32). 256 MiB keeps the matrix, its
#: Gram matrix (at most as large again) and a double-precision copy in a laptop's memory.
GAUSSIAN_CS_MAX_BYTES = 256 * 2**20


def _image_shape(shape, where):
    """``shape`` checked as an image shape (C, H, W)."""
    shape = checks.shape(shape, "shape", where)
    if len(shape) != 3:
        raise ValueError(f"{where}: shape must be an image shape (C, H, W), got {shape}.")
    return shape


def _check_rho(rho):
    return checks.rho(rho, "solve_regularized")


class LinearOperator:
    """Base class: a linear map from tensors of shape ``in_shape`` to tensors of shape ``out_shape``.

    Subclasses implement the batched maps ``_forward`` (B, *in_shape) → (B, *out_shape) and
    ``_adjoint``; they override ``_normal`` and ``_solve_regularized`` with closed forms where one
    exists and set or compute ``norm_sq``. The public methods check shapes and add or remove the
    batch dimension.
    """

    def __init__(self, in_shape, out_shape):
        self.in_shape = checks.shape(in_shape, "in_shape", type(self).__name__)
        self.out_shape = checks.shape(out_shape, "out_shape", type(self).__name__)
        self._cache = {}

    def __repr__(self):
        return f"{type(self).__name__}(in_shape={self.in_shape}, out_shape={self.out_shape})"

    # -- shape handling -------------------------------------------------------------------------
    def _batched(self, x, shape, method):
        """Return ``x`` as (B, *shape) and whether it came with a batch dimension."""
        # Only the type and shape are checked here, not the values: these maps run inside training steps,
        # where a check of the values would stall a GPU (and break CUDA-graph capture).
        checks.tensor(x, "x", f"{type(self).__name__}.{method}", finite=False)
        if tuple(x.shape) == shape:
            return x.unsqueeze(0), False
        if x.dim() == len(shape) + 1 and tuple(x.shape[1:]) == shape:
            return x, True
        raise ValueError(f"{type(self).__name__}.{method} expects shape {shape} or (B, *{shape}), "
                         f"got {tuple(x.shape)}")

    def _apply(self, fn, x, shape, method):
        batch, batched = self._batched(x, shape, method)
        out = fn(batch)
        return out if batched else out.squeeze(0)

    def _on(self, key, tensor, like, dtype=None):
        """``tensor`` on ``like``'s device (in ``like``'s dtype unless ``dtype`` is given), cached so
        the copy happens once per device and dtype."""
        dtype = dtype or like.dtype
        cache_key = (key, like.device, dtype)
        if cache_key not in self._cache:
            self._cache[cache_key] = tensor.to(device=like.device, dtype=dtype)
        return self._cache[cache_key]

    # -- public interface ----------------------------------------------------------------------
    def forward(self, x):
        """A x for x of shape ``in_shape`` or (B, *in_shape)."""
        return self._apply(self._forward, x, self.in_shape, "forward")

    def adjoint(self, y):
        """Aᵀ y for y of shape ``out_shape`` or (B, *out_shape)."""
        return self._apply(self._adjoint, y, self.out_shape, "adjoint")

    def normal(self, x):
        """AᵀA x (the gradient of ½‖Ax‖² is AᵀA x)."""
        return self._apply(self._normal, x, self.in_shape, "normal")

    def solve_regularized(self, rhs, rho):
        """(AᵀA + ρI)⁻¹ rhs, the minimiser y of ½‖b − Ay‖² + ρ/2 ‖y − v‖² when rhs = Aᵀb + ρv."""
        rho = _check_rho(rho)
        return self._apply(lambda r: self._solve_regularized(r, rho), rhs, self.in_shape,
                           "solve_regularized")

    def __call__(self, x):
        return self.forward(x)

    # -- defaults for subclasses --------------------------------------------------------------
    def _normal(self, x):
        return self._adjoint(self._forward(x))

    def _forward(self, x):
        raise NotImplementedError

    def _adjoint(self, y):
        raise NotImplementedError

    def _solve_regularized(self, rhs, rho):
        raise NotImplementedError


class Identity(LinearOperator):
    """A = I: denoising, b = x + ε. ‖AᵀA‖ = 1 and (AᵀA + ρI)⁻¹ = I/(1 + ρ)."""

    def __init__(self, shape):
        shape = checks.shape(shape, "shape", "Identity")
        super().__init__(shape, shape)
        self.norm_sq = 1.0

    def _forward(self, x):
        return x.clone()

    def _adjoint(self, y):
        return y.clone()

    def _solve_regularized(self, rhs, rho):
        return rhs / (1.0 + rho)


class RandomMask(LinearOperator):
    """Inpainting by a truncated permutation (§3.3): b holds only the m kept entries, b ∈ Rᵐ.

    A is m rows of a permutation matrix, so A Aᵀ = I (m×m) and AᵀA = diag(mask) with mask ∈ {0, 1}:
    ``normal`` multiplies by the mask, ``adjoint`` puts b back in place with zeros elsewhere (the
    "zero-filled" image), ‖AᵀA‖ = 1 and (AᵀA + ρI)⁻¹ divides entrywise by mask + ρ.

    Which entries are kept: the thesis "randomly choose[s] half of the pixels" of a 128×128×3
    image, which it counts as 49152 pixels, so by default every entry (pixel *and* channel) is
    kept or dropped independently. ``same_across_channels=True`` instead drops whole pixel
    locations (all channels together), as a camera with dead pixels would.

    Args:
        shape: image shape (C, H, W).
        keep: fraction of entries kept, in (0, 1]; m = round(keep · n), at least 1. Thesis: 0.5.
        seed: seed of the random permutation (same seed, same mask, on any device).
        same_across_channels: drop pixel locations rather than single entries (see above).
    """

    def __init__(self, shape, keep=0.5, seed=0, same_across_channels=False):
        shape = _image_shape(shape, "RandomMask")
        keep = checks.number(keep, "keep", "RandomMask", minimum=0, maximum=1, strict_min=True,
                             hint="the fraction of entries kept; 0.5 keeps half (§3.3)")
        seed = checks.seed(seed, "RandomMask")
        same_across_channels = checks.flag(same_across_channels, "same_across_channels", "RandomMask")
        channels, height, width = shape
        sites = height * width if same_across_channels else channels * height * width
        m = max(1, round(keep * sites))
        generator = torch.Generator().manual_seed(int(seed))
        chosen, _ = torch.sort(torch.randperm(sites, generator=generator)[:m])
        if same_across_channels:
            chosen = (torch.arange(channels)[:, None] * sites + chosen[None, :]).reshape(-1)
        super().__init__(shape, (chosen.numel(),))
        self.keep, self.seed, self.same_across_channels = keep, seed, same_across_channels
        self.indices = chosen  # flat indices into the (C, H, W) image, increasing
        mask = torch.zeros(math.prod(shape))
        mask[chosen] = 1.0
        self.mask = mask.reshape(shape)  # 1 where a value is measured
        self.norm_sq = 1.0

    def _forward(self, x):
        return x.reshape(x.shape[0], -1)[:, self._on("indices", self.indices, x, torch.long)]

    def _adjoint(self, y):
        full = y.new_zeros((y.shape[0], math.prod(self.in_shape)))
        full[:, self._on("indices", self.indices, y, torch.long)] = y
        return full.reshape(y.shape[0], *self.in_shape)

    def _normal(self, x):
        return x * self._on("mask", self.mask, x)

    def _solve_regularized(self, rhs, rho):
        return rhs / (self._on("mask", self.mask, rhs) + rho)


class Downsample(LinearOperator):
    """Super-resolution: average each ``factor × factor`` block (a box filter, then subsampling).

    A x = average of each block; Aᵀ y spreads each value back over its block divided by f²
    (the exact adjoint, so AᵀA = P/f² with P the orthogonal projector onto block-constant images).
    Hence ‖AᵀA‖ = 1/f² and (AᵀA + ρI)⁻¹ = P/(1/f² + ρ) + (I − P)/ρ.

    Args:
        shape: image shape (C, H, W); H and W must be multiples of ``factor``.
        factor: integer ≥ 1, the side of the averaged blocks.
    """

    def __init__(self, shape, factor):
        shape = _image_shape(shape, "Downsample")
        factor = checks.integer(factor, "factor", "Downsample", minimum=1)
        channels, height, width = shape
        if height % factor or width % factor:
            raise ValueError(f"Downsample: height and width {height}×{width} must be multiples "
                             f"of factor {factor}; crop or resize the image (e.g. to "
                             f"{height - height % factor}×{width - width % factor})")
        super().__init__(shape, (channels, height // factor, width // factor))
        self.factor = factor
        self.norm_sq = 1.0 / factor**2

    def _forward(self, x):
        return F.avg_pool2d(x, self.factor)

    def _adjoint(self, y):
        f = self.factor
        return y.repeat_interleave(f, dim=-2).repeat_interleave(f, dim=-1) / f**2

    def _block_projector(self, x):
        """P x: replace every block by its mean."""
        f = self.factor
        return F.avg_pool2d(x, f).repeat_interleave(f, dim=-2).repeat_interleave(f, dim=-1)

    def _normal(self, x):
        return self._block_projector(x) / self.factor**2

    def _solve_regularized(self, rhs, rho):
        projected = self._block_projector(rhs)
        return projected / (self.norm_sq + rho) + (rhs - projected) / rho


class GaussianCS(LinearOperator):
    """Compressed sensing with a dense Gaussian matrix: A ∈ R^{m×n}, entries N(0, 1/m).

    The scaling 1/√m makes E‖Ax‖² = ‖x‖². ‖AᵀA‖ is computed to about 1e-12 relative (largest
    eigenvalue of the smaller Gram matrix, in double precision; ≈ (1 + √(n/m))² for large sizes).
    (AᵀA + ρI)⁻¹ uses the Woodbury identity when m ≤ n,
        (AᵀA + ρI)⁻¹ = (I − Aᵀ(ρI + AAᵀ)⁻¹A)/ρ,
    so only an m×m Cholesky factor is needed (cached per ρ); when m > n, it factors AᵀA + ρI.

    The matrix is stored, so its size is bounded by ``GAUSSIAN_CS_MAX_BYTES`` (256 MiB of float32);
    larger requests are refused with a size that fits.

    Args:
        shape: image shape, e.g. (C, H, W); n = its number of entries.
        m: number of measurements, 1 ≤ m.
        seed: seed of the matrix.
    """

    def __init__(self, shape, m, seed=0):
        shape = checks.shape(shape, "shape", "GaussianCS")
        m = checks.integer(m, "m", "GaussianCS", minimum=1, hint="the number of measurements")
        seed = checks.seed(seed, "GaussianCS")
        n = math.prod(shape)
        nbytes = 4 * m * n
        if nbytes > GAUSSIAN_CS_MAX_BYTES:
            raise ValueError(self._too_big_message(shape, m, n, nbytes))
        super().__init__(shape, (m,))
        self.m, self.n, self.seed = m, n, seed
        generator = torch.Generator().manual_seed(int(seed))
        self.matrix = torch.randn(m, n, generator=generator) / math.sqrt(m)
        self._norm_sq = None

    @staticmethod
    def _too_big_message(shape, m, n, nbytes):
        bound = GAUSSIAN_CS_MAX_BYTES
        largest_m = bound // (4 * n)
        message = (f"GaussianCS: the {m}×{n} float32 matrix would need {nbytes / 2**20:.0f} MiB, "
                   f"more than the bound of {bound / 2**20:.0f} MiB (GAUSSIAN_CS_MAX_BYTES). ")
        if largest_m >= 1:
            message += f"Use m ≤ {largest_m} for this shape"
        else:
            message += "No m fits this shape"
        if len(shape) == 3:
            channels = shape[0]
            ratio = m / n
            # 4 · ratio · n² ≤ bound with n = C · s²  ⇒  s ≤ (bound / (4 · ratio · C²))^(1/4)
            side = int((bound / (4 * ratio * channels**2)) ** 0.25)
            while side > 1 and 4 * max(1, round(ratio * channels * side**2)) * channels * side**2 > bound:
                side -= 1
            message += (f", or keep the sampling ratio m/n = {ratio:.2f} on an image of at most "
                        f"{channels}×{side}×{side}")
        return message + "."

    @property
    def norm_sq(self):
        """‖AᵀA‖₂, computed once in double precision: the largest eigenvalue of the smaller of
        AAᵀ and AᵀA, by Lanczos iteration (scipy's ``eigsh``) on matrix-vector products, which
        avoids forming the Gram matrix; a dense eigensolver for tiny sizes."""
        if self._norm_sq is None:
            a = self.matrix.double().numpy()
            if self.m <= self.n:
                side, gram_times = self.m, (lambda v: a @ (a.T @ v))
            else:
                side, gram_times = self.n, (lambda v: a.T @ (a @ v))
            if side < 64:
                gram = np.stack([gram_times(e) for e in np.eye(side)], axis=1)
                self._norm_sq = float(np.linalg.eigvalsh(gram)[-1])
            else:
                gram = ScipyLinearOperator((side, side), matvec=gram_times, dtype=np.float64)
                self._norm_sq = float(eigsh(gram, k=1, which="LA", tol=1e-12, v0=np.ones(side),
                                            return_eigenvectors=False)[0])
        return self._norm_sq

    def _forward(self, x):
        return x.reshape(x.shape[0], -1) @ self._on("matrix", self.matrix, x).T

    def _adjoint(self, y):
        return (y @ self._on("matrix", self.matrix, y)).reshape(y.shape[0], *self.in_shape)

    def _cholesky(self, rho, like):
        """Cholesky factor of ρI + AAᵀ (m ≤ n) or of AᵀA + ρI (m > n), cached per ρ, device, dtype."""
        key = ("cholesky", rho, like.device, like.dtype)
        if key not in self._cache:
            a = self._on("matrix", self.matrix, like).double()
            gram = a @ a.T if self.m <= self.n else a.T @ a
            gram.diagonal().add_(rho)
            self._cache[key] = torch.linalg.cholesky(gram).to(like.dtype)
        return self._cache[key]

    def _solve_regularized(self, rhs, rho):
        a = self._on("matrix", self.matrix, rhs)
        factor = self._cholesky(rho, rhs)
        flat = rhs.reshape(rhs.shape[0], -1)
        if self.m <= self.n:  # Woodbury: (I − Aᵀ(ρI + AAᵀ)⁻¹A) rhs / ρ
            inner = torch.cholesky_solve((flat @ a.T).T, factor).T
            solution = (flat - inner @ a) / rho
        else:
            solution = torch.cholesky_solve(flat.T, factor).T
        return solution.reshape(rhs.shape)


class Blur(LinearOperator):
    """Deblurring: a Gaussian blur with periodic boundaries, b = k ⊛ x (circular convolution per channel).

    A circular convolution is diagonal in the 2-D Fourier basis: A = Fᴴ diag(k̂) F with k̂ the DFT of the
    kernel. The kernel is a sampled Gaussian of standard deviation ``width`` pixels, wrapped around the
    image and normalised to sum 1, so it is symmetric, k̂ is real, Aᵀ = A, the blur keeps the mean
    (k̂(0) = 1) and the eigenvalues of AᵀA are k̂(ω)², from 1 down to about exp(−width² π²) at the
    highest frequency. ‖AᵀA‖ = max k̂² (= 1 when k̂ ≥ 0) and (AᵀA + ρI)⁻¹ = Fᴴ diag(1/(k̂² + ρ)) F.

    This is the test problem of Beck and Teboulle's FISTA paper (ref. [4] of the thesis): the eigenvalues
    of AᵀA fill (0, 1] densely, so there is no gap above 0 that would make ISTA converge linearly, and the
    O(1/k) and O(1/k²) rates of §2.1 show over hundreds of iterations. Periodic boundaries are what make
    the Fourier formulas exact; a camera's blur does not wrap around, which matters only at the border.

    Args:
        shape: image shape (C, H, W).
        width: standard deviation of the Gaussian kernel in pixels, > 0.
    """

    def __init__(self, shape, width=1.5):
        shape = _image_shape(shape, "Blur")
        width = checks.positive(width, "width", "Blur", hint="the blur's standard deviation in pixels, e.g. 1.5")
        super().__init__(shape, shape)
        self.width = width
        _, height, breadth = shape
        # circular distances 0, 1, ..., −1 along each axis, so the kernel is centred at index (0, 0)
        dy = torch.minimum(torch.arange(height), height - torch.arange(height)).double()
        dx = torch.minimum(torch.arange(breadth), breadth - torch.arange(breadth)).double()
        kernel = torch.exp(-(dy[:, None] ** 2 + dx[None, :] ** 2) / (2 * width ** 2))
        self.kernel = kernel / kernel.sum()                      # (H, W), sums to 1
        self.spectrum = torch.fft.fft2(self.kernel).real         # k̂, real because the kernel is symmetric
        self.gram = self.spectrum ** 2                           # the eigenvalues of AᵀA
        self.norm_sq = float(self.gram.max())

    def _filter(self, x, name, gain):
        """Fᴴ diag(gain) F x over the last two axes (gain cached on x's device and dtype)."""
        return torch.fft.ifft2(torch.fft.fft2(x) * self._on(name, gain, x)).real.to(x.dtype)

    def _forward(self, x):
        return self._filter(x, "spectrum", self.spectrum)

    def _adjoint(self, y):
        return self._filter(y, "spectrum", self.spectrum)     # Aᵀ = A: the kernel is symmetric

    def _normal(self, x):
        return self._filter(x, "gram", self.gram)

    def _solve_regularized(self, rhs, rho):
        return self._filter(rhs, ("inverse", rho), 1.0 / (self.gram + rho))


def data_term(A, b, x):
    """½‖b − Ax‖², the data-fidelity term of the MAP problem (3) and of DIP's losses (10), (25), (36)."""
    return 0.5 * torch.sum((b - A.forward(x)) ** 2)


def measure(A, x, sigma, seed=0):
    """Simulate a measurement b = A x + ε with ε ~ N(0, σ² I) (thesis eq. 1).

    Args:
        A: an operator of this module.
        x: clean image of shape ``A.in_shape`` (or a batch).
        sigma: noise standard deviation in image units [0, 1] (thesis σ = 10 on 0–255 → 10/255).
        seed: seed of the noise; the noise is drawn on the CPU, so it is the same on every device.
    """
    checks.operator(A, "measure")
    checks.tensor(x, "x", "measure", hint="the clean image, a float tensor in [0, 1]")
    sigma = checks.sigma(sigma, "measure")
    seed = checks.seed(seed, "measure")
    clean = A.forward(x)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(clean.shape, generator=generator, dtype=torch.float64)
    return clean + sigma * noise.to(device=clean.device, dtype=clean.dtype)

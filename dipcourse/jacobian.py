"""The Jacobian of the deep image prior and the spectrum of J Jᵀ (thesis §5, eq. 37–44).

For denoising (A = I) DIP minimises L(θ) = ½‖G(z; θ) − b‖² (37). Near the random initialisation θ₀
the network is almost linear, G(θ) ≈ G(θ₀) + J(θ − θ₀) (38), with J = ∂G/∂θ (n outputs × w weights).
Plain gradient descent with step η then moves the residual r_t = G(θ_t) − b as

    r̂_t = (I − η J Jᵀ)ᵗ r₀                                   (39)
        = U (I − ηΣ²)ᵗ Uᵀ r₀,   J Jᵀ = U Σ² Uᵀ             (40)
        = Σᵢ (1 − ησᵢ²)ᵗ ⟨uᵢ, r₀⟩ uᵢ                         (41)

so the direction uᵢ is fitted at the speed σᵢ². This module computes that spectrum:

* :func:`jjt_operator` — J Jᵀ as a matrix-free ``scipy.sparse.linalg.LinearOperator``;
* :func:`top_eigenpairs` — its leading eigenpairs, by ARPACK (as in the thesis, §5.3) or by block
  Lanczos, which pushes many vectors through the network at once;
* :func:`ntk_gram` — the whole n × n matrix J Jᵀ for small outputs;
* :func:`predict_residuals` and :func:`generalization_terms` — the linearised dynamics (39)–(43);
* :class:`Subspace` and :func:`fit_along_directions` — DIP trained only along the top-p
  eigen-directions, loss (44).

The Jacobian is taken **as DIP trains it**: BatchNorm in training mode, normalising with the statistics
of the current batch (the network's running statistics are never read or updated). In evaluation mode the
deep layers would see frozen statistics and their Jacobian would nearly vanish. Every function works on a
private copy of the network, so the caller's network (its weights, buffers and mode) is left untouched.

How J Jᵀ v is computed: ``torch.func.vjp`` gives Jᵀ v (one backward pass), then ``torch.func.jvp``
pushes that weight-space vector forward in forward mode, J (Jᵀ v) (one forward pass with dual numbers).
The thesis (footnote 7) obtained J x with a second backward pass instead (the "double-backward trick":
differentiate y ↦ Jᵀ y once more), which costs about two backward passes and keeps a larger graph.
``torch.func.vmap`` batches both products over many vectors, which is what makes the block method fast.

Vectors live in the flattened output space: n = C·H·W entries, in the order of ``G(z).reshape(-1)``.
Eigenvalues and eigenvectors are returned as NumPy float64 arrays.
"""
import copy
import math

import numpy as np
import scipy.linalg
import scipy.sparse.linalg
import torch
from torch.func import functional_call, jvp, replace_all_batch_norm_modules_, vjp, vmap

from dipcourse import checks
from dipcourse.operators import LinearOperator
from dipcourse.runs import Progress


DEFAULT_GRAM_BYTES = 2 * 2**30
"""Largest n × n float64 matrix :func:`ntk_gram` builds (2 GiB: n ≤ 16384, e.g. 64×64×3 = 12288)."""


# --------------------------------------------------------------------------------------------------
# The network as a function of its weights
# --------------------------------------------------------------------------------------------------

class _NetworkFunction:
    """θ ↦ G(z; θ) on a private copy of ``net``, with BatchNorm using batch statistics (as in training).

    Attributes:
        params: dict of detached weight tensors θ (the expansion point, usually θ₀).
        out_shape: shape of G(z) without the batch dimension, e.g. (3, 64, 64).
        n: number of outputs, prod(out_shape).
    """

    def __init__(self, net, z, dtype=None, where="jacobian"):
        self.where = where
        checks.network(net, where, required=True)
        checks.tensor(z, "z", where, ndim=(3, 4), hint="the network's input, e.g. from dipcourse.dip.make_input")
        if z.dim() == 3:
            z = z.unsqueeze(0)
        if z.shape[0] != 1:
            raise ValueError(f"{where}: z must have shape (C, H, W) or (1, C, H, W), got {tuple(z.shape)}")
        if dtype is not None and dtype not in (torch.float32, torch.float64):
            raise TypeError(f"{where}: dtype must be torch.float32 or torch.float64, got {dtype}")
        module = copy.deepcopy(net)
        module.train()
        # Drop running statistics: BatchNorm then always normalises with the batch's own mean/variance,
        # exactly what happens during DIP training, and nothing is written back (vmap-safe too).
        replace_all_batch_norm_modules_(module)
        if dtype is not None:
            module = module.to(dtype)
        param = next(module.parameters())
        self.module = module
        self.z = z.detach().to(device=param.device, dtype=param.dtype)
        self.params = {name: p.detach() for name, p in module.named_parameters()}
        self.buffers = {name: b.detach() for name, b in module.named_buffers()}
        try:
            with torch.no_grad():
                out = functional_call(self.module, (self.params, self.buffers), (self.z,))
        except (RuntimeError, ValueError) as err:
            raise ValueError(f"{where}: the network cannot take an input of shape {tuple(self.z.shape)} ({err}). "
                             "For dipcourse.dip.SkipNet use height and width divisible by 2**len(nd), "
                             "e.g. 32, 64 or 128 with the thesis's five levels.") from err
        # The backward graph of G at θ is built once and reused by every product Jᵀv.
        _, self.vjp_fn = vjp(self, self.params)
        self.out_shape = tuple(out.shape[1:])
        self.n = out.numel()
        self.dtype = param.dtype
        self.device = param.device

    def __call__(self, params):
        """G(z; θ), flattened to a vector of n outputs."""
        return functional_call(self.module, (params, self.buffers), (self.z,)).reshape(-1)

    def jjt(self, v):
        """J Jᵀ v for one vector v of n outputs: VJP (backward) then JVP (forward mode)."""
        (jt_v,) = self.vjp_fn(v)
        _, j_jt_v = jvp(self, (self.params,), (jt_v,))
        return j_jt_v

    def jjt_block(self, V, batch_size=64):
        """J Jᵀ V for the columns of V (n × l), pushing ``batch_size`` columns through at once (vmap)."""
        batched = vmap(self.jjt)
        cols = [batched(V[:, i:i + batch_size].T.contiguous()).T for i in range(0, V.shape[1], batch_size)]
        return torch.cat(cols, dim=1)


def _to_torch(x, f):
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f"{f.where}: the vector(s) multiplied by J Jᵀ contain NaN or infinite entries")
    return torch.as_tensor(np.ascontiguousarray(x)).to(device=f.device, dtype=f.dtype)


# --------------------------------------------------------------------------------------------------
# J Jᵀ: operator, exact matrix, eigenpairs
# --------------------------------------------------------------------------------------------------

def jjt_operator(net, z, dtype=None, batch_size=64):
    """J Jᵀ as a ``scipy.sparse.linalg.LinearOperator`` of size n × n (n = C·H·W of the output).

    J is the Jacobian of θ ↦ G(z; θ) at the network's current weights, with BatchNorm in training
    mode (batch statistics) as in DIP training. ``op @ v`` costs one VJP and one JVP; ``op @ V`` for
    a block V pushes ``batch_size`` columns through the network at once. The operator takes and
    returns float64 NumPy arrays; the network runs in its own dtype unless ``dtype`` is given
    (e.g. ``torch.float64`` for reference computations). ``net`` itself is not modified.
    """
    f = _NetworkFunction(net, z, dtype, "jjt_operator")

    def matvec(v):
        with torch.no_grad():
            return f.jjt(_to_torch(np.ravel(v), f)).double().cpu().numpy()

    def matmat(V):
        with torch.no_grad():
            return f.jjt_block(_to_torch(V, f), batch_size).double().cpu().numpy()

    op = scipy.sparse.linalg.LinearOperator((f.n, f.n), matvec=matvec, rmatvec=matvec, matmat=matmat,
                                            dtype=np.float64)
    op.out_shape = f.out_shape
    return op


def ntk_gram(net, z, max_bytes=DEFAULT_GRAM_BYTES, dtype=None, batch_size=64, progress=False):
    """The exact n × n matrix J Jᵀ (float64 NumPy), column block by column block: J Jᵀ [e_i … e_j].

    Each block is a batch of VJPs (rows of J, Jᵀe_i) pushed forward by JVPs. Refuses outputs whose matrix
    would need more than ``max_bytes`` (default 2 GiB, i.e. n ≤ 16384): use :func:`top_eigenpairs` for
    larger images. The count includes the working memory of one block (its unit vectors and products, in
    the network's dtype and in float64), which is all that is needed besides the matrix itself.
    ``progress=True`` shows a bar over the n columns (n = 3072 takes tens of seconds on a laptop CPU).
    """
    checks.integer(batch_size, "batch_size", "ntk_gram", minimum=1)
    checks.flag(progress, "progress", "ntk_gram")
    f = _NetworkFunction(net, z, dtype, "ntk_gram")
    block = min(batch_size, f.n)
    need = 8 * f.n ** 2 + f.n * block * (2 * f.dtype.itemsize + 8)
    if need > checks.positive(max_bytes, "max_bytes", "ntk_gram"):
        raise ValueError(f"ntk_gram: the {f.n} x {f.n} matrix J Jᵀ of an output of shape {f.out_shape} needs "
                         f"{need / 2**30:.2f} GiB with its working memory, above max_bytes={max_bytes / 2**30:.2f} "
                         "GiB. Use a smaller image, raise max_bytes, or compute only the leading eigenpairs with "
                         "top_eigenpairs().")
    gram = np.empty((f.n, f.n))
    bar = Progress(f.n, "J Jᵀ", enabled=progress, unit="columns")
    with torch.no_grad():
        for i in range(0, f.n, block):
            columns = min(block, f.n - i)
            unit = torch.zeros(f.n, columns, dtype=f.dtype, device=f.device)
            unit[torch.arange(i, i + columns), torch.arange(columns)] = 1.0
            gram[:, i:i + columns] = f.jjt_block(unit, block).double().cpu().numpy()
            bar.update(columns)
    bar.close()
    return gram


def top_eigenpairs(net, z, k, method="arpack", tol=1e-3, block_size=None, max_passes=None, seed=0,
                   dtype=None, batch_size=64, return_info=False):
    """The k largest eigenvalues of J Jᵀ (descending) and their orthonormal eigenvectors (columns).

    Args:
        net, z: the network and its fixed input; J is taken at the network's current weights.
        k: how many eigenpairs, 1 ≤ k < n.
        method: ``"arpack"`` — ``scipy.sparse.linalg.eigsh`` (implicitly restarted Lanczos, as the
            thesis used, §5.3), one product J Jᵀv at a time; ``"block"`` — block Lanczos (a block
            Krylov subspace with Rayleigh–Ritz): each pass pushes a block of ``block_size`` vectors
            through the network together and stops as soon as every pair meets
            ‖J Jᵀ u − λu‖ ≤ tol · λ_max.
        tol: the residual bar of the block method relative to λ_max (default 1e-3). ARPACK is run
            to its own, much tighter, default accuracy.
        block_size: vectors per pass of the block method (default min(max(k, 8), batch_size)).
        max_passes: the block method gives up (ValueError) after this many passes (default: as
            many as fill a subspace of min(n, 8·(k + block_size)) vectors).
        seed: seed of the random start (both methods).
        return_info: also return a dict (``"passes"``, ``"matvecs"``, ``"residuals"``).

    Returns:
        ``(eigenvalues, eigenvectors)``: NumPy float64 arrays of shapes (k,) and (n, k); column i
        reshaped to the output shape (C, H, W) is the i-th eigen-image.
    """
    where = "top_eigenpairs"
    checks.choice(method, "method", where, ("arpack", "block"))
    k = checks.integer(k, "k", where, minimum=1, hint="how many eigenpairs")
    tol = checks.positive(tol, "tol", where, hint="the residual bar relative to λ_max, e.g. 1e-3")
    seed = checks.seed(seed, where)
    batch_size = checks.integer(batch_size, "batch_size", where, minimum=1)
    f = _NetworkFunction(net, z, dtype, where)
    if not 1 <= k < f.n:
        raise ValueError(f"{where}: k={k} must satisfy 1 ≤ k < n = {f.n} (the number of outputs {f.out_shape}); "
                         "for the full spectrum use numpy.linalg.eigh(ntk_gram(net, z)).")
    if method == "arpack":
        values, vectors, info = _arpack(f, k, seed)
    else:
        block = min(max(k, 8), batch_size) if block_size is None else \
            checks.integer(block_size, "block_size", where, minimum=1)
        passes = -(-min(f.n, 8 * (k + block)) // block) if max_passes is None else \
            checks.integer(max_passes, "max_passes", where, minimum=1)
        values, vectors, info = _block_lanczos(f, k, tol, block, passes, seed, batch_size)
    return (values, vectors, info) if return_info else (values, vectors)


def _arpack(f, k, seed):
    count = [0]

    def matvec(v):
        count[0] += 1
        with torch.no_grad():
            return f.jjt(_to_torch(np.ravel(v), f)).double().cpu().numpy()

    op = scipy.sparse.linalg.LinearOperator((f.n, f.n), matvec=matvec, dtype=np.float64)
    start = np.random.default_rng(seed).standard_normal(f.n)
    values, vectors = scipy.sparse.linalg.eigsh(op, k=k, which="LA", v0=start)
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    return values, vectors, {"passes": None, "matvecs": count[0]}


def _orthonormal_block(W, K, generator):
    """Orthonormalise the columns of W against the basis K and among themselves (Gram–Schmidt twice).

    A column that falls into span(K) — the Krylov space has found an invariant subspace, e.g. when
    J Jᵀ has low rank — is replaced by a fresh random direction, so the basis keeps growing.
    """
    scale = W.norm(dim=0).max().clamp_min(1e-300)
    for _ in range(2):
        W = W - K @ (K.T @ W)
    Q, R = torch.linalg.qr(W)
    lost = R.diagonal().abs() <= 1e-8 * scale     # what is left is rounding error, not a direction
    if lost.any():
        fresh = torch.randn(W.shape[0], int(lost.sum()), generator=generator, dtype=W.dtype).to(W.device)
        basis = torch.cat([K, Q[:, ~lost]], dim=1)
        for _ in range(2):
            fresh = fresh - basis @ (basis.T @ fresh)
        Q[:, lost] = torch.linalg.qr(fresh)[0]
    return Q


def _grown(buffer, used):
    """A copy of ``buffer`` (n × capacity) with twice the capacity (at most n), its first ``used`` columns kept."""
    n = buffer.shape[0]
    larger = torch.empty(n, min(n, 2 * buffer.shape[1]), dtype=buffer.dtype, device=buffer.device)
    larger[:, :used] = buffer[:, :used]
    return larger


def _block_lanczos(f, k, tol, block, max_passes, seed, batch_size):
    """Block Lanczos: Rayleigh–Ritz on the block Krylov space span{Q₀, M Q₀, M² Q₀, …}, M = J Jᵀ.

    Pass j pushes one block Q_j through the network (M Q_j, ``block`` vectors at once) and grows the
    orthonormal basis K = [Q₀ … Q_j] by the part of M Q_j outside it. Every product M K is kept, so
    the projected matrix H = Kᵀ M K and the residuals of its Ritz pairs (θ, K y),

        ‖M K y − θ K y‖² = yᵀ (M K)ᵀ (M K) y − θ²,

    cost no further products. Unlike subspace iteration, which keeps only the last block, the whole
    Krylov space is used, so the Ritz pairs converge as Lanczos's do, in far fewer products. The
    linear algebra runs in float64 on the network's device (a GPU at the thesis's scale); the
    Rayleigh–Ritz step is repeated each time the basis has grown by a quarter, so that for large k
    its cost (an eigh of the basis size) stays a small part of the whole.
    """
    n, device = f.n, f.device
    generator = torch.Generator().manual_seed(int(seed))
    # K and M K live in buffers whose capacity doubles when full: appending a block then costs
    # O(n · block) on average instead of a copy of the whole basis per pass.
    K = torch.empty(n, min(n, k + 4 * block), dtype=torch.float64, device=device)
    MK = torch.empty_like(K)
    d = 0
    Q = _orthonormal_block(torch.randn(n, min(block, n), generator=generator, dtype=torch.float64).to(device),
                           K[:, :0], generator)
    worst, checked_at = math.inf, 0
    with torch.no_grad():
        for passes in range(1, max_passes + 1):
            MQ = f.jjt_block(Q.to(f.dtype), batch_size).to(torch.float64)
            if d + Q.shape[1] > K.shape[1]:
                K, MK = _grown(K, d), _grown(MK, d)
            K[:, d:d + Q.shape[1]], MK[:, d:d + Q.shape[1]] = Q, MQ
            d += Q.shape[1]
            if d > k and (d >= 1.25 * checked_at or d >= n or passes == max_passes):
                checked_at = d
                H = K[:, :d].T @ MK[:, :d]
                values, Y = torch.linalg.eigh((H + H.T) / 2)
                values, Y = values.flip(0)[:k], Y.flip(1)[:, :k]
                MKY = MK[:, :d] @ Y
                residuals = ((MKY ** 2).sum(dim=0) - values ** 2).clamp_min(0).sqrt()
                worst = float(residuals.max() / values[0])
                if worst <= tol:
                    vectors = K[:, :d] @ Y
                    residuals = (MKY - vectors * values).norm(dim=0)   # directly, without cancellation
                    worst = float(residuals.max() / values[0])
                    if worst <= tol:
                        info = {"passes": passes, "matvecs": d, "residuals": residuals.cpu().numpy()}
                        return values.cpu().numpy(), vectors.cpu().numpy(), info
            if d >= n:
                break
            Q = _orthonormal_block(MQ[:, :min(block, n - d)], K[:, :d], generator)
    raise ValueError(f"top_eigenpairs: the block method's top {k} eigenpairs did not reach ‖J Jᵀu − λu‖ ≤ "
                     f"{tol}·λ_max in {max_passes} passes of {block} vectors (worst {worst:.1e}·λ_max); raise "
                     "max_passes or block_size, or use method='arpack'.")


def eigenpair_residuals(net, z, values, vectors, dtype=None, batch_size=64):
    """‖J Jᵀ uᵢ − λᵢ uᵢ‖ for each column uᵢ of ``vectors``: how exact the eigenpairs are."""
    f = _NetworkFunction(net, z, dtype, "eigenpair_residuals")
    values, vectors = _check_basis(values, vectors, n=f.n, where=f.where, names=("values", "vectors"))
    with torch.no_grad():
        AV = f.jjt_block(_to_torch(vectors, f), batch_size).double().cpu().numpy()
    return np.linalg.norm(AV - vectors * np.asarray(values), axis=0)


def low_frequency_share(vectors, shape, cutoff=0.25):
    """Share of each eigen-image's energy at low spatial frequencies (how smooth it is, cf. Fig 10).

    Column i of ``vectors`` (n × k) is reshaped to ``shape`` = (C, H, W); the share is the part of
    its 2-D Fourier energy (all channels) at radial frequencies ≤ ``cutoff`` × Nyquist. A constant
    image has share 1; white noise has about π·cutoff²/4 (≈ 0.05 for the default). Returns (k,).
    """
    where = "low_frequency_share"
    shape = checks.shape(shape, "shape", where)
    cutoff = checks.nonnegative(cutoff, "cutoff", where, hint="a fraction of the Nyquist frequency, e.g. 0.25")
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or vectors.shape[0] != math.prod(shape) or len(shape) != 3:
        raise ValueError(f"{where}: vectors must have shape (n, k) with n = C·H·W of an image shape (C, H, W); "
                         f"got vectors of shape {vectors.shape} and shape={shape}.")
    if not np.isfinite(vectors).all():
        raise ValueError(f"{where}: vectors has NaN or infinite entries; eigenvectors are finite.")
    images = vectors.T.reshape(-1, *shape)
    power = np.abs(np.fft.fft2(images)) ** 2
    total = power.sum(axis=(1, 2, 3))
    if not total.all():   # 0/0: a zero column has no energy to share out
        raise ValueError(f"{where}: vectors has zero columns {np.flatnonzero(total == 0).tolist()}; pass "
                         "eigenvectors (each of norm 1).")
    fy, fx = np.fft.fftfreq(shape[1]), np.fft.fftfreq(shape[2])
    radius = np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2) / 0.5
    low = (power * (radius <= cutoff)).sum(axis=(1, 2, 3))
    return low / total


# --------------------------------------------------------------------------------------------------
# Linearised dynamics (39)–(43)
# --------------------------------------------------------------------------------------------------

def _check_basis(values, U, n=None, p=None, where="jacobian", names=("values", "U")):
    """Eigenvalues (k,) and orthonormal eigenvectors (n, k) as float64 arrays, checked; ``p`` within 1..k.
    ``names``: the arguments that hold them, for the messages."""
    values, U = np.asarray(values, dtype=np.float64), np.asarray(U, dtype=np.float64)
    if U.ndim != 2 or values.shape != (U.shape[1],):
        raise ValueError(f"{where}: need eigenvalues of shape (k,) and eigenvectors of shape (n, k); got "
                         f"{values.shape} and {U.shape}")
    for name, array in zip(names, (values, U)):
        if not np.isfinite(array).all():
            raise ValueError(f"{where}: {name} has {int((~np.isfinite(array)).sum())} NaN or infinite entries; "
                             "eigenpairs are finite.")
    if n is not None and U.shape[0] != n:
        raise ValueError(f"{where}: eigenvectors have {U.shape[0]} entries but the image has {n}")
    if p is not None:
        checks.integer(p, "p", where, minimum=1, maximum=U.shape[1],
                       hint=f"the number of directions, at most the {U.shape[1]} eigenvectors computed")
    _check_orthonormal(U, where)
    return values, U


def _check_orthonormal(U, where):
    """U must have orthonormal columns: checked on two random vectors, ‖U y‖ = ‖y‖ (O(n·k), not O(n·k²))."""
    if U.shape[1] == 0:
        return
    probes = np.random.default_rng(0).standard_normal((U.shape[1], 2))
    ratio = np.linalg.norm(U @ probes, axis=0) / np.linalg.norm(probes, axis=0)
    if np.abs(ratio - 1).max() > 1e-3:
        raise ValueError(f"{where}: the columns of U must be orthonormal (UᵀU = I), as the eigenvectors from "
                         f"top_eigenpairs or numpy.linalg.eigh are; ‖Uy‖/‖y‖ was {ratio.round(4).tolist()}")


def _vector(x, name, where, n=None):
    """``x`` (a tensor or an array, e.g. an image) flattened to float64 entries — ``n`` of them when given —
    all finite."""
    try:
        x = torch.as_tensor(x).detach().double().reshape(-1).cpu().numpy()
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{where}: {name} must be a tensor or an array of numbers, got {type(x).__name__}.") from None
    if n is not None and x.size != n:
        raise ValueError(f"{where}: {name} has {x.size} entries, expected {n} (one per entry of the image).")
    if not np.isfinite(x).all():
        raise ValueError(f"{where}: {name} has {int((~np.isfinite(x)).sum())} NaN or infinite value(s); every "
                         "entry must be a finite number.")
    return x


def predict_residuals(r0, values, U, lr, steps):
    """‖r̂_t‖ for t = 0 … steps under plain gradient descent with step ``lr`` on the linearised loss.

    r̂_t = U (I − ηΣ²)ᵗ Uᵀ r₀ (40), with Σ² = ``values`` and U = ``U`` (n × k). When U holds only the
    top k eigenvectors, the rest of r₀, (I − UUᵀ) r₀, lies along directions with eigenvalues ≤ λ_k and
    is counted as not yet fitted (exact when k = n). Returns a NumPy array of ``steps + 1`` norms.
    """
    where = "predict_residuals"
    r0 = _vector(r0, "r0", where)
    values, U = _check_basis(values, U, n=r0.size, where=where)
    lr = checks.lr(lr, where)
    steps = checks.integer(steps, "steps", where, minimum=0)
    if lr * values.max() >= 2:
        raise ValueError(f"{where}: gradient descent on (38) converges only for 0 < lr < 2/λ_max = "
                         f"{2 / values.max():.3g}; got lr={lr}")
    coeff = U.T @ r0
    rest_sq = max(float(r0 @ r0 - coeff @ coeff), 0.0)
    factors = (1.0 - lr * values)[None, :] ** np.arange(steps + 1)[:, None]
    return np.sqrt(((factors * coeff) ** 2).sum(axis=1) + rest_sq)


def generalization_terms(values, U, x_true, noise, g0, lr, steps, p):
    """The three terms of the bound (43) on ‖G(θ_t) − x♮‖ for t = 0 … steps, as a dict of arrays.

    ``"init"`` = (1 − ησ²_min)ᵗ ‖G(θ₀)‖, ``"image"`` = (1 − ησ_p²)ᵗ ‖x♮‖ (the image assumed to lie in
    the span of the top p eigenvectors), ``"noise"`` = √Σᵢ [1 − (1 − ησᵢ²)ᵗ]² ⟨uᵢ, ε⟩², plus ``"bound"``,
    their sum. σ²_min is the smallest eigenvalue given; pass the full spectrum for the exact bound.
    """
    where = "generalization_terms"
    x_true = _vector(x_true, "x_true", where)
    noise, g0 = (_vector(v, name, where, n=x_true.size) for name, v in (("noise", noise), ("g0", g0)))
    values, U = _check_basis(values, U, n=x_true.size, p=p, where=where)
    if np.any(np.diff(values) > 0):   # σ_p² is values[p − 1]: ascending values would give another term
        raise ValueError(f"{where}: values must be in descending order, as top_eigenpairs returns them "
                         "(reverse those of numpy.linalg.eigh, and U's columns with them, by [::-1]).")
    lr = checks.lr(lr, where)
    t = np.arange(checks.integer(steps, "steps", where, minimum=0) + 1)
    terms = {
        "init": (1.0 - lr * values.min()) ** t * np.linalg.norm(g0),
        "image": (1.0 - lr * values[p - 1]) ** t * np.linalg.norm(x_true),
        "noise": np.sqrt((((1.0 - (1.0 - lr * values[None, :]) ** t[:, None]) * (U.T @ noise)) ** 2).sum(axis=1)),
    }
    terms["bound"] = terms["init"] + terms["image"] + terms["noise"]
    return terms


def subspace_limit(b, g0, U, p):
    """Where the linearised fit along the top-p directions (44) converges: U_pU_pᵀ b + (I − U_pU_pᵀ) G(θ₀).

    Under (38), gradient steps on (44) move the output only inside the span of U_p (J Jᵀ U_p = U_p Σ_p²),
    so it converges to the measurement there and keeps the untrained output ``g0`` = G(θ₀) elsewhere.
    ``b`` and ``g0`` are (C, H, W) tensors; returns a float32 (C, H, W) tensor.
    """
    where = "subspace_limit"
    b_flat = _vector(b, "b", where)
    g0_flat = _vector(g0, "g0", where, n=b_flat.size)
    U = np.asarray(U, dtype=np.float64)
    _check_basis(np.zeros(U.shape[1] if U.ndim == 2 else 0), U, n=b_flat.size, p=p, where=where)
    Up = U[:, :p]
    limit = g0_flat + Up @ (Up.T @ (b_flat - g0_flat))
    return torch.from_numpy(limit).float().reshape(torch.as_tensor(b).shape)


def gradient_descent_residuals(net, z, b, lr, steps, dtype=None, progress=False):
    """‖G(θ_t) − b‖ for t = 0 … steps under plain gradient descent θ ← θ − η ∇L(θ) on loss (37).

    The real dynamics that (39)–(41) linearise: same network, BatchNorm with batch statistics, fixed
    step ``lr``. Works on a copy; ``net`` is not modified. Returns a NumPy array of ``steps + 1`` norms.
    ``progress`` shows a bar over the steps.
    """
    f = _NetworkFunction(net, z, dtype, "gradient_descent_residuals")
    checks.tensor(b, "b", "gradient_descent_residuals", shape=f.out_shape,
                  hint="the noisy image, of the network's output shape")
    lr = checks.lr(lr, "gradient_descent_residuals")
    steps = checks.integer(steps, "steps", "gradient_descent_residuals", minimum=0)
    b = b.detach().to(device=f.device, dtype=f.dtype).reshape(-1)
    params = {name: p.clone() for name, p in f.params.items()}
    norms = []
    bar = Progress(steps, "gradient descent", checks.flag(progress, "progress", "gradient_descent_residuals"),
                   unit="steps")
    try:
        for step in range(steps + 1):
            residual, vjp_fn = vjp(f, params)
            residual = residual - b
            norms.append(float(residual.norm()))
            if step == steps:       # the last residual needs no step after it
                break
            (grad,) = vjp_fn(residual)  # ∇L(θ) = Jᵀ (G(θ) − b)
            params = {name: p - lr * grad[name] for name, p in params.items()}
            bar.update()
    finally:
        bar.close()
    return np.asarray(norms)


# --------------------------------------------------------------------------------------------------
# Fitting along the top-p directions (44)
# --------------------------------------------------------------------------------------------------

class Subspace(LinearOperator):
    """A = Uᵀ for U with orthonormal columns (n × p): measures an image along p eigen-directions.

    With this operator, ½‖A G(θ) − A b‖² is the loss (44), ½‖Uᵀ(G(θ) − b)‖². ``forward`` flattens
    an image of shape ``shape`` = (C, H, W) and returns its p coefficients Uᵀx; ``adjoint`` maps
    p coefficients back to the image U y; ``normal`` is the projection U Uᵀ. ‖AᵀA‖ = 1 and, since
    U Uᵀ is a projection, (U Uᵀ + ρI)⁻¹ = I/ρ − U Uᵀ (1/ρ − 1/(1+ρ)).
    """

    def __init__(self, U, shape):
        shape = checks.shape(shape, "shape", "Subspace")
        if np.ndim(U) != 2 or np.shape(U)[0] != math.prod(shape):
            raise ValueError(f"Subspace: U must have shape (n, p) with n = prod(shape) = {math.prod(shape)}; got "
                             f"{np.shape(U)}.")
        _check_basis(np.zeros(np.shape(U)[1]), U, where="Subspace")   # finite, orthonormal: ‖AᵀA‖ = 1 needs it
        U = torch.as_tensor(np.asarray(U), dtype=torch.float32)
        super().__init__(shape, (U.shape[1],))
        self.U = U
        self.norm_sq = 1.0

    def _forward(self, x):
        return x.reshape(x.shape[0], -1) @ self._on("U", self.U, x)

    def _adjoint(self, y):
        return (y @ self._on("U", self.U, y).T).reshape(y.shape[0], *self.in_shape)

    def _solve_regularized(self, rhs, rho):
        return rhs / rho - self._normal(rhs) * (1.0 / rho - 1.0 / (1.0 + rho))


def fit_along_directions(b, U, iters, net=None, z=None, lr=1e-3, ref=None, seed=0, p=None, **fit_kwargs):
    """DIP trained only along the top-p eigen-directions: loss (44), ½‖Uᵀ(G(θ) − b)‖², Adam as in DIP.

    ``U`` holds the eigenvectors of J Jᵀ as columns (n × k, from :func:`top_eigenpairs` or
    ``eigh(ntk_gram(...))`` reordered descending); ``p`` (default: all k columns) selects the first p.
    The training loop is :func:`dipcourse.dip.fit_dip` with the operator A = Uᵀ (:class:`Subspace`)
    and the measurement Uᵀb, so every other argument means what it means there (thesis defaults:
    Adam, lr 1e-3). For U computed from ``net`` and ``z``, pass that same network and input: the
    directions belong to that initialisation. Returns a :class:`dipcourse.Result` whose PSNR is
    measured against ``ref`` on the whole image.
    """
    from dipcourse.dip import fit_dip

    where = "fit_along_directions"
    checks.image(b, "b", where)
    U = np.asarray(U)
    k = U.shape[1] if U.ndim == 2 else 0
    p = k if p is None else p
    if U.ndim != 2 or U.shape[0] != b.numel():
        raise ValueError(f"{where}: U must have shape (n, k) with n = b.numel() = {b.numel()}; got {U.shape}")
    _check_basis(np.zeros(k), U, p=p, where=where)
    A = Subspace(U[:, :p], b.shape)
    result = fit_dip(A, A.forward(b), iters, net=net, z=z, lr=lr, ref=ref, seed=seed, **fit_kwargs)
    result.params.update({"algorithm": "fit_along_directions", "p": int(p)})
    return result

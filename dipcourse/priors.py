"""Priors R(x) of the MAP problem (thesis eq. 3) and their proximal operators.

A proximal operator solves  prox_{λR}(v) = argmin_x ½‖x − v‖² + λ R(x)  (§2.1). ISTA (eq. 4) and the
ADMM x-steps (eqs. 20, Algorithms 1–3) only ever touch the prior through it, which is why a denoiser
can stand in for it (plug-and-play, §2.4.1 and §3.2.4).

* Explicit priors: anisotropic TV (:func:`tv_norm`, :func:`prox_tv`; thesis footnote 1), the L1 norm
  (:func:`prox_l1`) and the L1 norm of orthonormal DCT coefficients (:func:`prox_dct_l1`).
* Denoisers used as priors (§3.3): non-local means (:func:`nlm_denoise`) and BM3D (:func:`bm3d_denoise`).
* :func:`make_prox` wraps any of them as ``prox(v, rho)`` = prox_{R/ρ}(v), the form every solver in
  the course takes, and exposes R itself as ``prox.value(x)`` where R is known.

Images are torch tensors of shape (C, H, W) (or (B, C, H, W) with a batch dimension) in [0, 1].
"""
import functools
import math
import warnings

import numpy as np
import torch

from dipcourse import checks

PRIOR_NAMES = ("tv", "nlm", "bm3d", "l1", "dct_l1")

PROXTV_INSTALL = ("prox-tv is not installed. It builds from source and needs the LAPACKE headers: "
                  "sudo apt install liblapacke-dev, then .venv/bin/pip install prox-tv "
                  "(or pip install -e '.[tv]'). Or use backend='torch', the built-in implementation.")
BM3D_INSTALL = "bm3d is not installed: .venv/bin/pip install bm3d (or pip install -e '.[bm3d]')."

_fallback_warned = False


def _image(x, func, finite=True):
    """``x`` must be a float tensor of shape (C, H, W) or (B, C, H, W) — with finite values, unless the
    function is a term of a training loss (there a NaN is the run's to report: it stops as diverged)."""
    if not finite:
        return checks.tensor(x, "x", func, ndim=(3, 4), finite=False)
    return checks.image(x, "x", func, batch=True)


# ----------------------------------------------------------------------------------------------
# anisotropic total variation


def image_gradient(x):
    """Forward differences along the last two axes: (x[i+1, j] − x[i, j], x[i, j+1] − x[i, j]).

    Returns the vertical differences, shape (..., H−1, W), and the horizontal ones, shape (..., H, W−1).
    Together they are the operator D with ‖x‖_TV = ‖Dx‖₁ (no wrap-around at the border).
    """
    return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]


def image_gradient_adjoint(pv, ph):
    """Dᵀ(pv, ph), the adjoint of :func:`image_gradient` (minus the discrete divergence)."""
    shape = pv.shape[:-2] + (pv.shape[-2] + 1, pv.shape[-1])
    out = torch.zeros(shape, dtype=pv.dtype, device=pv.device)
    out[..., :-1, :] -= pv
    out[..., 1:, :] += pv
    out[..., :, :-1] -= ph
    out[..., :, 1:] += ph
    return out


def tv_norm(x):
    """Anisotropic TV (thesis footnote 1), summed over channels:

        ‖x‖_TV = Σ_{c,i,j} |x[c,i,j] − x[c,i+1,j]| + |x[c,i,j] − x[c,i,j+1]|.

    For (C, H, W) it returns a 0-d tensor, for (B, C, H, W) one value per
    image, shape (B,). Differentiable with autograd (the explicit-TV loss (36) uses it).
    """
    _image(x, "tv_norm", finite=False)
    dv, dh = image_gradient(x)
    return dv.abs().sum(dim=(-3, -2, -1)) + dh.abs().sum(dim=(-3, -2, -1))


def tv_objective(y, x, lam):
    """½‖y − x‖² + lam ‖y‖_TV, the function :func:`prox_tv` minimises (per image for a batch)."""
    return 0.5 * ((y - x) ** 2).sum(dim=(-3, -2, -1)) + lam * tv_norm(y)


def _default_tol(dtype):
    # Relative duality gap: float64 can be driven far below what float32 can represent. In float32
    # the rounding of y alone moves the objective by about 1e-6 relative, so ask for a bit more.
    return 1e-9 if dtype == torch.float64 else 1e-5


def _duality_gap(z, pv, ph, lam):
    """Primal value P(y) and gap P(y) − D(p) per slice, in float64, for y = z − Dᵀp.

    Dual of the TV prox: max_{|p| ≤ lam} D(p) = ½‖z‖² − ½‖z − Dᵀp‖². Weak duality gives
    P(y) − P* ≤ gap, and strong convexity ‖y − y*‖² ≤ 2 gap, so the gap certifies the accuracy.
    """
    z, pv, ph = z.double(), pv.double(), ph.double()
    y = z - image_gradient_adjoint(pv, ph)
    dv, dh = image_gradient(y)
    tv = dv.abs().sum(dim=(-2, -1)) + dh.abs().sum(dim=(-2, -1))
    primal = 0.5 * ((y - z) ** 2).sum(dim=(-2, -1)) + lam * tv
    dual = 0.5 * (z ** 2).sum(dim=(-2, -1)) - 0.5 * (y ** 2).sum(dim=(-2, -1))
    return primal, primal - dual


def _prox_tv_torch(x, lam, tol, max_iter, check_every=10):
    """Anisotropic TV prox by FISTA on the dual with adaptive restart (all slices at once).

    Algorithm (Beck & Teboulle 2009, "Fast gradient-based algorithms for constrained total variation
    image denoising and deblurring", FGP, in its anisotropic form): the dual problem is
        min_{|p| ≤ lam}  ½‖x − Dᵀp‖²,     and then  y = x − Dᵀp,
    a smooth problem over a box whose gradient −D(x − Dᵀp) is Lipschitz with constant ‖D‖² ≤ 8.
    Each step is a projected gradient step p ← clip(q + D(x − Dᵀq)/8, −lam, lam) at the extrapolated
    point q (FISTA momentum). The momentum restarts for a slice whenever the step points against it
    (gradient restart of O'Donoghue & Candès 2015), which turns the O(1/k²) rate into a fast linear one
    in practice. Every ``check_every`` steps the duality gap is computed; the loop stops when every
    (image, channel) slice has gap ≤ tol·P(y) (relative objective accuracy), or after ``max_iter`` steps.

    Typical step counts with the default tolerances (astronaut, 64 or 128 px): at lam = 0.01, 40–60
    steps on a noisy image (σ = 10/255) and 80–150 on a clean one in float32; 200–300 at lam = 0.1;
    500–650 at lam = 0.5; float64 (tol 1e-9) takes 2–3× more. One step costs about 0.1 ms (64×64×3)
    or 0.4 ms (128×128×3) on one CPU core.
    """
    shape = x.shape
    z = x.reshape(-1, shape[-2], shape[-1])
    pv = torch.zeros_like(z[:, 1:, :])
    ph = torch.zeros_like(z[:, :, 1:])
    qv, qh = pv, ph
    t = torch.ones(z.shape[0], 1, 1, dtype=z.dtype, device=z.device)
    for k in range(1, max_iter + 1):
        gv, gh = image_gradient(z - image_gradient_adjoint(qv, qh))
        pv_next = (qv + gv / 8).clamp_(-lam, lam)
        ph_next = (qh + gh / 8).clamp_(-lam, lam)
        step_v, step_h = pv_next - pv, ph_next - ph
        # gradient restart: the step p_next − p goes against the gradient mapping q − p_next
        against = ((qv - pv_next) * step_v).sum(dim=(-2, -1)) + ((qh - ph_next) * step_h).sum(dim=(-2, -1))
        restart = (against > 0)[:, None, None]
        t_next = torch.where(restart, torch.ones_like(t), (1 + torch.sqrt(1 + 4 * t * t)) / 2)
        beta = torch.where(restart, torch.zeros_like(t), (t - 1) / t_next)
        qv = pv_next + beta * step_v
        qh = ph_next + beta * step_h
        pv, ph, t = pv_next, ph_next, t_next
        if k % check_every == 0 or k == max_iter:
            primal, gap = _duality_gap(z, pv, ph, lam)
            if bool((gap <= tol * primal + 1e-12 * z[0].numel()).all()):
                break
    return (z - image_gradient_adjoint(pv, ph)).reshape(shape)


def _prox_tv_proxtv(x, lam):
    """prox-tv's ``tv1_2d`` (Douglas–Rachford over rows and columns, exact 1-D TV solvers), per channel.

    prox-tv sets OpenMP's thread count to its ``n_threads`` on every call, and torch runs on the same
    OpenMP runtime: with prox-tv's default of 1 thread, every network step after the first TV prox
    ran on one thread, so a DIP run's speed and trajectory depended on whether a prox had run before
    it. Passing torch's own thread count leaves torch as it was; prox-tv then solves the independent
    1-D row (and column) problems on those threads — the same result bit for bit, 1.7× faster at
    128×128×3 on 2 cores.
    """
    import prox_tv

    planes = x.detach().cpu().double().reshape(-1, x.shape[-2], x.shape[-1]).numpy()
    threads = torch.get_num_threads()
    out = np.stack([prox_tv.tv1_2d(np.ascontiguousarray(p), lam, n_threads=threads) for p in planes])
    return torch.from_numpy(out).reshape(x.shape).to(device=x.device, dtype=x.dtype)


def proxtv_available():
    """Whether the prox-tv C library imports."""
    try:
        import prox_tv  # noqa: F401
    except ImportError:
        return False
    return True


def _resolve_tv_backend(backend):
    global _fallback_warned
    if backend not in ("auto", "proxtv", "torch"):
        raise ValueError(f"prox_tv: backend must be 'auto', 'proxtv' or 'torch', got {backend!r}")
    if backend == "proxtv" and not proxtv_available():
        raise ImportError(PROXTV_INSTALL)
    if backend == "auto":
        if proxtv_available():
            return "proxtv"
        if not _fallback_warned:
            _fallback_warned = True
            warnings.warn("prox_tv: prox-tv is not installed, so TV uses the built-in torch backend "
                          "(same result, slower on CPU). To get prox-tv: sudo apt install liblapacke-dev, "
                          "then pip install prox-tv.", RuntimeWarning, stacklevel=3)
        return "torch"
    return backend


def _check_torch_settings(tol, max_iter, func):
    if tol is not None:
        checks.positive(tol, "tol", func)
    checks.integer(max_iter, "max_iter", func, minimum=1)


def prox_tv(x, lam, backend="auto", tol=None, max_iter=5000):
    """Proximal operator of anisotropic TV: argmin_y ½‖y − x‖² + lam ‖y‖_TV, per channel (§2.4).

    Args:
        x: (C, H, W) or (B, C, H, W) tensor; every (image, channel) plane is solved independently.
        lam: the TV weight λ ≥ 0 (the thesis's "shrinkage parameter", 0.01 in §3.3).
        backend: ``"proxtv"`` -- the C library prox-tv (``tv1_2d``, Douglas–Rachford with exact 1-D
            TV solvers, float64 on the CPU); ``"torch"`` -- the built-in batched dual FISTA with
            adaptive restart (see :func:`_prox_tv_torch`), runs on x's device (GPU included);
            ``"auto"`` -- prox-tv when installed, else torch (with a one-time warning); a CUDA
            tensor then makes a round trip to the CPU, so pass ``"torch"`` to stay on the GPU.
            Accuracy: prox-tv's default stopping rule leaves up to ~2e-3 max-abs (1e-5 relative
            objective) on noisy images at lam ≥ 0.1; the torch backend's float32 default reaches
            ~2e-4 max-abs, its float64 default ~1e-9 relative objective (tests/test_priors.py).
        tol: torch backend only: stop when the duality gap is ≤ tol·objective for every plane
            (default 1e-5 for float32, 1e-9 for float64; the gap bounds the objective error).
        max_iter: torch backend only: at most this many dual steps.

    Returns:
        A tensor with x's shape, dtype and device (not attached to autograd).
    """
    _image(x, "prox_tv")
    lam = checks.lam(lam, "prox_tv")
    backend = _resolve_tv_backend(backend)
    _check_torch_settings(tol, max_iter, "prox_tv")   # checked on every backend, so a typo never hides
    if lam == 0:
        return x.detach().clone()
    if backend == "proxtv":
        return _prox_tv_proxtv(x, lam)
    tol = _default_tol(x.dtype) if tol is None else float(tol)
    with torch.no_grad():
        return _prox_tv_torch(x.detach(), lam, tol, max_iter)


# ----------------------------------------------------------------------------------------------
# L1 priors


def prox_l1(x, lam):
    """Soft thresholding, the prox of lam‖x‖₁: sign(x) · max(|x| − lam, 0), elementwise."""
    checks.tensor(x, "x", "prox_l1")
    lam = checks.lam(lam, "prox_l1")
    return torch.sign(x) * torch.clamp(x.abs() - lam, min=0)


@functools.lru_cache(maxsize=32)
def dct_matrix(n, dtype=torch.float64, device="cpu"):
    """The orthonormal DCT-II matrix C (n × n): C[k, i] = s_k cos(π (2i + 1) k / 2n), CᵀC = I.

    s_0 = √(1/n) and s_k = √(2/n) otherwise (scipy's ``dct(norm="ortho")``).
    """
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    c = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    c[0] /= math.sqrt(2.0)
    return c.to(dtype=dtype, device=device)


def dct2(x):
    """Orthonormal 2-D DCT-II over the last two axes (each channel separately): C_H x C_Wᵀ."""
    ch = dct_matrix(x.shape[-2], x.dtype, x.device)
    cw = dct_matrix(x.shape[-1], x.dtype, x.device)
    return ch @ x @ cw.T


def idct2(coeffs):
    """Inverse of :func:`dct2` (its transpose, since the transform is orthonormal): C_Hᵀ X C_W."""
    ch = dct_matrix(coeffs.shape[-2], coeffs.dtype, coeffs.device)
    cw = dct_matrix(coeffs.shape[-1], coeffs.dtype, coeffs.device)
    return ch.T @ coeffs @ cw


def dct_l1_norm(x):
    """‖Φx‖₁ with Φ the orthonormal 2-D DCT per channel (the sparsity prior of §2.1); per image for a batch."""
    _image(x, "dct_l1_norm", finite=False)
    return dct2(x).abs().sum(dim=(-3, -2, -1))


def prox_dct_l1(x, lam):
    """Prox of lam‖Φx‖₁, Φ the orthonormal DCT: Φᵀ soft(Φx, lam).

    Because Φ is orthonormal, ½‖y − x‖² = ½‖Φy − Φx‖², so the problem separates in the DCT domain.
    """
    _image(x, "prox_dct_l1")
    lam = checks.lam(lam, "prox_dct_l1")
    return idct2(prox_l1(dct2(x), lam))


# ----------------------------------------------------------------------------------------------
# denoisers used as priors (plug-and-play)


def _per_image(x, denoise_hwc):
    """Apply a numpy denoiser of an (H, W, C) float64 image to each image of x; back to x's device/dtype."""
    batch = x[None] if x.ndim == 3 else x
    out = []
    for image in batch.detach().cpu().double().numpy():
        out.append(np.asarray(denoise_hwc(np.ascontiguousarray(image.transpose(1, 2, 0)))).transpose(2, 0, 1))
    out = torch.from_numpy(np.ascontiguousarray(np.stack(out))).to(device=x.device, dtype=x.dtype)
    return out[0] if x.ndim == 3 else out


def nlm_denoise(x, sigma=0.01, patch_distance=2, cutoff=0.05, patch_size=7):
    """Non-local means (scikit-image ``denoise_nl_means``) with the thesis's settings (§3.3).

    Name mapping to ``skimage.restoration.denoise_nl_means``: ``sigma`` → ``sigma`` (the noise
    standard deviation, 0.01), ``patch_distance`` → ``patch_distance`` (the search radius in pixels,
    2), ``cutoff`` → ``h`` (the "cut-off distance" of patch similarity, 0.05), ``patch_size`` →
    ``patch_size`` (side of the compared patches; the thesis does not give it, 7 is scikit-image's
    default). Colour images are denoised jointly (``channel_axis=-1``): patch distances sum over
    channels. ``fast_mode=True`` (scikit-image's default).
    """
    from skimage.restoration import denoise_nl_means

    _image(x, "nlm_denoise")
    sigma = checks.sigma(sigma, "nlm_denoise")
    cutoff = checks.positive(cutoff, "cutoff", "nlm_denoise")
    for name, value in (("patch_distance", patch_distance), ("patch_size", patch_size)):
        checks.integer(value, name, "nlm_denoise", minimum=1, hint="a size in pixels")

    def denoise(image):
        channel_axis = None if image.shape[-1] == 1 else -1
        image = image[..., 0] if channel_axis is None else image
        out = denoise_nl_means(image, patch_size=int(patch_size), patch_distance=int(patch_distance),
                               h=cutoff, sigma=sigma, fast_mode=True, channel_axis=channel_axis)
        return out[..., None] if channel_axis is None else out

    return _per_image(x, denoise)


def bm3d_available():
    """Whether the bm3d package imports."""
    try:
        import bm3d  # noqa: F401
    except ImportError:
        return False
    return True


BM3D_PROFILES = ("np", "lc", "high", "vn", "deb")


def _bm3d_profile(profile, white_noise, threads, where):
    import bm3d

    checks.choice(profile, "profile", where, BM3D_PROFILES)
    made = {"np": bm3d.BM3DProfile, "lc": bm3d.BM3DProfileLC, "high": bm3d.BM3DProfileHigh,
            "vn": bm3d.BM3DProfileVN, "deb": bm3d.BM3DProfileDeb}[profile]()
    if checks.flag(white_noise, "white_noise", where):
        made.nf = 0
    made.num_threads = checks.integer(threads, "threads", where, minimum=0, hint="0 lets bm3d use every core")
    return made


def bm3d_denoise(x, sigma=0.05, profile="np", white_noise=True, threads=1):
    """BM3D (the ``bm3d`` package of Mäkinen, Azzari and Foi) with noise level ``sigma`` (0.05, §3.3).

    Colour (3-channel) images use CBM3D (``bm3d.bm3d_rgb``: the opponent colour transform, then BM3D on
    the channels); other channel counts are denoised channel by channel with ``bm3d.bm3d``.

    Args:
        sigma: the noise standard deviation BM3D assumes (thesis: 0.05 as the prior's setting).
        profile: the package's parameter set: ``"np"`` (its default), ``"lc"`` (low complexity), ``"high"``,
            ``"vn"``, ``"deb"``.
        white_noise: ``True`` (default) runs BM3D for white noise — classic BM3D, as the thesis's BM3D
            (the 2007 method) was: the package's ``nf = 0`` ("conventional mode"). ``False`` is the package's
            own default, which also models correlated noise: 17–21× more CPU per call at 64×64×3 for a PSNR
            at most 0.3 dB higher on the lesson's images (``benchmarks/bench_bm3d.py``, ``benchmarks/README.md``).
        threads: the package's own threads (1: one, the default, as every worker of the course uses one;
            0: all cores).

    Cost at 64×64×3 with the defaults: about 0.15 s of CPU per call (``benchmarks/README.md``).
    """
    _image(x, "bm3d_denoise")
    sigma = checks.positive(sigma, "sigma", "bm3d_denoise")
    if not bm3d_available():
        raise ImportError(BM3D_INSTALL)
    import bm3d

    settings = _bm3d_profile(profile, white_noise, threads, "bm3d_denoise")

    def denoise(image):
        if image.shape[-1] == 3:
            return bm3d.bm3d_rgb(image, sigma, settings)
        return np.stack([bm3d.bm3d(image[..., c], sigma, settings) for c in range(image.shape[-1])], axis=-1)

    return _per_image(x, denoise)


class Refreshed:
    """A denoiser called only every ``every``-th time; in between its last *residual* is reused.

    At call s (a refresh) it returns D(v_s) and keeps the residual r = v_s − D(v_s), the noise the
    denoiser took out; at the calls that follow it returns v_t − r. In DIP-ADMM-v2 the dual step only
    sees x − G(θ), and with an exact prox that is minus the slowly changing residual, so reusing the
    residual keeps the iteration close to the exact one (reusing the stale *output* D(v_s) instead makes
    the dual drift, and the runs measured for the course diverged). Measured against the exact prox on
    the same images in ``benchmarks/README.md`` and in lesson 04. This is a **variant** of the method:
    name it so wherever it is used. The state starts afresh for each new image shape or after
    :meth:`reset`; every run of the course's methods works on a fresh copy (:func:`fresh`).
    """

    def __init__(self, denoiser, every):
        self.denoiser = denoiser
        self.every = checks.integer(every, "refresh_every", "Refreshed", minimum=1)
        self.reset()

    def reset(self):
        self.calls, self.residual = 0, None

    def __call__(self, v, rho):
        if self.residual is None or self.residual.shape != v.shape or self.calls % self.every == 0:
            out = self.denoiser(v, rho)
            self.residual = v - out
            self.calls = 1
            return out
        self.calls += 1
        return v - self.residual


# ----------------------------------------------------------------------------------------------
# regularisation by denoising (RED, §2.4.2)


def red_gradient(x, denoiser):
    """The gradient of RED's regulariser, eq. (22): ∇ρ(x) = x − f(x).

    RED (Romano, Elad & Milanfar 2017; thesis §2.4.2) turns a denoiser f into the explicit prior
    ρ(x) = ½ xᵀ(x − f(x)) (eq. 21). For a denoiser that is locally homogeneous (f(cx) = c f(x) for c near 1,
    hence ∇f(x) x = f(x)) and has a symmetric Jacobian, ∇ρ(x) = ½[2x − f(x) − ∇f(x)x] = x − f(x): the
    gradient needs one call of f and no derivative of it. ``denoiser(x)`` maps a (C, H, W) image to one of
    the same shape (e.g. ``nlm_denoise`` or a prox from :func:`make_prox`, called with its default ρ).
    """
    _image(x, "red_gradient")
    checks.function(denoiser, "denoiser", "red_gradient", hint="f(x) maps an image to its denoised version",
                    arguments=1)
    return x - _denoised(denoiser, x, "red_gradient")


def _denoised(denoiser, x, where, finite=True):
    """f(x), checked to be a tensor of x's shape — one of another shape would be broadcast against x into a
    wrong image — and, unless a run checks it itself, finite."""
    return checks.tensor(denoiser(x), "denoiser(x)", where, shape=x.shape, finite=finite,
                         hint="a denoiser maps an image to an image of the same shape")


def red_prox(denoiser, lam=1.0, inner=1, refresh_every=10, where="red_prox"):
    """RED's x-step as a ``prox(v, rho)`` callable: fixed-point iterations on

        min_x (λ/2) xᵀ(x − f(x)) + (ρ/2)‖x − v‖²,   whose optimality condition λ(x − f(x)) + ρ(x − v) = 0

    (by eq. 22) gives x = (λ f(x) + ρ v)/(λ + ρ). Each call makes ``inner`` such steps, starting from the
    previous call's x (warm start; from v at the first call or when the image shape changes).

    Defaults from DeepRED's public code (Mataev, Elad & Milanfar 2019, ``GaryMataev/DeepRED``,
    ``denoising.ipynb``, ``train_via_admm``, ``method='fixed_point'``): one step per ADMM iteration, and f(x)
    recomputed only every ``refresh_every`` = 10 calls, the value in between being the last one computed
    (the code computes it in a background thread, so the value it uses is one refresh older still, and it
    clips x to [0, 1]; neither is done here). The thesis (§2.3.2) describes DeepRED's x-step as an inner loop
    that calls the denoiser several times per iteration — ``inner=3, refresh_every=1`` is that reading; the
    code's way costs 0.1 denoiser calls per iteration, less than DIP-ADMM-v2's one prox call.

    Args:
        denoiser: f, called as ``denoiser(x)`` on a (C, H, W) image (a prox from :func:`make_prox` is called
            with its default ρ).
        lam: λ of eq. (12)/(21), > 0 (DeepRED's code: β = 0.5 for denoising; lesson 07 uses 1).
        inner: fixed-point steps per call (≥ 1).
        refresh_every: recompute f every this many steps (≥ 1; 1 = always fresh).
        where: the function its messages name (:func:`dipcourse.admm.deep_red` passes its own name).
    """
    lam = checks.positive(lam, "lam", where, hint="RED's weight λ of eq. (12)")
    inner = checks.integer(inner, "inner", where, minimum=1, hint="fixed-point steps per x-step")
    refresh_every = checks.integer(refresh_every, "refresh_every", where, minimum=1)
    checks.function(denoiser, "denoiser", where, hint="f(x) maps an image to its denoised version",
                    arguments=1)
    state = {"x": None, "f": None, "calls": 0}

    def prox(v, rho):
        x = state["x"] if state["x"] is not None and state["x"].shape == v.shape else v
        for _ in range(inner):
            if state["f"] is None or state["f"].shape != v.shape or state["calls"] % refresh_every == 0:
                # a NaN in f(x) is left to the run, which stops as diverged at this iteration
                state["f"] = _denoised(denoiser, x, where, finite=False)
            state["calls"] += 1
            x = (lam * state["f"] + rho * v) / (lam + rho)
        state["x"] = x
        return x

    settings = dict(lam=lam, inner=inner, refresh_every=refresh_every)
    return Prox("red", dict(settings, denoiser=getattr(denoiser, "name", repr(denoiser))), prox,
                recipe=(red_prox, dict(settings, denoiser=denoiser, where=where)))


# ----------------------------------------------------------------------------------------------
# make_prox: the form the solvers take


class Prox:
    """A prior as its proximal operator: ``prox(v, rho)`` = prox_{R/ρ}(v) = argmin_x R(x) + ρ/2 ‖x − v‖².

    Attributes:
        name: the prior's name (``"tv"``, ``"nlm"``, ...).
        params: the settings it was made with (defaults filled in).
        value: ``value(x)`` = R(x) (per image for a batch) when the prior is explicit (TV, L1), or
            ``None`` for a denoiser, which has no known R.

    A prox made by :func:`make_prox` (or :func:`red_prox`) can be pickled — it is rebuilt from its name
    and settings — so it can go to the worker processes of :mod:`dipcourse.parallel`.
    """

    def __init__(self, name, params, prox, value=None, recipe=None):
        self.name = name
        self.params = dict(params)
        self._prox = prox
        self.value = value
        self._recipe = recipe

    def __call__(self, v, rho=1.0):
        rho = checks.rho(rho, f"prox '{self.name}'")
        return self._prox(v, rho)

    def __repr__(self):
        settings = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"Prox({self.name!r}, {settings})"

    def fresh(self):
        """A new prox with the same settings and no state (a :class:`Refreshed` denoiser remembers its
        last residual; each run, and each image of a batch, needs its own)."""
        return self if self._recipe is None else _rebuild(*self._recipe)

    def __reduce__(self):
        if self._recipe is None:
            raise TypeError(f"the prox {self.name!r} was not made by make_prox and cannot be pickled")
        return (_rebuild, self._recipe)


def fresh(prox):
    """``prox.fresh()`` for the course's priors, ``prox`` itself for any other callable."""
    return prox.fresh() if isinstance(prox, Prox) else prox


def _rebuild(function, kwargs):
    """Make a prox again from its recipe (used when a :class:`Prox` is unpickled)."""
    return function(**kwargs)


def _make_tv(lam=0.01, backend="auto", tol=None, max_iter=5000):
    lam = checks.lam(lam, "make_prox('tv')")
    _check_torch_settings(tol, max_iter, "make_prox('tv')")
    if backend != "auto":
        _resolve_tv_backend(backend)  # a bad name or a missing prox-tv fails here, not in the middle of a run
    return Prox("tv", dict(lam=lam, backend=backend, tol=tol, max_iter=max_iter),
                lambda v, rho: prox_tv(v, lam / rho, backend=backend, tol=tol, max_iter=max_iter),
                value=lambda x: lam * tv_norm(x))


def _make_l1(lam=0.01):
    lam = checks.lam(lam, "make_prox('l1')")
    return Prox("l1", dict(lam=lam), lambda v, rho: prox_l1(v, lam / rho),
                value=lambda x: lam * x.abs().sum(dim=tuple(range(-min(x.ndim, 3), 0))))


def _make_dct_l1(lam=0.01):
    lam = checks.lam(lam, "make_prox('dct_l1')")
    return Prox("dct_l1", dict(lam=lam), lambda v, rho: prox_dct_l1(v, lam / rho),
                value=lambda x: lam * dct_l1_norm(x))


def _make_nlm(sigma=0.01, patch_distance=2, cutoff=0.05, patch_size=7):
    params = dict(sigma=sigma, patch_distance=patch_distance, cutoff=cutoff, patch_size=patch_size)
    nlm_denoise(torch.zeros(1, 8, 8), **params)  # check the settings now, not at the first call
    return Prox("nlm", params, lambda v, rho: nlm_denoise(v, **params))


def _make_bm3d(sigma=0.05, profile="np", white_noise=True, threads=1, refresh_every=1):
    where = "make_prox('bm3d')"
    sigma = checks.positive(sigma, "sigma", where)
    if not bm3d_available():
        raise ImportError(BM3D_INSTALL)
    _bm3d_profile(profile, white_noise, threads, where)       # bad settings fail here, not mid-run
    settings = dict(sigma=sigma, profile=profile, white_noise=white_noise, threads=threads)
    prox = lambda v, rho: bm3d_denoise(v, **settings)  # noqa: E731 - the denoiser ignores ρ (§3.2.4)
    refresh_every = checks.integer(refresh_every, "refresh_every", where, minimum=1)
    if refresh_every > 1:
        prox = Refreshed(prox, refresh_every)
    return Prox("bm3d", dict(settings, refresh_every=refresh_every), prox)


def regularizer(prox):
    """The callable R(x) of an explicit prior (TV, L1: ``prox.value``), else ``None`` (a denoiser such as
    NLM or BM3D, which has a prox but no known R)."""
    return getattr(prox, "value", None)


_FACTORIES = {"tv": _make_tv, "nlm": _make_nlm, "bm3d": _make_bm3d, "l1": _make_l1, "dct_l1": _make_dct_l1}


def make_prox(name, **params):
    """Build ``prox(v, rho)`` = prox_{R/ρ}(v) for the prior ``name`` (thesis settings as defaults).

    * ``"tv"``: R = lam‖x‖_TV, prox = ``prox_tv(v, lam/ρ)``; ``lam=0.01`` (§3.3), ``backend="auto"``,
      ``tol``, ``max_iter`` as in :func:`prox_tv`.
    * ``"l1"``: R = lam‖x‖₁, prox = ``prox_l1(v, lam/ρ)``; ``lam=0.01``.
    * ``"dct_l1"``: R = lam‖DCT x‖₁, prox = ``prox_dct_l1(v, lam/ρ)``; ``lam=0.01``.
    * ``"nlm"``: plug-and-play -- ``nlm_denoise(v, sigma=0.01, patch_distance=2, cutoff=0.05)``.
    * ``"bm3d"``: plug-and-play -- ``bm3d_denoise(v, sigma=0.05)``.

    The denoisers have no explicit R: they replace the prox outright and ignore ρ (§3.2.4, as in
    plug-and-play [35]); their ``value`` is ``None``. DIP-ADMM-v1's step prox_{R/(‖AᵀA‖+ρ)} is
    ``prox(v, L + rho)``. ``v`` may carry a batch dimension (B, C, H, W); denoisers loop over it.
    """
    if name not in _FACTORIES:
        raise ValueError(f"make_prox: unknown prior {name!r}; choose one of {', '.join(PRIOR_NAMES)}")
    factory = _FACTORIES[name]
    accepted = factory.__code__.co_varnames[:factory.__code__.co_argcount]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise TypeError(f"make_prox({name!r}): unknown parameter(s) {unknown}; "
                        f"accepted: {', '.join(accepted)}")
    prox = factory(**params)
    prox._recipe = (make_prox, dict(name=name, **params))
    return prox

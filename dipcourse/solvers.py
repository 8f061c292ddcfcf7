"""Classical solvers of the MAP problem  min_x F(x) = ½‖b − Ax‖² + R(x)  (thesis eq. 3).

* :func:`ista`  -- proximal gradient descent, eq. (4), F(x_k) − F* = O(1/k).
* :func:`fista` -- the same step at an extrapolated point (Beck and Teboulle), O(1/k²).
* :func:`pnp_admm` -- plug-and-play ADMM, Algorithm 3 (§3.2.3), which only needs R through its
  proximal operator, so a denoiser can stand in for it (§3.2.4).

Conventions shared with the rest of the course:

* ``A`` is an operator from :mod:`dipcourse.operators`; ``b`` has shape ``A.out_shape``.
* ``prox(v, rho)`` = prox_{R/ρ}(v) = argmin_x R(x) + ρ/2 ‖x − v‖², as made by
  :func:`dipcourse.priors.make_prox`. The ISTA step β = 1/L (L = ‖AᵀA‖) is prox_{βR} = ``prox(v, L)``.
* F(x) is recorded as ``history["loss"]`` when R(x) is known: from ``reg(x)`` if given, else from
  ``prox.value(x)`` (make_prox attaches it to explicit priors such as TV and L1). For a denoiser
  with no R, ``"loss"`` is the data term ½‖b − Ax‖² alone and ``params["loss"]`` says so.
* Iterations are counted from 1: ``history["iteration"][k-1] = k`` is the iterate after k updates,
  which is what a log–log plot of F(x_k) − F* needs.
* Every solver returns a :class:`dipcourse.Result` built with :class:`dipcourse.Tracker`, so PSNR
  (when ``ref`` is given), its smoothed version, CPU and wall time come for free.
"""
import math

import torch

from dipcourse import checks
from dipcourse.operators import data_term
from dipcourse.priors import fresh, regularizer
from dipcourse.runs import Run


def _check_problem(where, A, b, prox, iters, ref, x0, reg=None, callback=None, progress=False):
    """The checks every solver makes; returns ``iters`` as an int."""
    checks.measurement(A, b, where)
    if reg is not None:
        checks.function(reg, "reg", where, hint="pass reg(x) = R(x) as a function, or leave it out")
    if callback is not None:
        checks.function(callback, "callback", where, hint="callback(it) is called after each iteration")
    checks.flag(progress, "progress", where)
    checks.function(prox, "prox", where, hint="pass prox(v, rho) = prox_(R/rho)(v); build one with "
                                              "dipcourse.priors.make_prox", arguments=2)
    checks.reference(ref, A.in_shape, where)
    if x0 is not None:
        checks.tensor(x0, "x0", where, shape=A.in_shape, hint="start from an image of the operator's input shape")
    return checks.iters(iters, where)


def _start(A, b, x0):
    """x0 if given, else Aᵀb -- the zero-filled image for a mask."""
    if x0 is None:
        return A.adjoint(b)
    return x0.to(device=b.device, dtype=b.dtype).clone()


def objective(A, b, x, reg=None):
    """F(x) = ½‖b − Ax‖² + R(x) (eq. 3); the data term alone when ``reg`` is None."""
    value = data_term(A, b, x).item()
    return value if reg is None else value + float(reg(x))


def lasso_duality_gap(A, b, x, lam, basis="dct"):
    """A certificate of optimality for the Lasso  F(x) = ½‖b − Ax‖² + lam‖Φx‖₁  (eq. 3 with an L1 prior).

    Φ is orthonormal: the 2-D DCT per channel (``basis="dct"``, the prior ``make_prox("dct_l1")``) or the
    identity (``basis="pixels"``, ``make_prox("l1")``). The dual problem is

        max_ν  D(ν) = ⟨b, ν⟩ − ½‖ν‖²   subject to  ‖Φ Aᵀν‖_∞ ≤ lam,

    and every feasible ν gives D(ν) ≤ F* ≤ F(x). From the residual r = b − Ax, the scaled
    ν = r · min(1, lam / ‖ΦAᵀr‖_∞) is feasible, so ``gap = F(x) − D(ν)`` bounds F(x) − F* from above —
    without knowing F* — and tends to 0 as x tends to the minimiser. This is how lesson 01 knows how
    accurately it knows F*: the gap is computed independently of the solver and of its prox.

    Returns:
        ``(F(x), gap)`` as floats (computed in float64).
    """
    from dipcourse.priors import dct2

    checks.measurement(A, b, "lasso_duality_gap")
    checks.tensor(x, "x", "lasso_duality_gap", shape=A.in_shape)
    lam = checks.lam(lam, "lasso_duality_gap")
    checks.choice(basis, "basis", "lasso_duality_gap", ("dct", "pixels"))
    transform = dct2 if basis == "dct" else (lambda v: v)
    b, x = b.double(), x.double()
    residual = b - A.forward(x)
    primal = 0.5 * torch.sum(residual ** 2).item() + lam * transform(x).abs().sum().item()
    correlation = transform(A.adjoint(residual)).abs().max().item()
    nu = residual * (min(1.0, lam / correlation) if correlation > 0 else 1.0)
    dual = torch.sum(b * nu).item() - 0.5 * torch.sum(nu ** 2).item()
    return primal, max(primal - dual, 0.0)


def loss_note(R, image="x"):
    """What ``history["loss"]`` holds, for ``Result.params["loss"]``: F(``image``) when R is known."""
    if R is None:
        return f"data term 1/2 |b - A {image}|^2 (R unknown)"
    return f"1/2 |b - A {image}|^2 + R({image})"


def _proximal_gradient(name, A, b, prox, iters, x0, ref, reg, progress, callback, accelerate):
    iters = _check_problem(name.lower(), A, b, prox, iters, ref, x0, reg, callback, progress)
    L = A.norm_sq
    R = reg if reg is not None else regularizer(prox)
    prox = fresh(prox)
    run = Run(name, [ref], iters, params={"algorithm": name, "iters": iters, "step": 1.0 / L, "loss": loss_note(R)},
              callback=callback, progress=progress, first=1)
    AtB = A.adjoint(b)
    x = _start(A, b, x0)
    y, t = x, 1.0  # FISTA's extrapolated point and momentum; ISTA keeps y = x
    for k in run:
        gradient = A.normal(y) - AtB                     # ∇f(y) = Aᵀ(Ay − b)
        x_next = prox(y - gradient / L, L)               # eq. (4): prox_{βR}(y − β∇f(y)), β = 1/L
        run.check_output(k, 0, "prox(v, rho)", x_next, y)
        if accelerate:
            t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
            y = x_next + ((t - 1.0) / t_next) * (x_next - x)
            t = t_next
        else:
            y = x_next
        x = x_next
        if run.record(k, [x], loss=objective(A, b, x, R)):
            break
    return run.results([x])[0]


def ista(A, b, prox, iters, x0=None, ref=None, reg=None, progress=False, callback=None):
    """ISTA, eq. (4):  x_{k+1} = prox_{βR}( x_k − β Aᵀ(A x_k − b) ),  β = 1/‖AᵀA‖.

    F(x_k) − F* ≤ ‖x_0 − x*‖² L / (2k): the O(1/k) rate of §2.1.

    Args:
        A: forward operator (:mod:`dipcourse.operators`).
        b: measurement, shape ``A.out_shape``.
        prox: ``prox(v, rho)`` = prox_{R/ρ}(v); called here with ρ = L = ‖AᵀA‖.
        iters: number of iterations.
        x0: starting image; default Aᵀb.
        ref: ground truth, only to report PSNR.
        reg: optional callable R(x) for the recorded objective (default ``prox.value``).
        progress: show a progress bar.
        callback: ``callback(it)`` after each iteration (:class:`dipcourse.runs.Iterate`); ``True`` stops.

    Returns:
        :class:`dipcourse.Result` whose ``history["loss"]`` is F(x_k), k = 1..iters.
    """
    return _proximal_gradient("ISTA", A, b, prox, iters, x0, ref, reg, progress, callback, accelerate=False)


def fista(A, b, prox, iters, x0=None, ref=None, reg=None, progress=False, callback=None):
    """FISTA (Beck and Teboulle, ref. [4] of the thesis), the accelerated form of eq. (4):

        x_k     = prox_{βR}( y_k − β Aᵀ(A y_k − b) ),          β = 1/‖AᵀA‖
        t_{k+1} = (1 + √(1 + 4 t_k²)) / 2,                     t_1 = 1, y_1 = x_0
        y_{k+1} = x_k + ((t_k − 1) / t_{k+1}) (x_k − x_{k−1})

    F(x_k) − F* ≤ 2 L ‖x_0 − x*‖² / (k + 1)²: the O(1/k²) rate of §2.1. Arguments as :func:`ista`.
    """
    return _proximal_gradient("FISTA", A, b, prox, iters, x0, ref, reg, progress, callback, accelerate=True)


def interpolate_missing(A, b, width=1.0):
    """A prior-free baseline for inpainting: fill each entry a :class:`~dipcourse.operators.RandomMask` did not
    measure with the Gaussian-weighted mean of the measured entries nearby (normalised convolution, per
    channel); measured entries keep their measured (noisy) values.

        x̂ = mask · Aᵀb + (1 − mask) · (g ⊛ Aᵀb) / (g ⊛ mask),    g a Gaussian of std ``width`` pixels

    (reflecting borders). It knows nothing of the noise and solves no optimisation problem, so a method with
    a prior has to earn its keep against it.
    """
    import torch.nn.functional as F

    checks.measurement(A, b, "interpolate_missing")
    if not hasattr(A, "mask"):
        raise TypeError("interpolate_missing needs a RandomMask (an operator with a .mask of measured entries)")
    width = checks.positive(width, "width", "interpolate_missing", hint="the Gaussian's std in pixels, e.g. 1")
    radius = max(1, math.ceil(3 * width))
    offsets = torch.arange(-radius, radius + 1, dtype=b.dtype, device=b.device)
    g = torch.exp(-offsets ** 2 / (2 * width ** 2))
    kernel = (g[:, None] * g[None, :] / g.sum() ** 2)[None, None]
    zero_filled = A.adjoint(b)
    mask = A.mask.to(device=b.device, dtype=b.dtype)

    def smooth(v):
        padded = F.pad(v[:, None], (radius,) * 4, mode="reflect")
        return F.conv2d(padded, kernel)[:, 0]

    filled = smooth(zero_filled) / smooth(mask).clamp_min(1e-12)
    return torch.where(mask > 0, zero_filled, filled)


def chambolle_pock_tv(A, b, lam, iters, ref=None, x0=None, progress=False, callback=None):
    """The TV-regularised MAP problem  min_x ½‖b − Ax‖² + lam‖Dx‖₁  (eq. 3 with anisotropic TV, D the
    forward differences) by the primal–dual method of Chambolle and Pock (2011), without any TV prox.

    It is the course's independent reference for :func:`pnp_admm` with ``make_prox("tv", lam)``: it uses
    the TV *formula* (D and Dᵀ) where PnP-ADMM uses the TV *solver*, so a wrong prox cannot make both agree.
    With τ = σ = 0.99/√8 (‖D‖² ≤ 8, so τσ‖D‖² < 1) and a dual variable p for the constraint |p| ≤ lam:

        p ← clip(p + σ D x̄, −lam, lam)                              (projection: the prox of the dual of lam‖·‖₁)
        x⁺ = (AᵀA + I/τ)⁻¹ (Aᵀb + (x − τ Dᵀp)/τ)                   (prox of τ·½‖b − A·‖², ``solve_regularized``)
        x̄ = 2x⁺ − x

    The objective converges at the ergodic rate O(1/k); the history records F(x_k) as ``"loss"``.
    """
    from dipcourse.priors import image_gradient, image_gradient_adjoint, tv_norm

    iters = _check_problem("chambolle_pock_tv", A, b, lambda v, rho: v, iters, ref, x0, None, callback, progress)
    lam = checks.lam(lam, "chambolle_pock_tv")
    tau = sigma = 0.99 / math.sqrt(8.0)
    run = Run("Chambolle-Pock TV", [ref], iters, params={"algorithm": "chambolle_pock_tv", "lam": lam,
                                                          "iters": iters, "loss": loss_note(True)},
              callback=callback, progress=progress, first=1)
    AtB = A.adjoint(b)
    x = _start(A, b, x0)
    x_bar = x
    pv, ph = (torch.zeros_like(d) for d in image_gradient(x))
    for k in run:
        gv, gh = image_gradient(x_bar)
        pv = (pv + sigma * gv).clamp(-lam, lam)
        ph = (ph + sigma * gh).clamp(-lam, lam)
        x_next = A.solve_regularized(AtB + (x - tau * image_gradient_adjoint(pv, ph)) / tau, 1.0 / tau)
        x_bar, x = 2 * x_next - x, x_next
        if run.record(k, [x], loss=objective(A, b, x, lambda v: lam * tv_norm(v))):
            break
    return run.results([x])[0]


def apply(function, **arguments):
    """``function(**arguments)``: lets :func:`dipcourse.parallel.run_calls` run different methods in one pool
    (``run_calls(apply, [dict(function=fit_dip, ...), dict(function=dip_tv_gd, ...)])``), one progress bar
    and no idle worker while the other finishes."""
    return function(**arguments)


class RecordingRun:
    """A training function of the course (DIP, the ADMM variants) that records two more things per iteration.

    ``RecordingRun(dip_admm_v2)(**arguments)`` runs ``dip_admm_v2(**arguments)`` and adds

    * with ``residual=True`` (methods whose callback state has x and G(θ): DIP-ADMM-v1 and v2)
      ``history["residual"]`` = ‖x_t − G(θ_t)‖ / ‖G(θ_t)‖ — how far the iterate is from the constraint
      x = G(θ) of problems (24)–(25) — and ``extras["mean_residual"]`` = ‖mean of (x_t − G(θ_t)) over the
      last ``tail`` of the iterations‖ / ‖G(θ_T)‖;
    * with ``total_variation=True``: ``history["tv"]`` = ‖G(θ_t)‖_TV of the recorded image (any method).

    Why the residual twice: x_{t+1} is computed from G(θ_t), and one Adam step later G(θ_{t+1}) has moved
    on, so the per-iteration residual mostly measures how much the network's output jitters from one step
    to the next. The dual step u ← u + (x − G(θ)) sums the residuals, so it removes their *systematic*
    part: their mean over many iterations is u's change divided by their number, which goes to 0. Without
    the dual step (u stuck at 0) that mean stays at the size of prox_{R/ρ}(G) − G, the step of the prior.

    Picklable when the wrapped function is a module-level function, so it can go to
    :func:`dipcourse.parallel.run_calls` (lesson 03 runs its seeds that way).
    """

    def __init__(self, function, residual=True, total_variation=False, tail=0.1):
        self.function = function
        self.residual = checks.flag(residual, "residual", "RecordingRun")
        self.total_variation = checks.flag(total_variation, "total_variation", "RecordingRun")
        self.tail = checks.number(tail, "tail", "RecordingRun", minimum=0, maximum=1, strict_min=True)

    def __call__(self, callback=None, progress=False, **arguments):
        import numpy as np

        from dipcourse.priors import tv_norm

        iters = checks.iters(arguments.get("iters"), "RecordingRun")
        first_averaged = iters - max(1, math.ceil(self.tail * iters)) + 1
        rows = {"residual": [], "tv": []}
        total = {"sum": 0.0, "count": 0, "g": None}

        def watch(it):
            if self.residual:
                if "g" not in it.state:
                    raise ValueError("RecordingRun(residual=True) needs a method whose state has x and G(θ) "
                                     "(dip_admm_v1, dip_admm_v2); pass residual=False")
                x, g = it.state["x"], it.state["g"]
                rows["residual"].append(float(torch.linalg.norm(x - g) / torch.linalg.norm(g)))
                if it.iteration >= first_averaged:
                    total["sum"] = total["sum"] + (x - g).detach().double()
                    total["count"] += 1
                total["g"] = g.detach()
            if self.total_variation:
                rows["tv"].append(float(tv_norm(it.x)))
            return bool(callback(it)) if callback is not None else False

        result = self.function(callback=watch, progress=progress, **arguments)
        recorded = len(result.history["iteration"])
        for key, wanted in (("residual", self.residual), ("tv", self.total_variation)):
            if wanted:
                result.history[key] = np.asarray(rows[key][:recorded])
        if total["count"]:
            mean = total["sum"] / total["count"]
            result.extras["mean_residual"] = float(torch.linalg.norm(mean) / torch.linalg.norm(total["g"].double()))
        return result


def pnp_admm(A, b, prox, rho=1.0, iters=100, ref=None, x0=None, reg=None, progress=False, callback=None):
    """Plug-and-play ADMM, Algorithm 3 (§3.2.3), for  min_{x,y} ½‖b − Ay‖² + R(x)  s.t. x = y  (32).

    The ADMM steps (34) on the augmented Lagrangian (33), line by line:

        2:  x_{t+1} = prox_{R/ρ}( y_t − u_t )
        3:  y_{t+1} = (AᵀA + ρI)⁻¹ ( Aᵀb + ρ (x_{t+1} + u_t) )        (closed form, §3.3)
        4:  u_{t+1} = u_t + x_{t+1} − y_{t+1}                          (dual step 1, §3.3)

    ``prox`` may be any denoiser (§3.2.4); the thesis uses TV with weight 0.01 and ρ = 1.

    Args:
        A, b: operator and measurement as in :func:`ista`.
        prox: ``prox(v, rho)`` = prox_{R/ρ}(v) (``make_prox("tv", lam=0.01)``, a denoiser, ...).
        rho: penalty ρ > 0; thesis default 1.
        iters: number of ADMM iterations T.
        ref: ground truth, only to report PSNR.
        x0: initial y_0 (the x-step's first input); default Aᵀb. u_0 = 0.
        reg: optional callable R(x) for the recorded objective (default ``prox.value``).
        progress: show a progress bar.
        callback: ``callback(it)`` after each iteration, with ``it.state = {"y": y_t, "u": u_t}``.

    Returns:
        :class:`dipcourse.Result` of the prior-side iterates x_t; ``history["loss"]`` is F(x_t)
        (eq. 3) and ``history["residual"]`` the primal residual ‖x_t − y_t‖.
    """
    iters = _check_problem("pnp_admm", A, b, prox, iters, ref, x0, reg, callback, progress)
    rho = checks.rho(rho, "pnp_admm")
    R = reg if reg is not None else regularizer(prox)
    prox = fresh(prox)
    run = Run("PnP-ADMM", [ref], iters, params={"algorithm": "pnp_admm", "rho": rho, "iters": iters,
                                                "loss": loss_note(R)},
              callback=callback, progress=progress, first=1)
    AtB = A.adjoint(b)
    y = _start(A, b, x0)
    u = torch.zeros_like(y)
    for t in run:
        x = prox(y - u, rho)                                      # line 2
        run.check_output(t, 0, "prox(v, rho)", x, y)
        y = A.solve_regularized(AtB + rho * (x + u), rho)         # line 3
        u = u + (x - y)                                           # line 4
        if run.record(t, [x], state={"y": y, "u": u}, loss=objective(A, b, x, R),
                      residual=torch.linalg.norm(x - y).item()):
            break
    return run.results([x])[0]

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
from tqdm.auto import tqdm

from dipcourse.result import Tracker


def _check_problem(A, b, iters):
    if not isinstance(b, torch.Tensor):
        raise TypeError(f"b must be a torch.Tensor, got {type(b).__name__}; "
                        "make it with dipcourse.operators.measure(A, x, sigma)")
    if tuple(b.shape) != tuple(A.out_shape):
        raise ValueError(f"b has shape {tuple(b.shape)} but the operator measures "
                         f"{tuple(A.out_shape)}; make b with dipcourse.operators.measure(A, x, sigma)")
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise ValueError(f"iters must be a positive integer, got {iters!r}")


def _check_prox(prox):
    if not callable(prox):
        raise TypeError(f"prox must be a callable prox(v, rho) = prox_(R/rho)(v), got "
                        f"{type(prox).__name__}; build one with dipcourse.priors.make_prox")


def _start(A, b, x0):
    """x0 if given (checked), else Aᵀb -- the zero-filled image for a mask."""
    if x0 is None:
        return A.adjoint(b)
    if tuple(x0.shape) != tuple(A.in_shape):
        raise ValueError(f"x0 has shape {tuple(x0.shape)}, expected {tuple(A.in_shape)}")
    return x0.to(device=b.device, dtype=b.dtype).clone()


def _regularizer(prox, reg):
    """The callable R(x), or None when R is unknown (a denoiser)."""
    return reg if reg is not None else getattr(prox, "value", None)


def objective(A, b, x, reg=None):
    """F(x) = ½‖b − Ax‖² + R(x) (eq. 3); the data term alone when ``reg`` is None."""
    value = 0.5 * torch.sum((b - A.forward(x)) ** 2).item()
    return value if reg is None else value + float(reg(x))


def _loss_note(R):
    return "F(x) = 1/2 |b - Ax|^2 + R(x)" if R is not None else "data term 1/2 |b - Ax|^2 (R unknown)"


def _proximal_gradient(name, A, b, prox, iters, x0, ref, reg, progress, accelerate):
    _check_problem(A, b, iters)
    _check_prox(prox)
    L = A.norm_sq
    R = _regularizer(prox, reg)
    tracker = Tracker(ref=ref, params={"algorithm": name, "iters": iters, "step": 1.0 / L,
                                       "loss": _loss_note(R)})
    AtB = A.adjoint(b)
    x = _start(A, b, x0)
    y, t = x, 1.0  # FISTA's extrapolated point and momentum; ISTA keeps y = x
    for k in tqdm(range(1, iters + 1), desc=name, disable=not progress):
        gradient = A.normal(y) - AtB                     # ∇f(y) = Aᵀ(Ay − b)
        x_next = prox(y - gradient / L, L)               # eq. (4): prox_{βR}(y − β∇f(y)), β = 1/L
        if accelerate:
            t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
            y = x_next + ((t - 1.0) / t_next) * (x_next - x)
            t = t_next
        else:
            y = x_next
        x = x_next
        tracker.step(k, x, loss=objective(A, b, x, R))
    return tracker.result(x)


def ista(A, b, prox, iters, x0=None, ref=None, reg=None, progress=False):
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
        progress: show a tqdm progress bar.

    Returns:
        :class:`dipcourse.Result` whose ``history["loss"]`` is F(x_k), k = 1..iters.
    """
    return _proximal_gradient("ista", A, b, prox, iters, x0, ref, reg, progress, accelerate=False)


def fista(A, b, prox, iters, x0=None, ref=None, reg=None, progress=False):
    """FISTA (Beck and Teboulle, ref. [4] of the thesis), the accelerated form of eq. (4):

        x_k     = prox_{βR}( y_k − β Aᵀ(A y_k − b) ),          β = 1/‖AᵀA‖
        t_{k+1} = (1 + √(1 + 4 t_k²)) / 2,                     t_1 = 1, y_1 = x_0
        y_{k+1} = x_k + ((t_k − 1) / t_{k+1}) (x_k − x_{k−1})

    F(x_k) − F* ≤ 2 L ‖x_0 − x*‖² / (k + 1)²: the O(1/k²) rate of §2.1. Arguments as :func:`ista`.
    """
    return _proximal_gradient("fista", A, b, prox, iters, x0, ref, reg, progress, accelerate=True)


def pnp_admm(A, b, prox, rho=1.0, iters=100, ref=None, x0=None, reg=None, progress=False):
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
        progress: show a tqdm progress bar.

    Returns:
        :class:`dipcourse.Result` of the prior-side iterates x_t; ``history["loss"]`` is F(x_t)
        (eq. 3) and ``history["residual"]`` the primal residual ‖x_t − y_t‖.
    """
    _check_problem(A, b, iters)
    _check_prox(prox)
    if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not rho > 0 \
            or not math.isfinite(rho):
        raise ValueError(f"rho must be a positive finite number (the thesis uses rho = 1), got {rho!r}")
    R = _regularizer(prox, reg)
    tracker = Tracker(ref=ref, params={"algorithm": "pnp_admm", "rho": rho, "iters": iters,
                                       "loss": _loss_note(R)})
    AtB = A.adjoint(b)
    y = _start(A, b, x0)
    u = torch.zeros_like(y)
    for t in tqdm(range(1, iters + 1), desc="pnp_admm", disable=not progress):
        x = prox(y - u, rho)                                      # line 2
        y = A.solve_regularized(AtB + rho * (x + u), rho)         # line 3
        u = u + (x - y)                                           # line 4
        tracker.step(t, x, loss=objective(A, b, x, R), residual=torch.linalg.norm(x - y).item())
    return tracker.result(x)

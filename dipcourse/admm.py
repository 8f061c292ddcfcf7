"""Deep image prior with an extra prior R, solved by ADMM (thesis §3.2, Algorithms 1 and 2).

The thesis adds a regulariser R to DIP's constrained problem (23) in two ways,

    (24)  min_{θ,x} ½‖b − Ax‖² + R(x)       s.t. x = G(θ)      → DIP-ADMM-v1, :func:`dip_admm_v1`
    (25)  min_{θ,x} ½‖b − AG(θ)‖² + R(x)    s.t. x = G(θ)      → DIP-ADMM-v2, :func:`dip_admm_v2`

and compares both with plain gradient descent on the explicit loss (36), :func:`dip_tv_gd`,

    (36)  L(θ) = ½‖b − AG(θ)‖² + 0.01‖G(θ)‖_TV .

Both ADMM variants only need R through its proximal operator, so a denoiser (NLM, BM3D) can stand in
for it (§3.2.4). Priors are ``prox(v, rho) = prox_{R/ρ}(v)`` callables from
:func:`dipcourse.priors.make_prox` (or a prior's name, passed on to it).

Settings (§3.3): ρ = 1, one Adam step with learning rate 0.001 for θ, dual step 1, u₀ = 0, a fixed
noise input z. The thesis does not state x₀; we start from x₀ = G(θ₀), the network's first output.

Every function returns a :class:`dipcourse.Result` whose image is G(θ) and whose history holds, per
iteration t (after the t-th update, t = 1..T):

- ``"loss"``: loss (36) evaluated on G(θ_t) with the run's prior, ½‖b − AG(θ)‖² + R(G(θ)). A denoiser
  (NLM, BM3D) has no R(x), only a prox; then ``"loss"`` is the data term alone (and ``"data"`` equals it);
  ``Result.params["loss"]`` says which.
- ``"data"``: ½‖b − AG(θ_t)‖²;
- ``"psnr"``, ``"psnr_smoothed"`` (of G(θ_t) and its running mean r ← 0.9 r + 0.1 G(θ_t), §4.2) and
  ``"psnr_x"`` (of the ADMM variable x_t), when ``ref`` is given;
- ``"prox_calls"``: the cumulative number of prox evaluations;
- ``"time_cpu"``, ``"time_wall"``: seconds since the start.
"""
import torch
from tqdm.auto import trange

from dipcourse.dip import adam, prepare_network, to_device
from dipcourse.metrics import psnr
from dipcourse.priors import make_prox, tv_norm
from dipcourse.result import Tracker


# ----------------------------------------------------------------------------------------------
# The prior: a prox callable, how often it was called, and its value R(x) when it has one
# ----------------------------------------------------------------------------------------------

class CountingProx:
    """Wrap ``prox(v, rho)`` and count its calls (the thesis's cost measure for v1 vs v2, §3.2.2)."""

    def __init__(self, prox):
        self.prox = prox
        self.calls = 0

    def __call__(self, v, rho):
        self.calls += 1
        return self.prox(v, rho)


def resolve_prox(prox):
    """Return a ``prox(v, rho)`` callable: ``prox`` itself, or ``make_prox(prox)`` for a prior's name."""
    if isinstance(prox, str):
        return make_prox(prox)  # raises for unknown names and missing backends
    if not callable(prox):
        raise TypeError(f"prox must be a callable prox(v, rho) or a prior's name such as 'tv', "
                        f"got {type(prox).__name__}; build one with dipcourse.priors.make_prox")
    return prox


def regularizer(prox):
    """The callable R(x) of an explicit prior (TV, L1), else ``None`` (denoisers: NLM, BM3D).

    A prox from :func:`dipcourse.priors.make_prox` exposes its regulariser as ``prox.value``.
    """
    return getattr(prox, "value", None)


def loss_note(reg):
    """What ``history["loss"]`` holds, for ``Result.params["loss"]``."""
    return "(36): 1/2 |b - A G|^2 + R(G)" if reg is not None else "data term 1/2 |b - A G|^2 (R unknown)"


def data_term(A, b, x):
    """½‖b − Ax‖², the data-fidelity term shared by (24), (25) and (36)."""
    return 0.5 * torch.sum((b - A.forward(x)) ** 2)


# ----------------------------------------------------------------------------------------------
# Shared set-up and checks
# ----------------------------------------------------------------------------------------------

def _check_common(A, b, iters, lr):
    if not isinstance(iters, int) or iters < 1:
        raise ValueError(f"iters must be a positive integer, got {iters!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive (the thesis uses 0.001), got {lr!r}")
    if tuple(b.shape) != tuple(A.out_shape):
        raise ValueError(f"b has shape {tuple(b.shape)} but the operator measures {tuple(A.out_shape)}; "
                         "make b with dipcourse.operators.measure(A, x, sigma)")


def _check_rho(rho):
    if not rho > 0:
        raise ValueError(f"rho must be positive (the thesis uses rho = 1), got {rho!r}")


def _network(A, b, net, z, seed):
    """G and z as :func:`dipcourse.dip.fit_dip` builds them (same seed, same θ₀ and z), on b's device."""
    net, z = prepare_network(A.in_shape, net=net, z=z, seed=seed)
    return to_device(net, z, b.device)


def record_iteration(tracker, t, A, b, reg, g, x=None, prox_calls=0, ref=None):
    """Log iteration t: loss (36) and PSNRs of G(θ_t) (via the Tracker), PSNR of x_t, prox calls."""
    g = g.detach()
    data = float(data_term(A, b, g))
    scalars = {"loss": data + (float(reg(g)) if reg is not None else 0.0), "data": data,
               "prox_calls": prox_calls}
    if ref is not None and x is not None:
        scalars["psnr_x"] = psnr(ref, x)
    tracker.step(t, g, **scalars)


# ----------------------------------------------------------------------------------------------
# Algorithm 1: DIP-ADMM-v1
# ----------------------------------------------------------------------------------------------

def ista_x_step(A, b, prox, x, g, u, rho, inner):
    """The x-step of DIP-ADMM-v1: ``inner`` ISTA iterations (29) on L⁽¹⁾ρ(·, θ_t, u_t).

    The x-part of (27), ½‖b − Ax‖² + R(x) + ρ/2‖x − G(θ_t) + u_t‖², has the smooth gradient
    Aᵀ(Ax − b) + ρ(x − G(θ_t) + u_t), whose Lipschitz constant is L = ‖AᵀA‖ + ρ. ISTA (29) takes

        x ← prox_{R/L}( x − (1/L) [Aᵀ(Ax − b) + ρ(x − G(θ_t) + u_t)] ),

    starting from x = x_t (Algorithm 1, lines 7–12). ``prox(v, L)`` is prox_{R/L}(v).
    """
    L = A.norm_sq + rho
    for _ in range(inner):
        grad = A.adjoint(A.forward(x) - b) + rho * (x - g + u)
        x = prox(x - grad / L, L)
    return x


def dip_admm_v1(A, b, prox, iters, rho=1.0, inner=5, lr=1e-3, ref=None, seed=0, net=None, z=None,
                callback=None, progress=True):
    """DIP-ADMM-v1 (Algorithm 1) on problem (24), with the augmented Lagrangian (27)

        L⁽¹⁾ρ(x, θ, u) = ½‖b − Ax‖² + R(x) + ρ/2‖x − G(θ) + u‖² − ρ/2‖u‖².

    Each iteration t performs the steps (28):

        line 2:  x_{t+1} = ISTA(x_t, N, L⁽¹⁾ρ, R)  — ``inner`` = N iterations of (29), see :func:`ista_x_step`
        line 3:  θ_{t+1} = one Adam step on θ ↦ ρ/2‖x_{t+1} − G(θ) + u_t‖²   (the θ-part of (27))
        line 4:  u_{t+1} = u_t + (x_{t+1} − G(θ_{t+1}))

    so it calls the prox N times per iteration. Note that in v1 the data b reaches the network only
    through x: θ chases x, x chases b.

    Args:
        A: a forward operator from :mod:`dipcourse.operators`.
        b: the measurement, shape ``A.out_shape``.
        prox: ``prox(v, rho) = prox_{R/ρ}(v)`` from :func:`dipcourse.priors.make_prox`, or a name.
        iters: number of ADMM iterations T.
        rho: penalty ρ (thesis §3.3: 1).
        inner: ISTA iterations N in the x-step (the thesis compares N = 1, 5, 10 in Fig 1).
        lr: Adam learning rate β for θ (thesis §3.3: 0.001).
        ref: ground truth, only for the PSNR columns of the history.
        seed: seeds the network's weights and input.
        net, z: a network and its input; default :class:`dipcourse.dip.SkipNet` and
            :func:`dipcourse.dip.make_input` with the thesis's settings. ``net`` is trained in place.
        callback: ``callback(t, state)`` after each iteration with ``state`` = dict(x=x, u=u, g=G(θ),
            net=net); returning ``True`` stops the run.
        progress: show a progress bar.
    """
    _check_common(A, b, iters, lr)
    _check_rho(rho)
    if not isinstance(inner, int) or inner < 1:
        raise ValueError(f"inner (ISTA iterations per x-step) must be an integer >= 1, got {inner!r}")
    prox = resolve_prox(prox)
    counter = CountingProx(prox)
    reg = regularizer(prox)
    net, z = _network(A, b, net, z, seed)
    optimizer = adam(net.parameters(), lr, b.device)
    tracker = Tracker(ref, params=dict(algorithm="DIP-ADMM-v1", rho=rho, inner=inner, lr=lr,
                                       iters=iters, seed=seed))
    g = net(z)[0]                      # G(θ_0), its graph kept for the first θ-step
    x = g.detach().clone()             # x_0 = G(θ_0)
    u = torch.zeros_like(x)            # u_0 = 0
    for t in trange(iters, disable=not progress, desc="DIP-ADMM-v1"):
        x = ista_x_step(A, b, counter, x, g.detach(), u, rho, inner)          # line 2
        optimizer.zero_grad()
        (0.5 * rho * torch.sum((x - g + u) ** 2)).backward()                  # line 3
        optimizer.step()
        g = net(z)[0]
        u = u + (x - g.detach())                                              # line 4
        record_iteration(tracker, t + 1, A, b, reg, g, x, counter.calls, ref)
        if callback is not None and callback(t + 1, dict(x=x, u=u, g=g.detach(), net=net)):
            break
    return tracker.result(g, loss=loss_note(reg))


# ----------------------------------------------------------------------------------------------
# Algorithm 2: DIP-ADMM-v2
# ----------------------------------------------------------------------------------------------

def dip_admm_v2(A, b, prox, iters, rho=1.0, lr=1e-3, ref=None, seed=0, net=None, z=None,
                callback=None, progress=True):
    """DIP-ADMM-v2 (Algorithm 2) on problem (25), with the augmented Lagrangian (30)

        L⁽²⁾ρ(x, θ, u) = ½‖b − AG(θ)‖² + R(x) + ρ/2‖x − G(θ) + u‖² − ρ/2‖u‖².

    Each iteration t performs the steps (31):

        line 2:  x_{t+1} = prox_{R/ρ}(G(θ_t) − u_t)                        — one prox call
        line 3:  θ_{t+1} = one Adam step on θ ↦ ½‖b − AG(θ)‖² + ρ/2‖x_{t+1} − G(θ) + u_t‖²
        line 4:  u_{t+1} = u_t + (x_{t+1} − G(θ_{t+1}))

    The x-step is exact, so unlike v1 no inner loop is needed (§3.2.2). Arguments as in
    :func:`dip_admm_v1` (without ``inner``); defaults from §3.3.
    """
    _check_common(A, b, iters, lr)
    _check_rho(rho)
    prox = resolve_prox(prox)
    counter = CountingProx(prox)
    reg = regularizer(prox)
    net, z = _network(A, b, net, z, seed)
    optimizer = adam(net.parameters(), lr, b.device)
    tracker = Tracker(ref, params=dict(algorithm="DIP-ADMM-v2", rho=rho, lr=lr, iters=iters, seed=seed))
    g = net(z)[0]                      # G(θ_0)
    u = torch.zeros_like(g.detach())   # u_0 = 0
    for t in trange(iters, disable=not progress, desc="DIP-ADMM-v2"):
        x = counter(g.detach() - u, rho)                                       # line 2
        optimizer.zero_grad()
        (data_term(A, b, g) + 0.5 * rho * torch.sum((x - g + u) ** 2)).backward()  # line 3
        optimizer.step()
        g = net(z)[0]
        u = u + (x - g.detach())                                               # line 4
        record_iteration(tracker, t + 1, A, b, reg, g, x, counter.calls, ref)
        if callback is not None and callback(t + 1, dict(x=x, u=u, g=g.detach(), net=net)):
            break
    return tracker.result(g, loss=loss_note(reg))


# ----------------------------------------------------------------------------------------------
# Gradient descent on the explicit loss (36)
# ----------------------------------------------------------------------------------------------

def dip_tv_gd(A, b, iters, lam=0.01, lr=1e-3, ref=None, seed=0, net=None, z=None, callback=None,
              progress=True):
    """Adam on the explicit loss (36), L(θ) = ½‖b − AG(θ)‖² + λ‖G(θ)‖_TV, TV anisotropic, via autograd.

    The reference method of thesis Fig 1: no splitting and no prox, which is possible only because
    TV has an explicit formula (a denoiser would not). λ = 0.01 and lr = 0.001 as in §3.3/(36).
    Arguments as in :func:`dip_admm_v1`; the history has no ``"psnr_x"`` (there is no x) and
    ``"prox_calls"`` stays 0.
    """
    _check_common(A, b, iters, lr)
    if not lam >= 0:
        raise ValueError(f"lam (the TV weight of loss (36)) must be >= 0, got {lam!r}")

    def reg(x):
        """R(x) = λ‖x‖_TV, the prior term of loss (36)."""
        return lam * tv_norm(x)

    net, z = _network(A, b, net, z, seed)
    optimizer = adam(net.parameters(), lr, b.device)
    tracker = Tracker(ref, params=dict(algorithm="GD on (36)", lam=lam, lr=lr, iters=iters, seed=seed))
    g = net(z)[0]
    for t in trange(iters, disable=not progress, desc="GD on (36)"):
        optimizer.zero_grad()
        (data_term(A, b, g) + reg(g)).backward()                      # loss (36)
        optimizer.step()
        g = net(z)[0]
        record_iteration(tracker, t + 1, A, b, reg, g, ref=ref)
        if callback is not None and callback(t + 1, dict(g=g.detach(), net=net)):
            break
    return tracker.result(g, loss=loss_note(reg))

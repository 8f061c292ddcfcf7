"""Deep image prior with an extra prior R, solved by ADMM (thesis §3.2, Algorithms 1 and 2).

The thesis adds a regulariser R to DIP's constrained problem (23) in two ways,

    (24)  min_{θ,x} ½‖b − Ax‖² + R(x)       s.t. x = G(θ)      → DIP-ADMM-v1, :func:`dip_admm_v1`
    (25)  min_{θ,x} ½‖b − AG(θ)‖² + R(x)    s.t. x = G(θ)      → DIP-ADMM-v2, :func:`dip_admm_v2`

and compares both with plain gradient descent on the explicit loss (36), :func:`dip_tv_gd`,

    (36)  L(θ) = ½‖b − AG(θ)‖² + 0.01‖G(θ)‖_TV .

Both ADMM variants only need R through its proximal operator, so a denoiser (NLM, BM3D) can stand in
for it (§3.2.4). Priors are ``prox(v, rho) = prox_{R/ρ}(v)`` callables from
:func:`dipcourse.priors.make_prox` (or a prior's name, passed on to it). DeepRED (§2.3.2, eq. 12,
:func:`deep_red`) is DIP-ADMM-v2's loop with RED's regulariser (eq. 21) in place of R.

Settings (§3.3): ρ = 1, one Adam step with learning rate 0.001 for θ, dual step 1, u₀ = 0, a fixed
noise input z. The thesis does not state x₀; we start from x₀ = G(θ₀), the network's first output.

Each loop is written once for K problems and their K networks (``networks()`` returns K images; K = 1
for the functions below, K > 1 for :func:`dipcourse.batched.fit_many`); the prox runs image by image.
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

The callback sees ``it.state = {"x": x_t, "u": u_t, "g": G(θ_t), "net": the network}``.
"""
import torch

from dipcourse import checks
from dipcourse.metrics import psnr_at_peak
from dipcourse.operators import data_term
from dipcourse.priors import fresh, make_prox, red_prox, regularizer, tv_norm
from dipcourse.runs import Run
from dipcourse.solvers import loss_note
from dipcourse.training import Problem, SingleNetwork, adam, data_terms, prepare_network, run_device


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


def resolve_prox(prox, where="the prior", name="prox", arguments=2,
                 hint="pass prox(v, rho) or a prior's name such as 'tv'; build one with dipcourse.priors.make_prox"):
    """Return ``prox`` itself, checked to be callable with ``arguments`` positional arguments (a prox(v, rho):
    2; a denoiser f(x), DeepRED's: 1), or ``make_prox(prox)`` for a prior's name."""
    if isinstance(prox, str):
        return make_prox(prox)  # raises for unknown names and missing backends
    return checks.function(prox, name, where, hint=hint, arguments=arguments)


# ----------------------------------------------------------------------------------------------
# Shared set-up and bookkeeping
# ----------------------------------------------------------------------------------------------

def admm_options(where, *, iters, lr, seed, callback, progress, snapshots, rho=None):
    """The settings every ADMM-style run checks (one place for the functions here and the batched runner)."""
    options = dict(iters=checks.iters(iters, where), lr=checks.lr(lr, where),
                   callback=None if callback is None else checks.function(callback, "callback", where),
                   progress=checks.flag(progress, "progress", where),
                   snapshots=tuple(checks.integer(t, "snapshots", where, minimum=0) for t in snapshots))
    if rho is not None:
        options["rho"] = checks.rho(rho, where)
    checks.seed(seed, where)
    return options


def single_network(where, problem, net, z, seed, device, net_kwargs):
    """G and z as :func:`dipcourse.dip.fit_dip` builds them (same seed, same θ₀ and z) as a K = 1 run."""
    dev = run_device(device, net, where)
    net, z = prepare_network(problem.shape, net=net, z=z, seed=seed, dtype=problem.b.dtype, **(net_kwargs or {}))
    return SingleNetwork(net, z, dev)


def make_run(name, problems, networks, params, options, seeds):
    """The :class:`dipcourse.runs.Run` of an ADMM-style loop: iterations 1..T, one tracker per problem."""
    params = dict(params, lr=options["lr"], iters=options["iters"], seed=seeds[0] if len(seeds) == 1 else seeds,
                  net=dict(getattr(networks.network(0), "config", {})))
    label = name if len(problems) == 1 else f"{name} ×{len(problems)}"
    return Run(label, [p.ref for p in problems], options["iters"], params=params, callback=options["callback"],
               progress=options["progress"], snapshots=options["snapshots"], first=1,
               hint="Lower the learning rate lr (the thesis uses 0.001) or check the prior's settings.")


def record_iteration(run, t, problems, reg, g, networks, x=None, u=None, counters=None):
    """Log iteration t for each run: loss (36) and PSNRs of G(θ_t), PSNR of x_t, prox calls so far."""
    g = g.detach()
    data = [float(data_term(p.A, p.b, gk)) for p, gk in zip(problems, g)]
    values = {"loss": [d + (float(reg(gk)) if reg is not None else 0.0) for d, gk in zip(data, g)],
              "data": data,
              "prox_calls": [c.calls for c in counters] if counters else 0}
    if x is not None and all(tracker.ref is not None for tracker in run.trackers):
        # the run's trackers hold each reference with its peak, taken once for the PSNRs of G(θ_t)
        values["psnr_x"] = [psnr_at_peak(tracker.ref, xk, tracker.peak) for tracker, xk in zip(run.trackers, x)]
    state = {"g": list(g), "net": [networks.network(k) for k in range(len(problems))]}
    if x is not None:
        state.update(x=list(x), u=list(u))
    return run.record(t, g, state=state, **values)


def theta_step(optimizer, loss):
    """Line 3 of Algorithms 1 and 2: one Adam step on θ for the θ-part of the augmented Lagrangian."""
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def prox_each(run, t, counters, v, rho, name):
    """x_k = prox_{R/ρ}(v_k) for each image k (the denoisers work on one image at a time), each checked by the
    run at iteration t: a prox passed in that returns NaN or another shape stops the run, by ``name``."""
    return torch.stack([run.check_output(t, k, name, counter(vk, rho), vk)
                        for k, (counter, vk) in enumerate(zip(counters, v))])


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


def ista_each(run, t, problems, counters, x, g, u, rho, inner):
    """Line 2 of Algorithm 1 for each image k: ``inner`` ISTA iterations (:func:`ista_x_step`). Every prox call
    is checked by the run at iteration t, so a prox passed in that returns NaN or another shape stops the run
    by name, at the call that went wrong."""
    def checked(k, counter):
        return lambda v, L: run.check_output(t, k, "the x-step's prox(v, rho)", counter(v, L), v)

    return torch.stack([ista_x_step(p.A, p.b, checked(k, c), xk, gk, uk, rho, inner)
                        for k, (p, c, xk, gk, uk) in enumerate(zip(problems, counters, x, g, u))])


def dip_admm_v1(A, b, prox, iters, rho=1.0, inner=5, lr=1e-3, ref=None, seed=0, net=None, z=None,
                callback=None, progress=True, device=None, net_kwargs=None, snapshots=()):
    """DIP-ADMM-v1 (Algorithm 1) on problem (24), with the augmented Lagrangian (27)

        L⁽¹⁾ρ(x, θ, u) = ½‖b − Ax‖² + R(x) + ρ/2‖x − G(θ) + u‖² − ρ/2‖u‖².

    Each iteration t performs the steps (28) (:func:`admm_v1_steps`):

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
        net, z: a network and its input; default :class:`dipcourse.dip.SkipNet` and its input with the
            thesis's settings (or ``net_kwargs``). ``net`` is trained in place.
        callback: ``callback(it)`` after each iteration (:class:`dipcourse.runs.Iterate`, with
            ``it.state`` = x, u, g, net); returning ``True`` stops the run.
        progress: show a progress bar.
        device: where to train (default: the network's device, else the CPU).
        net_kwargs: settings of the default network.
        snapshots: iterations whose G(θ_t) to keep in ``Result.snapshots``.
    """
    where = "dip_admm_v1"
    problem = Problem.checked(where, A, b, ref)
    options = admm_options(where, iters=iters, lr=lr, seed=seed, callback=callback, progress=progress,
                           snapshots=snapshots, rho=rho)
    inner = checks.integer(inner, "inner", where, minimum=1, hint="the ISTA iterations N per x-step (thesis: 1, 5, 10)")
    prox = resolve_prox(prox, where)
    networks = single_network(where, problem, net, z, seed, device, net_kwargs)
    return admm_v1_steps([problem], networks, [seed], prox, inner=inner, **options)[0]


def admm_v1_steps(problems, networks, seeds, prox, *, iters, rho, inner, lr, callback=None, progress=True,
                  snapshots=()):
    """Algorithm 1's loop for K problems and their networks; returns one Result per problem."""
    counters = [CountingProx(fresh(prox)) for _ in problems]
    reg = regularizer(prox)
    optimizer = adam(networks.parameters(), lr, networks.device)
    run = make_run("DIP-ADMM-v1", problems, networks, dict(algorithm="DIP-ADMM-v1", rho=rho, inner=inner),
                   dict(iters=iters, lr=lr, callback=callback, progress=progress, snapshots=snapshots), seeds)
    g = networks()                     # G(θ_0), its graph kept for the first θ-step
    x = g.detach().clone()             # x_0 = G(θ_0)
    u = torch.zeros_like(x)            # u_0 = 0
    for t in run:
        x = ista_each(run, t, problems, counters, x, g.detach(), u, rho, inner)              # line 2
        theta_step(optimizer, 0.5 * rho * torch.sum((x - g + u) ** 2))                      # line 3
        g = networks()
        u = u + (x - g.detach())                                                             # line 4
        if record_iteration(run, t, problems, reg, g, networks, x, u, counters):
            break
    return run.results(g.detach(), loss=loss_note(reg, "G"))


# ----------------------------------------------------------------------------------------------
# Algorithm 2: DIP-ADMM-v2
# ----------------------------------------------------------------------------------------------

def dip_admm_v2(A, b, prox, iters, rho=1.0, lr=1e-3, ref=None, seed=0, net=None, z=None,
                callback=None, progress=True, device=None, net_kwargs=None, snapshots=()):
    """DIP-ADMM-v2 (Algorithm 2) on problem (25), with the augmented Lagrangian (30)

        L⁽²⁾ρ(x, θ, u) = ½‖b − AG(θ)‖² + R(x) + ρ/2‖x − G(θ) + u‖² − ρ/2‖u‖².

    Each iteration t performs the steps (31) (:func:`admm_v2_steps`):

        line 2:  x_{t+1} = prox_{R/ρ}(G(θ_t) − u_t)                        — one prox call
        line 3:  θ_{t+1} = one Adam step on θ ↦ ½‖b − AG(θ)‖² + ρ/2‖x_{t+1} − G(θ) + u_t‖²
        line 4:  u_{t+1} = u_t + (x_{t+1} − G(θ_{t+1}))

    The x-step is exact, so unlike v1 no inner loop is needed (§3.2.2). Arguments as in
    :func:`dip_admm_v1` (without ``inner``); defaults from §3.3.
    """
    where = "dip_admm_v2"
    problem = Problem.checked(where, A, b, ref)
    options = admm_options(where, iters=iters, lr=lr, seed=seed, callback=callback, progress=progress,
                           snapshots=snapshots, rho=rho)
    prox = resolve_prox(prox, where)
    networks = single_network(where, problem, net, z, seed, device, net_kwargs)
    return admm_v2_steps([problem], networks, [seed], prox, **options)[0]


def admm_v2_steps(problems, networks, seeds, prox, *, iters, rho, lr, callback=None, progress=True,
                  snapshots=(), name="DIP-ADMM-v2", params=None, prox_name="x = prox(v, rho)"):
    """Algorithm 2's loop for K problems and their networks; returns one Result per problem. ``prox_name`` is
    what a message calls the x-step when the prox returns NaN or another shape."""
    counters = [CountingProx(fresh(prox)) for _ in problems]
    reg = regularizer(prox)
    optimizer = adam(networks.parameters(), lr, networks.device)
    run = make_run(name, problems, networks, dict(params or {}, algorithm=name, rho=rho),
                   dict(iters=iters, lr=lr, callback=callback, progress=progress, snapshots=snapshots), seeds)
    g = networks()                     # G(θ_0)
    u = torch.zeros_like(g.detach())   # u_0 = 0
    for t in run:
        x = prox_each(run, t, counters, g.detach() - u, rho, prox_name)                      # line 2
        theta_step(optimizer, data_terms(problems, g).sum() + 0.5 * rho * torch.sum((x - g + u) ** 2))  # line 3
        g = networks()
        u = u + (x - g.detach())                                                             # line 4
        if record_iteration(run, t, problems, reg, g, networks, x, u, counters):
            break
    return run.results(g.detach(), loss=loss_note(reg, "G"))


# ----------------------------------------------------------------------------------------------
# Gradient descent on the explicit loss (36)
# ----------------------------------------------------------------------------------------------

def dip_tv_gd(A, b, iters, lam=0.01, lr=1e-3, ref=None, seed=0, net=None, z=None, callback=None,
              progress=True, device=None, net_kwargs=None, snapshots=()):
    """Adam on the explicit loss (36), L(θ) = ½‖b − AG(θ)‖² + λ‖G(θ)‖_TV, TV anisotropic, via autograd.

    The reference method of thesis Fig 1: no splitting and no prox, which is possible only because
    TV has an explicit formula (a denoiser would not). λ = 0.01 and lr = 0.001 as in §3.3/(36).
    Arguments as in :func:`dip_admm_v1`; the history has no ``"psnr_x"`` (there is no x) and
    ``"prox_calls"`` stays 0.
    """
    where = "dip_tv_gd"
    problem = Problem.checked(where, A, b, ref)
    options = admm_options(where, iters=iters, lr=lr, seed=seed, callback=callback, progress=progress,
                           snapshots=snapshots)
    lam = checks.lam(lam, where)

    def reg(x):
        """R(x) = λ‖x‖_TV, the prior term of loss (36)."""
        return lam * tv_norm(x)

    networks = single_network(where, problem, net, z, seed, device, net_kwargs)
    optimizer = adam(networks.parameters(), options["lr"], networks.device)
    run = make_run("GD on (36)", [problem], networks, dict(algorithm="GD on (36)", lam=lam), options, [seed])
    g = networks()
    for t in run:
        theta_step(optimizer, data_terms([problem], g).sum() + torch.stack([reg(gk) for gk in g]).sum())  # (36)
        g = networks()
        if record_iteration(run, t, [problem], reg, g, networks):
            break
    return run.results(g.detach(), loss=loss_note(reg, "G"))[0]


# ----------------------------------------------------------------------------------------------
# DeepRED: DIP with RED's regulariser (eq. 12, 21-22)
# ----------------------------------------------------------------------------------------------

def deep_red(A, b, denoiser, iters, lam=1.0, rho=1.0, inner=1, refresh_every=10, lr=1e-3, ref=None, seed=0,
             net=None, z=None, callback=None, progress=True, device=None, net_kwargs=None, snapshots=()):
    """DeepRED (Mataev, Elad & Milanfar 2019; thesis eq. 12): DIP with RED's regulariser (eq. 21),

        min_{θ,x} ½‖b − AG(θ)‖² + (λ/2) xᵀ(x − f(x))   s.t. x = G(θ),

    by the ADMM of DIP-ADMM-v2 (:func:`admm_v2_steps`: θ-step, x-step, dual step u ← u + x − G(θ)), with
    one change: RED's x-step has no closed form, so it is solved by fixed-point steps
    (:func:`dipcourse.priors.red_prox`),

        x ← (λ f(x) + ρ v) / (λ + ρ),   v = G(θ_t) − u_t,

    which set the gradient λ(x − f(x)) + ρ(x − v) of the x-problem to zero using RED's gradient
    x − f(x) (eq. 22). The thesis (§2.3.2) contrasts this x-step, an inner loop calling the denoiser
    several times per iteration, with DIP-ADMM-v2's single prox call; DeepRED's public code makes one
    step per iteration and recomputes f only every 10 (the defaults ``inner=1, refresh_every=10``;
    ``inner=3, refresh_every=1`` is the thesis's reading). DeepRED's code uses λ = μ = 0.5 (its β and μ)
    with a weak NLM (σ_f = 3/255); λ = ρ = 1 here (lesson 07 measures the settings). ``denoiser`` is f: a
    callable on a (C, H, W) image (e.g. ``make_prox("nlm", ...)``, called with its default ρ) or a prior's
    name for ``make_prox``. Other arguments as in :func:`dip_admm_v2`; ``prox_calls`` counts x-steps (the
    denoiser runs ⌈x-steps · inner / refresh_every⌉ times).

    Where DeepRED's code (``GaryMataev/DeepRED``, ``train_via_admm``) differs, besides the inner loop: its
    θ-step comes first (θ, then x from the new G, then u), its dual has the opposite sign (u ← u + G − x), it
    starts from x₀ = b, jitters the input (0.033), clips x to [0, 1], raises λ and μ by 0.03 whenever
    PSNR(G, b) passes a threshold, and returns a 0.99 running average of G. Here: Algorithm 2's order and
    signs, x₀ = G(θ₀) − u₀, a fixed input, fixed λ and ρ, the image G(θ_T).
    """
    where = "deep_red"
    problem = Problem.checked(where, A, b, ref)
    options = admm_options(where, iters=iters, lr=lr, seed=seed, callback=callback, progress=progress,
                           snapshots=snapshots, rho=rho)
    denoiser = resolve_prox(denoiser, where, "denoiser", arguments=1,
                            hint="pass f(x), a denoiser, or a prior's name such as 'nlm'")
    prox = red_prox(denoiser, lam=lam, inner=inner, refresh_every=refresh_every, where=where)
    networks = single_network(where, problem, net, z, seed, device, net_kwargs)
    return admm_v2_steps([problem], networks, [seed], prox, name="DeepRED", **options,
                         params={key: prox.params[key] for key in ("lam", "inner", "refresh_every")},
                         prox_name="RED's x-step with the denoiser")[0]

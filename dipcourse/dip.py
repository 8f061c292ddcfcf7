"""Deep image prior (§2.3, eq. 10): an untrained encoder–decoder fitted to one measurement.

DIP solves  min_θ ½‖b − A G(z; θ)‖²  (eq. 10 with x = G(z; θ)): the input z is fixed random noise,
only the weights θ are trained, and the convolutional structure of G is the prior. Fitted long
enough, G reproduces the noise in b too (overfitting, thesis §1 and Fig 2), so the run must be
stopped early — by the oracle (peak PSNR, needs the ground truth) or by a detector that does not
see it, such as :class:`WMVStopper`.

Contents:

* :func:`fit_dip` — Adam on ½‖b − A G(z; θ)‖², returning a :class:`dipcourse.Result`; its options are
  the remedies of thesis §2.3.2–2.3.3 that change the loss or the optimiser: a prior on the weights
  (eq. 13, ``weight_decay``), SGLD (eq. 14, ``optimizer="sgld"``) and SURE (eq. 15–17, ``loss="sure"``);
* :func:`dip_steps` — the loop itself, written once for one network or K networks side by side;
* :class:`WMVStopper` — early stopping by windowed moving variance (ES-WMV, Wang et al., TMLR 2023);
* the networks :class:`SkipNet`, :func:`make_input` (from :mod:`dipcourse.networks`).
"""
import math
from collections import deque

import torch

from dipcourse import checks
from dipcourse.metrics import psnr
from dipcourse.networks import THESIS_CHANNELS, SkipNet, make_input
from dipcourse.runs import Run
from dipcourse.training import (SGLD, InputJitter, Problem, SingleNetwork, adam, data_terms, graphed,
                                prepare_network, run_device)

__all__ = ["THESIS_CHANNELS", "SkipNet", "WMVStopper", "dip_steps", "fit_dip", "make_input"]

LOSSES = ("data", "sure")
OPTIMIZERS = ("adam", "sgld")


# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------

def fit_dip(A, b, iters, net=None, z=None, lr=1e-3, ref=None, seed=0, callback=None, reg_noise_std=0.0,
            smoothing=0.9, device=None, progress=True, cuda_graph=False, in_channels=32, net_kwargs=None,
            snapshots=(), loss="data", sigma=None, optimizer="adam", weight_decay=0.0, weight_noise=0.0,
            burn_in=0, stopper=None):
    """Fit the deep image prior to the measurement ``b``: Adam on ½‖b − A G(z; θ)‖² (eq. 10).

    Each iteration t = 0, 1, …, iters−1 (see :func:`dip_steps`):

        1. x_t = G(z + s·η_t; θ_t), η_t ~ N(0, I) fresh noise ("input jitter", DIP's ``reg_noise_std`` = s;
           s = 0 keeps z fixed, as in the thesis)
        2. loss_t = ½‖b − A x_t‖²                      (the thesis's sum, not DIP's mean; Adam barely cares)
        3. θ_{t+1} = Adam step on ∇_θ loss_t          (lr 0.001 as in §3.3)
        4. record x_t: loss, PSNR of x_t and of r_t = 0.9 r_{t−1} + 0.1 x_t (§4.2) when ``ref`` is given

    The recorded image x_t is the output of the forward pass that produced the gradient (no extra
    forward pass), as in the original DIP code; ``Result.x`` is the last one.

    Remedies for the overfitting that change the loss or the optimiser (lesson 07; thesis §2.3.2–2.3.3):

    * ``weight_decay`` = λ adds λ‖θ‖² to the loss: the prior on the weights of eq. (13),
      λ_L(θ − μ)ᵀΣ⁻¹(θ − μ), with μ = 0, Σ = I and λ_TV = 0, i.e. L2 regularisation of every weight (biases and
      BatchNorm scales too). With Adam it is Adam's own ``weight_decay = 2λ`` (the gradient of λ‖θ‖² is 2λθ;
      torch's Adam adds w·θ to the gradient — not AdamW's decoupled decay), one fused pass instead of an extra
      autograd term. Default 0 (off). The thesis's ref [34] learns μ and Σ from a set of measurements; the
      lesson uses the data-free μ = 0, Σ = I case the thesis names.
    * ``optimizer="sgld"``: step 3 becomes the Langevin step of eq. (14), θ ← θ − (ε/2)∇L + η, η ~ N(0, εI),
      with ε = ``lr`` (:class:`dipcourse.training.SGLD`; Welling & Teh 2011) and L = ½‖b − AG‖²/σ² + λ‖θ‖².
      Eq. (14) writes σ = 1; pass ``sigma`` for the likelihood of noise of that level (with σ = 1 the noise
      N(0, ε) swamps a drift that is ~σ² too small). The iterates are posterior samples, and from iteration
      ``burn_in`` on their running mean is the estimate: ``Result.extras["posterior_mean"]`` and, with
      ``ref``, the history column ``"psnr_mean"``.
    * ``weight_noise`` = s > 0: after every Adam step, N(0, s²) is added to every convolution kernel
      (:class:`KernelNoise`) — the form in which Cheng et al. (CVPR 2019, the thesis's [9]) ran SGLD for DIP in
      their code (``ZezhouCheng/GP-DIP``, ``Image_Denoising.ipynb``: Adam lr 0.01, s = 2·lr = 0.02, input
      jitter 1/30, burn-in 7,000 of 20,000 iterations; "closer to preconditioned SGLD", the authors say in
      the repository's issue #1). It differs from eq. (14): Adam's preconditioned step instead of −(ε/2)∇L, a
      noise whose standard deviation is proportional to the step (not √ε), on the kernels only, and a mean
      squared error without 1/σ². The running mean from ``burn_in`` on is recorded as for SGLD. Default 0.
    * ``loss="sure"`` (denoising only, A = I, noise level ``sigma`` > 0 known): the network's input is the noisy
      image itself, G(b; θ) (with a fixed noise input z the divergence would be 0 and SURE the data loss), and
      step 2 minimises Stein's unbiased risk estimate (17), ½‖b − G(b; θ)‖² + σ² div_b G(b; θ), the
      divergence estimated by Monte Carlo with one fresh direction per iteration and δ = 10⁻³
      (:class:`SureLoss`; Metzler et al.'s code, ``ricedsp/D-AMP_Toolbox``, ``SURE_deep_image_prior``, which
      trains with Adam lr 0.001 and no input jitter). Eq. (17) is eq. (16) times N/2 less a constant.

        Args:
        A: operator from :mod:`dipcourse.operators` (``.forward``, ``.in_shape``, ``.out_shape``).
        b: the measurement, a tensor of shape ``A.out_shape``.
        iters: number of steps (≥ 1).
        net: a network (:class:`SkipNet`, :class:`dipcourse.networks.DeepDecoder`, …); trained in place, so
            the caller keeps the fitted network. Default: the network of ``net_kwargs`` seeded by ``seed`` — the
            thesis SkipNet when ``net_kwargs`` is empty.
        z: input of shape (1, *net.input_shape(H, W)). Default: the network's own (seeded) input.
        lr: learning rate (Adam; thesis 0.001, the DIP notebooks use 0.01), or SGLD's step ε.
        ref: ground truth for PSNR reporting only; the fit never sees it.
        seed: seeds the default network, its input, the jitter and the random draws of SGLD and SURE; same
            seed, same device and thread count → the same history.
        callback: ``callback(it)`` with a :class:`dipcourse.runs.Iterate` after each iteration; return
            ``True`` to stop (stop button, early stopping).
        reg_noise_std: standard deviation s of the input jitter (DIP uses 1/30 for denoising; 0 here).
        smoothing: factor of the running average r ← smoothing·r + (1 − smoothing)·x (thesis 0.9).
        device: ``"cpu"``, ``"cuda"``, … Default: the network's device when ``net`` is given, else the CPU;
            pass ``dipcourse.config.default_device()`` to use a GPU when there is one.
        progress: show a progress bar.
        cuda_graph: CUDA only: record one whole iteration in a CUDA graph and replay it
            (:func:`dipcourse.training.graphed`), which removes the kernel-launch cost that dominates small
            images on a GPU. Adam and the data loss only.
        in_channels: channels of the default network's input (DIP: 32; with ``loss="sure"``, C).
        net_kwargs: settings of the default network (:func:`dipcourse.networks.build_network`), e.g.
            ``dict(ns=[4] * 5)``, or ``dict(kind="deep decoder", channels=16, depth=3)`` for a deep decoder.
        snapshots: iterations whose image to keep in ``Result.snapshots`` (thesis Fig 5).
        loss: ``"data"`` (eq. 10) or ``"sure"`` (eq. 17).
        sigma: the noise level, for ``loss="sure"``.
        optimizer: ``"adam"`` (§3.3) or ``"sgld"`` (eq. 14).
        weight_decay: λ ≥ 0 of the prior λ‖θ‖² (eq. 13 with μ = 0, Σ = I).
        weight_noise: standard deviation s of the noise added to the kernels after each step (0: none).
        burn_in: SGLD and weight noise: the first iteration whose sample enters the posterior mean.
        stopper: a :class:`WMVStopper` fed every iterate; it ends the run when it fires if it was made
            with ``stop=True``. It stays in ``Result.extras["stopper"]`` with its choice.

    Returns:
        :class:`dipcourse.Result` with history keys ``iteration``, ``loss``, ``time_cpu``, ``time_wall``
        and, with ``ref``, ``psnr`` and ``psnr_smoothed``; ``params`` holds the settings and
        ``stopped_at`` (the iteration a callback or the stopper stopped at, else ``None``).
    """
    where = "fit_dip"
    problem = Problem.checked(where, A, b, ref)
    options = dip_options(where, iters=iters, lr=lr, seed=seed, reg_noise_std=reg_noise_std, smoothing=smoothing,
                          progress=progress, cuda_graph=cuda_graph, callback=callback, snapshots=snapshots,
                          loss=loss, sigma=sigma, optimizer=optimizer, weight_decay=weight_decay,
                          weight_noise=weight_noise, burn_in=burn_in)
    dev = run_device(device, net, where)
    if options["cuda_graph"] and dev.type != "cuda":
        raise ValueError("fit_dip: cuda_graph=True needs a CUDA device (device='cuda'); on the CPU leave it False")
    if loss == "sure":
        z, in_channels = sure_input(where, problem, z), problem.shape[0]
    net, z = prepare_network(problem.shape, net=net, z=z, seed=seed, dtype=b.dtype,
                             **{"in_channels": in_channels, **(net_kwargs or {})})
    networks = SingleNetwork(net, z, dev)
    if stopper is not None and not isinstance(stopper, WMVStopper):
        raise TypeError(f"fit_dip: stopper must be a WMVStopper, got {type(stopper).__name__}")
    return dip_steps([problem], networks, [seed], stoppers=[stopper], **options)[0]


def dip_options(where, *, iters, lr, seed, reg_noise_std, smoothing, progress, cuda_graph, callback, snapshots,
                loss, sigma, optimizer, weight_decay, weight_noise, burn_in):
    """The settings of a DIP run, checked (one place for :func:`fit_dip` and the batched runner)."""
    if optimizer == "sgld":
        lr = checks.positive(lr, "lr", where, hint="with optimizer='sgld', lr is the step ε of eq. (14), the "
                                                  "variance of the Langevin noise N(0, ε): it must be > 0")
    options = dict(
        iters=checks.iters(iters, where),
        lr=checks.lr(lr, where),
        reg_noise_std=checks.nonnegative(reg_noise_std, "reg_noise_std", where,
                                         hint="DIP uses 1/30 for denoising"),
        smoothing=checks.number(smoothing, "smoothing", where, minimum=0, maximum=1, strict_max=True,
                                hint="the thesis's running average uses 0.9"),
        progress=checks.flag(progress, "progress", where),
        cuda_graph=checks.flag(cuda_graph, "cuda_graph", where),
        callback=None if callback is None else checks.function(callback, "callback", where),
        snapshots=tuple(checks.integer(t, "snapshots", where, minimum=0) for t in snapshots),
        loss=checks.choice(loss, "loss", where, LOSSES),
        sigma=None if sigma is None else checks.sigma(sigma, where),
        optimizer=checks.choice(optimizer, "optimizer", where, OPTIMIZERS),
        weight_decay=checks.nonnegative(weight_decay, "weight_decay", where, hint="λ of the prior λ‖θ‖² (eq. 13)"),
        weight_noise=checks.nonnegative(weight_noise, "weight_noise", where,
                                        hint="the std of the noise added to the kernels; Cheng et al. use 0.02"),
        burn_in=checks.integer(burn_in, "burn_in", where, minimum=0),
    )
    checks.seed(seed, where)
    if options["loss"] == "sure" and not options["sigma"]:
        raise ValueError(f"{where}: loss='sure' needs the noise level σ > 0: pass sigma=... (e.g. 25/255), the σ "
                         f"of b = x + ε that SURE's divergence term (eq. 17) is weighted by (got sigma={sigma!r})")
    if options["optimizer"] == "sgld" and options["sigma"] is not None and not options["sigma"]:
        raise ValueError(f"{where}: with optimizer='sgld', sigma sets the likelihood ½‖b − AG‖²/σ²; it must be "
                         "> 0 (or None for eq. 14's σ = 1)")
    if options["cuda_graph"] and ((options["loss"], options["optimizer"]) != ("data", "adam")
                                  or options["weight_noise"]):
        raise ValueError(f"{where}: cuda_graph=True works with the plain loss and Adam only, without weight noise "
                         f"(got loss={loss!r}, optimizer={optimizer!r}, weight_noise={weight_noise!r})")
    return options


def dip_steps(problems, networks, seeds, *, iters, lr, reg_noise_std=0.0, smoothing=0.9, progress=True,
              cuda_graph=False, callback=None, snapshots=(), loss="data", sigma=None, optimizer="adam",
              weight_decay=0.0, weight_noise=0.0, burn_in=0, stoppers=None):
    """DIP's loop for K problems and their K networks (``networks()`` returns K images; K = 1 for
    :func:`fit_dip`, K > 1 for :func:`dipcourse.batched.fit_many`). Returns one Result per problem.

    The images' losses are summed before the backward pass: each depends on its own network's weights
    only, so the gradient for network k is that of its own loss, and Adam, which is elementwise, makes
    the K updates of K separate runs.
    """
    device = networks.device
    count = len(problems)
    jitter = InputJitter(networks.z, reg_noise_std, seeds, device)
    if optimizer == "sgld":
        generator = torch.Generator(device=device).manual_seed(int(seeds[0]) + 2)
        step_rule = SGLD(networks.parameters(), lr, generator)
        decay = weight_decay
    else:
        step_rule = adam(networks.parameters(), lr, device, capturable=cuda_graph, weight_decay=2 * weight_decay)
        decay = 0.0                                   # Adam adds 2λθ to the gradient itself
    sure = SureLoss(sigma, networks.z, seeds) if loss == "sure" else None
    scale = 1.0 / sigma ** 2 if optimizer == "sgld" and loss == "data" and sigma else 1.0
    kernel_noise = KernelNoise(networks.kernels(), weight_noise, seeds) if weight_noise else None
    posterior = PosteriorMean(burn_in) if optimizer == "sgld" or weight_noise else None
    stoppers = [s for s in (stoppers or []) if s is not None]
    params = dict(method="dip", iters=iters, lr=lr, seed=seeds[0] if count == 1 else list(seeds),
                  reg_noise_std=reg_noise_std, smoothing=smoothing, device=str(device), cuda_graph=cuda_graph,
                  loss=loss, sigma=sigma, optimizer=optimizer, weight_decay=weight_decay, weight_noise=weight_noise,
                  burn_in=burn_in, net=dict(getattr(networks.network(0), "config", {})))
    run = Run("DIP" if count == 1 else f"DIP ×{count}", [p.ref for p in problems], iters, params=params,
              callback=callback, progress=progress, smoothing=smoothing, snapshots=snapshots, first=0,
              hint="The step was too large for this problem: lower lr (the thesis uses 0.001).")

    def step():
        """Lines 1-3: forward with the (jittered) input, loss, backward, one optimiser step."""
        step_rule.zero_grad(set_to_none=not cuda_graph)
        x = networks(jitter.value())                                      # 1. x_t = G(z + s·η_t; θ_t)
        losses = data_terms(problems, x) if sure is None else sure(problems, networks, x, jitter.value())  # 2.
        total = losses.sum() if scale == 1.0 else scale * losses.sum()
        if decay:
            total = total + decay * sum(torch.sum(p ** 2) for p in networks.parameters())
        total.backward()                                                  # 3. θ_{t+1}
        step_rule.step()
        if kernel_noise is not None:
            kernel_noise.add()
        return x.detach(), losses.detach()

    step = graphed(step, device) if cuda_graph else step
    for t in run:
        jitter.draw()                       # outside the step: the same draws whether or not it is a graph
        if sure is not None:
            sure.draw()
        x, losses = step()
        extra = {}
        if posterior is not None:
            extra = posterior.update(t, x, problems)
        stop = run.record(t, x, loss=losses, **extra)                     # 4. record x_t
        for k, stopper in enumerate(stoppers):
            stop = stopper.update(x[k]) and stopper.stop or stop
        if stop:
            run.stopped_at = t
            break
    results = run.results(x)
    for k, result in enumerate(results):
        if posterior is not None:
            result.extras["posterior_mean"] = posterior.mean[k].cpu().clone()
        if stoppers:
            result.extras["stopper"] = stoppers[k]
    return results


# --------------------------------------------------------------------------------------------
# The remedies that change the loss (SURE) or read the samples (SGLD's posterior mean)
# --------------------------------------------------------------------------------------------

def sure_input(where, problem, z):
    """The network input of SURE training: the noisy image b itself (eq. 16–17 write G(b; θ))."""
    from dipcourse.operators import Identity

    if not isinstance(problem.A, Identity):
        raise ValueError(f"{where}: loss='sure' is for denoising only (A = Identity): Stein's estimate (15–17) "
                         f"needs b = x + ε with every entry observed, got {type(problem.A).__name__}")
    if z is not None:
        raise ValueError(f"{where}: with loss='sure' the network's input is the noisy image b itself "
                         "(eq. 16–17: G(b; θ)); do not pass z")
    return problem.b[None]


class SureLoss:
    """Stein's unbiased risk estimate as a training loss, thesis eq. (17), for denoising b = x + ε, ε ~ N(0, σ²I):

        L(θ) = ½‖b − G(b; θ)‖² + σ² div_b G(b; θ),      div_b G = Tr(∂G(b; θ)/∂b),

    which up to a constant is (N/2) × the expected error (1/N)‖x − G(b; θ)‖² of eq. (16). The trace of the
    n × n Jacobian is out of reach, so it is estimated by Monte Carlo (Ramani, Blu & Unser 2008):

        div_b G ≈ εᵀ (G(b + δ ε; θ) − G(b; θ)) / δ,      ε ~ N(0, I) drawn afresh each iteration,

    unbiased as δ → 0 (exact for a linear G) and costing one more forward pass. δ = 10⁻³, as in Metzler
    et al.'s code (``ricedsp/D-AMP_Toolbox``, DIP with SURE); in float32 the finite difference matches the
    exact ηᵀJη to 1 % for δ between 1e-5 and 1e-3 on the course's networks.
    """

    def __init__(self, sigma, z, seeds, delta=1e-3):
        self.sigma = sigma
        self.delta = delta
        self.direction = torch.zeros_like(z)
        self.generators = [torch.Generator(device=z.device).manual_seed(int(s) + 3) for s in seeds]

    def draw(self):
        for k, generator in enumerate(self.generators):
            self.direction[k].normal_(generator=generator)

    def divergence(self, networks, x, offset=None):
        """εᵀ(G(b + δε) − G(b))/δ per image: the Monte-Carlo estimate of div_b G at the input that gave ``x``
        (b, or b + the iteration's input jitter ``offset``, as in Metzler et al.'s code)."""
        shift = self.delta * self.direction
        shifted = networks(shift if offset is None else offset + shift)
        return torch.sum(self.direction.reshape(x.shape) * (shifted - x), dim=(1, 2, 3)) / self.delta

    def __call__(self, problems, networks, x, offset=None):
        """Eq. (17) per image: ½‖b − G‖² + σ² · (the Monte-Carlo divergence)."""
        return data_terms(problems, x) + self.sigma ** 2 * self.divergence(networks, x, offset)


class KernelNoise:
    """N(0, s²) added to every convolution kernel after each optimiser step — SGLD for DIP as Cheng et al.
    (CVPR 2019) ran it: ``add_noise`` in their ``ZezhouCheng/GP-DIP`` code perturbs the 4-D weights only,
    with s = ``param_noise_sigma`` · lr = 2 · 0.01 = 0.02.

    One seeded generator per run (``seed + 4``): for K networks stacked side by side (the kernels then
    carry a leading dimension K) network k draws from its own generator, exactly the draws of its single run.
    """

    def __init__(self, kernels, std, seeds):
        self.kernels, self.std = kernels, std
        seeds = [seeds] if isinstance(seeds, int) else list(seeds)
        self.stacked = len(seeds) > 1
        self.generators = [torch.Generator(device=kernels[0].device).manual_seed(int(s) + 4) for s in seeds]

    @torch.no_grad()
    def add(self):
        for kernel in self.kernels:
            parts = list(kernel) if self.stacked else [kernel]
            for part, generator in zip(parts, self.generators):
                part.add_(torch.randn(part.shape, generator=generator, device=part.device, dtype=part.dtype),
                          alpha=self.std)


class PosteriorMean:
    """The running mean of the samples x_t for t ≥ ``burn_in`` — the posterior-mean estimate of Cheng et al.
    (2019); before the burn-in it is the current sample."""

    def __init__(self, burn_in):
        self.burn_in, self.count, self.mean = burn_in, 0, None

    def update(self, t, x, problems):
        if t < self.burn_in or self.mean is None:
            self.mean = x.clone()
        if t >= self.burn_in:
            self.count += 1
            self.mean += (x - self.mean) / self.count
        refs = [p.ref for p in problems]
        if any(ref is None for ref in refs):
            return {}
        return {"psnr_mean": [psnr(ref, m) for ref, m in zip(refs, self.mean)]}


# --------------------------------------------------------------------------------------------
# Early stopping without the ground truth
# --------------------------------------------------------------------------------------------

class WMVStopper:
    """Early stopping by windowed moving variance, ES-WMV (Wang, Li, Zhuang & Sun, TMLR 2023).

    Feed every iterate x_0, x_1, … with :meth:`update`. Once W iterates have arrived, the variance
    of the window ending at iterate t is

        VAR_t = (1/W) Σ_{w=0}^{W−1} ‖x_{t−w} − x̄_t‖²,   x̄_t = (1/W) Σ_{w=0}^{W−1} x_{t−w}.

    The iterates move fast while the image forms and slowly near the PSNR peak. In the paper's runs
    they speed up again while the network fits the noise, so the variance curve is U-shaped around the
    peak; in small, fast runs (lesson 02: Adam at lr 0.01) it mostly falls steeply and then flattens
    near the peak, with Adam's spikes and a slow drift downwards later on, so its global minimum can
    lie long after the peak. Either way the patience must end the search early — the detector takes
    the first minimum that stands for P iterations, not the global one, and W and P scale with the
    time to the peak. The detector keeps the minimum of VAR_t;
    ``best_iteration`` is the t (0-based count of updates, the index of the *newest* iterate of the
    minimising window — the paper returns that iterate) where it was reached, and ``best_image`` that
    iterate. :meth:`update` returns ``True`` once VAR has not reached a new minimum for ``patience``
    iterations; from then on the detector is finished (``stopped_at`` is set): later updates return
    ``True`` and change nothing, so ``best_iteration`` stays the detector's choice even if training goes on.
    Given to :func:`fit_dip` as ``stopper=``, it ends the run when it fires if ``stop`` is ``True``.
    With ``trace=True`` it goes on computing VAR_t after it has fired (``variances`` then covers the whole
    run, for plotting the curve beyond the stop); its choice — ``best_iteration``, ``best_image``,
    ``stopped_at`` — is the same as without.

    Cost per update: O(image). Running sums S = Σ x and Q = Σ ‖x‖² (in float64, on the CPU) over the
    deque of the last W iterates give VAR_t = Q/W − ‖S/W‖² without touching the whole window.
    """

    def __init__(self, window=100, patience=1000, stop=False, trace=False):
        self.window = checks.integer(window, "window", "WMVStopper", minimum=1)
        self.patience = checks.integer(patience, "patience", "WMVStopper", minimum=1)
        self.stop = checks.flag(stop, "stop", "WMVStopper")
        self.trace = checks.flag(trace, "trace", "WMVStopper")
        self.queue = deque()
        self.sum = None
        self.sum_sq = 0.0
        self.count = 0
        self.best_iteration = None
        self.best_image = None
        self.best_variance = math.inf
        self.variances = []   # VAR_t for t = window−1, window, … (index t − window + 1)
        self.stopped_at = None

    def update(self, x):
        """Add the next iterate; returns ``True`` when stopping is advised (no new minimum for ``patience``)."""
        if self.stopped_at is not None and not self.trace:
            return True
        x = checks.tensor(torch.as_tensor(x), "x", "WMVStopper.update")
        x = x.detach().to(dtype=torch.float64, device="cpu", copy=True)
        if self.sum is None:
            self.sum = torch.zeros_like(x)
        elif x.shape != self.sum.shape:
            raise ValueError(f"WMVStopper: iterate shape {tuple(x.shape)} differs from the first "
                             f"{tuple(self.sum.shape)}; use one stopper per run")
        t = self.count
        self.count += 1
        self.queue.append(x)
        self.sum += x
        self.sum_sq += float(torch.sum(x * x))
        if len(self.queue) > self.window:
            old = self.queue.popleft()
            self.sum -= old
            self.sum_sq -= float(torch.sum(old * old))
        if len(self.queue) < self.window:
            return False
        mean = self.sum / self.window
        variance = max(self.sum_sq / self.window - float(torch.sum(mean * mean)), 0.0)
        self.variances.append(variance)
        if self.stopped_at is not None:          # finished (trace=True): the curve goes on, the choice stays
            return True
        if variance < self.best_variance:
            self.best_variance, self.best_iteration, self.best_image = variance, t, x.float()
        if t - self.best_iteration >= self.patience:
            self.stopped_at = t
        return self.stopped_at is not None

    @property
    def variance_iterations(self):
        """The iteration t of each entry of ``variances`` (the newest iterate of its window): W−1, W, …."""
        return list(range(self.window - 1, self.window - 1 + len(self.variances)))

"""Many independent DIP runs in one go: K images, K networks, one batched forward/backward per step.

Lesson 04 (thesis §4.2, Fig 2 and 3) averages every curve over several images. Each image has its
own network G(z_k; θ_k), its own input z_k and its own Adam; nothing is shared. Running them one after
the other repeats K small forward/backward passes, whose cost on a GPU is mostly kernel-launch
overhead. This module stacks the K weight sets and evaluates all networks in one call:

    θ = (θ_1, …, θ_K)  stacked tensor by tensor   (``torch.func.stack_module_state``)
    G(z; θ) = vmap_k G(z_k; θ_k)                  (``torch.func.vmap`` over ``functional_call``)

Why the result is the same as K sequential runs:

* the loss is the sum of the per-image losses, L(θ) = Σ_k L_k(θ_k), and L_k depends on θ_k only, so
  ∇_{θ_k} L = ∇_{θ_k} L_k — exactly the gradient of the k-th sequential run;
* Adam is elementwise (its moments, bias correction and step are per entry), so one Adam on the
  stacked tensors makes exactly the K sequential updates;
* BatchNorm in training mode normalises each network's activations with its own image's statistics
  (vmap hands each network its own (1, C, H, W) input). The sequential run also updates running
  statistics, but in training mode the output never reads them, so the batched run drops them
  (``torch.func.replace_all_batch_norm_modules_``; vmap cannot write to shared buffers).

Only the order of floating-point sums differs (vmap turns the K convolutions into one grouped
convolution). Caveat: the network's convolutions before a BatchNorm have biases that BatchNorm
cancels, so their gradient is pure rounding noise, which Adam (dividing by its own RMS) turns into
full-size steps. In float32 two runs that differ only in summation order therefore drift apart after
some tens of steps at lr = 0.01 (the same happens between two sequential runs with different thread
counts); in float64 they agree to ~1e-12 (tests/test_batched.py).

Is it faster? Measured (``benchmarks/bench_batched.py``, ``benchmarks/README.md``): on an H200,
25 networks at 128² took 34.6 ms per step batched against 321 ms sequentially (9.3×); on 2 CPU cores
the gain was only ~1.1× in one probe, and on one heavily shared core here batching was slower
(0.5–0.6× in wall time, 0.7–1.0× in CPU time, K = 1–8 at 64²): a CPU is already kept busy by one
network's convolutions, and the grouped convolutions vmap produces are no faster on it than K
separate ones. Hence ``batched="auto"`` batches on a GPU only. The denoiser of a hybrid (BM3D, NLM)
still runs image by image, on the CPU, and dominates when present.

Entry point: :func:`fit_many` (``method="dip"`` → :func:`dipcourse.dip.fit_dip`,
``method="admm_v2"`` → :func:`dipcourse.admm.dip_admm_v2`), batched or sequential by argument.
"""
import copy
from numbers import Integral

import torch
from torch.func import functional_call, replace_all_batch_norm_modules_, stack_module_state, vmap
from tqdm.auto import trange

from dipcourse.admm import (CountingProx, data_term, dip_admm_v2, loss_note, record_iteration, regularizer,
                            resolve_prox)
from dipcourse.dip import adam, fit_dip, prepare_network
from dipcourse.result import Tracker

METHODS = ("dip", "admm_v2")


# ----------------------------------------------------------------------------------------------
# K networks as one
# ----------------------------------------------------------------------------------------------

class NetworkStack:
    """K networks of one architecture with their own weights, evaluated together.

    ``stack(zs)`` maps inputs zs of shape (K, 1, C_in, H, W) to images (K, C, H, W), image k being
    G(z_k; θ_k). ``parameters()`` are the stacked weights (leading dimension K) for the optimiser.
    The given networks are copied, not modified.
    """

    def __init__(self, nets):
        nets = [copy.deepcopy(net).train() for net in nets]
        for net in nets:
            replace_all_batch_norm_modules_(net)   # batch statistics only, no running-stat writes
        params, self.buffers = stack_module_state(nets)
        self.params = {name: p.detach().clone().requires_grad_() for name, p in params.items()}
        self.template = copy.deepcopy(nets[0]).to("meta")   # the architecture, without storage
        self.size = len(nets)
        self._forward = vmap(self._one)

    def _one(self, params, buffers, z):
        return functional_call(self.template, (params, buffers), (z,))[0]

    def parameters(self):
        return list(self.params.values())

    def __call__(self, zs):
        return self._forward(self.params, self.buffers, zs)

    def network(self, k):
        """A plain ``nn.Module`` holding the current weights of network k (e.g. for lesson 05)."""
        net = copy.deepcopy(self.template).to_empty(device=self.parameters()[0].device)
        net.load_state_dict({name: p[k].detach() for name, p in self.params.items()}, strict=False)
        return net


# ----------------------------------------------------------------------------------------------
# Checks and per-image pieces
# ----------------------------------------------------------------------------------------------

def _operators(A, count):
    """One operator per image: ``A`` repeated, or the list given."""
    if isinstance(A, (list, tuple)):
        if len(A) != count:
            raise ValueError(f"fit_many: got {len(A)} operators for {count} measurements; give one operator "
                             "for all images or one per image")
        return list(A)
    return [A] * count


def _check_many(method, As, bs, refs, seeds, batched):
    if method not in METHODS:
        raise ValueError(f"fit_many: unknown method {method!r}; choose one of {', '.join(METHODS)}")
    for A in As:
        if tuple(A.in_shape) != tuple(As[0].in_shape):
            raise ValueError(f"fit_many: all images must have one shape to share a network architecture; got "
                             f"{tuple(As[0].in_shape)} and {tuple(A.in_shape)}")
    for name, values in (("refs", refs), ("seeds", seeds)):
        if values is not None and len(values) != len(bs):
            raise ValueError(f"fit_many: {name} has {len(values)} entries for {len(bs)} measurements")
    if seeds is not None and any(isinstance(s, bool) or not isinstance(s, Integral) or s < 0 for s in seeds):
        raise ValueError(f"fit_many: seeds must be non-negative integers, got {list(seeds)}")
    if batched not in (True, False, "auto"):
        raise ValueError(f"fit_many: batched must be True, False or 'auto', got {batched!r}")


def _with_snapshots(result, snapshots):
    result.snapshots = snapshots
    return result


def _sequential(method, As, bs, iters, prox, rho, lr, refs, seeds, nets, zs, keep, progress):
    """K calls of the sequential function, keeping the requested iterates through its callback."""
    results = []
    for A_k, b_k, net, z, ref, seed in zip(As, bs, nets, zs, refs, seeds):
        snapshots = [{}]
        if method == "dip":
            result = fit_dip(A_k, b_k, iters, net=net, z=z, lr=lr, ref=ref, seed=seed, progress=progress,
                             callback=lambda it, x, tracker: _keep(snapshots, keep, it, [x]))
        else:
            result = dip_admm_v2(A_k, b_k, prox, iters, rho=rho, lr=lr, ref=ref, seed=seed, net=net, z=z,
                                 progress=progress,
                                 callback=lambda t, state: _keep(snapshots, keep, t, [state["g"]]))
        results.append(_with_snapshots(result, snapshots[0]))
    return results


def _amortise(result, count, batched_params):
    """Charge each image 1/K of the shared time: a batched run's clock measures all K images at once."""
    for key in ("time_cpu", "time_wall"):
        result.history[key] = result.history[key] / count
    result.params.update(batched_params)
    return result


# ----------------------------------------------------------------------------------------------
# The batched algorithms (same steps as fit_dip and dip_admm_v2, on a stack of K images)
# ----------------------------------------------------------------------------------------------

def _keep(snapshots, keep, iteration, images):
    """Store a copy of image k under ``iteration`` in ``snapshots[k]`` when ``iteration`` is in ``keep``."""
    if iteration in keep:
        for store, image in zip(snapshots, images):
            store[iteration] = image.detach().cpu().clone()


def _dip_batched(As, bs, iters, stack, zs, lr, refs, seeds, keep, progress):
    """fit_dip's steps 1–4 for K images: x_t = G(z; θ_t), Adam on Σ_k ½‖b_k − A_k x_k‖², record x_t."""
    optimizer = adam(stack.parameters(), lr, zs.device)
    trackers = [Tracker(ref, params=dict(method="dip", iters=iters, lr=lr, seed=seed))
                for ref, seed in zip(refs, seeds)]
    snapshots = [{} for _ in bs]
    for it in trange(iters, disable=not progress, desc=f"DIP ×{len(bs)}", leave=False):
        optimizer.zero_grad()
        x = stack(zs)                                                            # step 1
        losses = torch.stack([0.5 * torch.sum((b - A.forward(xk)) ** 2)          # step 2
                              for A, b, xk in zip(As, bs, x)])
        losses.sum().backward()                                                  # step 3
        optimizer.step()
        for k, tracker in enumerate(trackers):                                   # step 4
            tracker.step(it, x[k].detach(), loss=losses[k].item())
        _keep(snapshots, keep, it, x)
    x = x.detach()
    return [_with_snapshots(tracker.result(x[k]), snapshots[k]) for k, tracker in enumerate(trackers)]


def _admm_v2_batched(As, bs, prox, iters, stack, zs, rho, lr, refs, seeds, keep, progress):
    """dip_admm_v2's lines 2–4 (Algorithm 2) for K images; the prox runs image by image."""
    optimizer = adam(stack.parameters(), lr, zs.device)
    counters = [CountingProx(prox) for _ in bs]
    reg = regularizer(prox)
    trackers = [Tracker(ref, params=dict(algorithm="DIP-ADMM-v2", rho=rho, lr=lr, iters=iters, seed=seed))
                for ref, seed in zip(refs, seeds)]
    snapshots = [{} for _ in bs]
    g = stack(zs)                                   # G(θ_0), K images
    u = torch.zeros_like(g.detach())                # u_0 = 0
    for t in trange(iters, disable=not progress, desc=f"DIP-ADMM-v2 ×{len(bs)}", leave=False):
        x = torch.stack([counter(gk - uk, rho)                                   # line 2
                         for counter, gk, uk in zip(counters, g.detach(), u)])
        optimizer.zero_grad()
        data = sum(data_term(A, b, gk) for A, b, gk in zip(As, bs, g))
        (data + 0.5 * rho * torch.sum((x - g + u) ** 2)).backward()              # line 3
        optimizer.step()
        g = stack(zs)
        u = u + (x - g.detach())                                                 # line 4
        for k in range(len(bs)):
            record_iteration(trackers[k], t + 1, As[k], bs[k], reg, g[k], x[k], counters[k].calls, refs[k])
        _keep(snapshots, keep, t + 1, g)
    g = g.detach()
    return [_with_snapshots(tracker.result(g[k], loss=loss_note(reg)), snapshots[k])
            for k, tracker in enumerate(trackers)]


# ----------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------

def fit_many(method, A, bs, iters, prox=None, rho=1.0, lr=1e-3, refs=None, seeds=None, net_kwargs=None,
             batched="auto", snapshots=(), progress=True):
    """Run one DIP-type reconstruction per measurement and return one :class:`dipcourse.Result` each.

    Image k gets its own network and input, built from ``seeds[k]`` exactly as the sequential
    function builds them (:func:`dipcourse.dip.prepare_network`), so ``fit_many(...)[k]`` means the same as

        ``fit_dip(A_k, b_k, iters, net, z, lr=lr, ref=refs[k], seed=seeds[k])``            (method "dip")
        ``dip_admm_v2(A_k, b_k, prox, iters, rho, lr, refs[k], seeds[k], net, z)``           (method "admm_v2")

    In a batched run the history's ``time_cpu`` and ``time_wall`` are the shared clock divided by K,
    i.e. each image's share of the cost, comparable with a sequential run's times.

    Args:
        method: ``"dip"`` (plain DIP, eq. 10) or ``"admm_v2"`` (DIP + prior by Algorithm 2).
        A: one operator for every image, or a list of K operators (e.g. one random mask each).
        bs: the K measurements (a list, or a tensor with leading dimension K).
        iters: iterations per image.
        prox: the prior for ``"admm_v2"``: ``prox(v, rho)`` or a name for :func:`dipcourse.priors.make_prox`.
        rho: ADMM penalty ρ (thesis: 1).
        lr: Adam learning rate (thesis: 0.001).
        refs: K ground-truth images, for the PSNR columns only (or ``None``).
        seeds: K seeds for the networks and inputs; default 0, 1, …, K−1 (a fresh network per image,
            as in the thesis's 25-image averages).
        net_kwargs: arguments of :class:`dipcourse.dip.SkipNet` (default: the thesis's network).
        batched: ``True`` stacks the K networks (:class:`NetworkStack`); ``False`` calls the
            sequential function K times; ``"auto"`` batches when K ≥ 2 on a GPU and runs
            sequentially on the CPU. Both give the same curves up to float32 summation order.
            Batching pays on a GPU (9.3× for 25 nets at 128² on an H200); on CPUs it gained ~1.1×
            in one probe on 2 cores and lost (0.7×) on one shared core here
            (``benchmarks/README.md``), because a CPU is already busy with one network.
        snapshots: iterations whose image G(θ_t) to keep in ``Result.snapshots`` (thesis Fig 5).
            The iteration numbers are those of the history: 0, …, iters−1 for ``"dip"`` (the image
            before the t-th update, as :func:`dipcourse.dip.fit_dip` records it) and 1, …, iters for
            ``"admm_v2"`` (after the t-th update, as :func:`dipcourse.admm.dip_admm_v2`).
        progress: show progress bars.
    """
    bs = list(bs)
    if len(bs) == 0:
        raise ValueError("fit_many: give at least one measurement b")
    As = _operators(A, len(bs))
    _check_many(method, As, bs, refs, seeds, batched)
    if method == "admm_v2":
        if prox is None:
            raise ValueError("fit_many: method 'admm_v2' needs a prior: prox='tv' or a make_prox(...) callable")
        prox = resolve_prox(prox)
    refs = [None] * len(bs) if refs is None else list(refs)
    seeds = list(range(len(bs))) if seeds is None else [int(s) for s in seeds]
    net_kwargs = dict(net_kwargs or {})
    shape = tuple(As[0].in_shape)
    device = bs[0].device
    built = [prepare_network(shape, seed=seed, **net_kwargs) for seed in seeds]
    nets = [net.to(device=device, dtype=bs[0].dtype) for net, _ in built]
    zs = [z.to(device=device, dtype=bs[0].dtype) for _, z in built]
    use_batch = (len(bs) >= 2 and device.type == "cuda") if batched == "auto" else batched
    keep = {int(i) for i in snapshots}
    if not use_batch:
        return _sequential(method, As, bs, iters, prox, rho, lr, refs, seeds, nets, zs, keep, progress)
    stack = NetworkStack(nets)
    zs = torch.stack(zs)
    if method == "dip":
        results = _dip_batched(As, bs, iters, stack, zs, lr, refs, seeds, keep, progress)
    else:
        results = _admm_v2_batched(As, bs, prox, iters, stack, zs, rho, lr, refs, seeds, keep, progress)
    return [_amortise(r, len(bs), dict(batched=len(bs), net=net_kwargs)) for r in results]

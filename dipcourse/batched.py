"""Many independent runs of one method: K measurements (images, seeds), K networks, one call.

Lesson 04 (thesis §4.2, Fig 2 and 3) averages every curve over several images, and every claim of the
course rests on several runs. :func:`fit_many` makes them in one of three ways, with the same results:

* **batched** (a GPU): the K weight sets are stacked and all networks evaluated in one call,
  G(z; θ) = vmap_k G(z_k; θ_k) (:class:`NetworkStack`), and the method's own loop
  (:func:`dipcourse.dip.dip_steps`, :func:`dipcourse.admm.admm_v2_steps`, …) steps all K at once;
* **processes** (a CPU with several cores): the K single runs side by side in worker processes, one
  torch thread each (:mod:`dipcourse.parallel`) — on a CPU a second thread barely speeds up one small
  network, a second process doubles the throughput, and the result no longer depends on the thread count;
* **sequential**: the K single runs one after the other in this process (``workers=0``).

Why the batched result is the same as K separate runs:

* the loss is the sum of the per-image losses, L(θ) = Σ_k L_k(θ_k), and L_k depends on θ_k only, so
  ∇_{θ_k} L = ∇_{θ_k} L_k — exactly the gradient of the k-th run;
* Adam is elementwise (its moments, bias correction and step are per entry), so one Adam on the
  stacked tensors makes exactly the K separate updates;
* BatchNorm in training mode normalises each network's activations with its own image's statistics
  (vmap hands each network its own (1, C, H, W) input). A single run also updates running
  statistics, but in training mode the output never reads them, so the batched run drops them
  (``torch.func.replace_all_batch_norm_modules_``; vmap cannot write to shared buffers).

Only the order of floating-point sums differs (vmap turns the K convolutions into one grouped
convolution). Caveat: the network's convolutions before a BatchNorm have biases that BatchNorm
cancels, so their gradient is pure rounding noise, which Adam (dividing by its own RMS) turns into
full-size steps. In float32 two runs that differ only in summation order therefore drift apart after
some tens of steps at lr = 0.01 (the same happens between two runs with different thread counts); in
float64 they agree to ~1e-12 (tests/test_batched.py).

Which is faster (``benchmarks/bench_batched.py``, ``benchmarks/README.md``): on an H200, 25 networks at
128² took 34.6 ms per step batched against 321 ms one after the other (9.3×); on 2 CPU cores batching
gained nothing (0.6–1.0×) — a CPU is already kept busy by one network's convolutions. Hence
``batched="auto"`` batches on a GPU only, and on a CPU runs the K runs in processes.
"""
import copy

import torch
from torch.func import functional_call, replace_all_batch_norm_modules_, stack_module_state, vmap

from dipcourse import checks, parallel
from dipcourse.admm import admm_options, admm_v1_steps, admm_v2_steps, deep_red, dip_admm_v1, dip_admm_v2, \
    dip_tv_gd, resolve_prox
from dipcourse.dip import WMVStopper, dip_options, dip_steps, fit_dip
from dipcourse.training import Problem, prepare_network

METHODS = {"dip": fit_dip, "admm_v1": dip_admm_v1, "admm_v2": dip_admm_v2, "tv_gd": dip_tv_gd, "deep_red": deep_red}
BATCHABLE = ("dip", "admm_v1", "admm_v2")


# ----------------------------------------------------------------------------------------------
# K networks as one
# ----------------------------------------------------------------------------------------------

class NetworkStack:
    """K networks of one architecture with their own weights and inputs, evaluated together.

    Calling it returns the K images, (K, C, H, W), image k being G(z_k + noise_k; θ_k) — the same
    interface as :class:`dipcourse.training.SingleNetwork` (K = 1), so each method's loop serves both.
    ``parameters()`` are the stacked weights (leading dimension K) for the optimiser. The given networks
    are copied, not modified.
    """

    def __init__(self, nets, zs, device):
        nets = [copy.deepcopy(net).to(device).train() for net in nets]
        for net in nets:
            replace_all_batch_norm_modules_(net)   # batch statistics only, no running-stat writes
        params, self.buffers = stack_module_state(nets)
        self.params = {name: p.detach().clone().requires_grad_() for name, p in params.items()}
        self.template = copy.deepcopy(nets[0]).to("meta")   # the architecture, without storage
        self.count = len(nets)
        self.device = device
        self.z = torch.stack([z.to(device=device, dtype=next(nets[0].parameters()).dtype) for z in zs])
        self._forward = vmap(self._one)

    def _one(self, params, buffers, z):
        return functional_call(self.template, (params, buffers), (z,))[0]

    def parameters(self):
        return list(self.params.values())

    def kernels(self):
        """The stacked convolution kernels (K × a 4-D weight)."""
        return [p for p in self.params.values() if p.dim() == 5]

    def __call__(self, noise=None):
        return self._forward(self.params, self.buffers, self.z if noise is None else self.z + noise)

    def network(self, k=0):
        """A plain ``nn.Module`` holding the current weights of network k (e.g. for lesson 05)."""
        net = copy.deepcopy(self.template).to_empty(device=self.device)
        net.load_state_dict({name: p[k].detach() for name, p in self.params.items()}, strict=False)
        return net

    @property
    def config(self):
        return dict(getattr(self.template, "config", {}))


# ----------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------

def _operators(A, count):
    """One operator per measurement: ``A`` repeated, or the list given."""
    if isinstance(A, (list, tuple)):
        if len(A) != count:
            raise ValueError(f"fit_many: got {len(A)} operators for {count} measurements; give one operator "
                             "for all measurements or one per measurement")
        return list(A)
    return [A] * count


def _per_run(values, count, name):
    return None if values is None else checks.sequence(values, name, "fit_many", length=count)


def _mode(batched, workers, device, count):
    """"batched", "processes" or "sequential" (see the module docstring)."""
    checks.choice(batched, "batched", "fit_many", (True, False, "auto"))
    if batched is True or (batched == "auto" and device.type == "cuda" and count >= 2):
        return "batched"
    if workers == 0 or count == 1:
        return "sequential"
    if workers is None and parallel.default_workers(count) == 1:
        return "sequential"
    return "processes"


def fit_many(method, A, bs, iters, refs=None, seeds=None, net_kwargs=None, nets=None, batched="auto", workers=None,
             snapshots=(), progress=True, **options):
    """Run one reconstruction per measurement and return one :class:`dipcourse.Result` each.

    Run k gets its own network and input, built from ``seeds[k]`` exactly as the single function builds
    them (:func:`dipcourse.training.prepare_network`), so ``fit_many(...)[k]`` means the same as

        ``fit_dip(A_k, bs[k], iters, ref=refs[k], seed=seeds[k], net_kwargs=net_kwargs, **options)``

    for ``method="dip"`` (likewise ``dip_admm_v1``, ``dip_admm_v2``, ``dip_tv_gd``, ``deep_red``).

    Args:
        method: ``"dip"`` (eq. 10 and its remedies), ``"admm_v1"``, ``"admm_v2"`` (Algorithms 1, 2),
            ``"tv_gd"`` (gradient descent on (36)) or ``"deep_red"`` (eq. 12).
        A: one operator for every measurement, or a list of K operators (e.g. one random mask each).
        bs: the K measurements (a list, or a tensor with leading dimension K).
        iters: iterations per run.
        refs: K ground-truth images, for the PSNR columns only (or ``None``).
        seeds: K seeds for the networks and inputs; default 0, 1, …, K−1 (a fresh network per run, as in
            the thesis's 25-image averages).
        net_kwargs: settings of the network (:func:`dipcourse.networks.build_network`; default: the thesis's
            SkipNet).
        nets: K networks to train instead (copies are trained; e.g. :class:`dipcourse.networks.DeepDecoder`).
        batched: ``True`` stacks the K networks (:class:`NetworkStack`, methods ``"dip"``, ``"admm_v1"``,
            ``"admm_v2"``); ``False`` never does; ``"auto"`` stacks on a GPU only.
        workers: unstacked runs go to this many worker processes, one torch thread each
            (:mod:`dipcourse.parallel`); ``None``: one per core; ``0``: one after the other in this process.
        snapshots: iterations whose image to keep in ``Result.snapshots`` (thesis Fig 5), numbered as in
            the method's history (0, …, iters−1 for ``"dip"``; 1, …, iters for the ADMM variants).
        progress: show a progress bar.
        **options: the method's other arguments (``lr``, ``prox``, ``rho``, ``reg_noise_std``, ``loss``, …),
            the same for every run. A ``stopper`` is copied for each run.

    In a batched run the history's ``time_cpu`` and ``time_wall`` are the shared clock divided by K,
    i.e. each run's share of the cost, comparable with a single run's times.
    """
    where = "fit_many"
    checks.choice(method, "method", where, tuple(METHODS))
    bs = list(bs) if isinstance(bs, torch.Tensor) else checks.sequence(bs, "bs", where, hint="one measurement per run")
    if not bs:
        raise ValueError("fit_many: give at least one measurement b")
    count = len(bs)
    operators = _operators(A, count)
    refs = _per_run(refs, count, "refs") or [None] * count
    seeds = _per_run(seeds, count, "seeds") or list(range(count))
    seeds = [checks.seed(s, where, "seeds") for s in seeds]
    nets = _per_run(nets, count, "nets")
    problems = [Problem.checked(where, A_k, b_k, ref_k) for A_k, b_k, ref_k in zip(operators, bs, refs)]
    if len({p.shape for p in problems}) > 1:
        raise ValueError(f"fit_many: all images must have one shape to share a network architecture; got "
                         f"{sorted({p.shape for p in problems})}")
    if "callback" in options:
        raise ValueError("fit_many: pass callbacks to the single functions (fit_dip, dip_admm_v2, ...)")
    if nets is not None and net_kwargs:
        raise ValueError("fit_many: give either nets=... or net_kwargs=..., not both")
    needs = {"admm_v1": "prox", "admm_v2": "prox", "deep_red": "denoiser"}.get(method)
    if needs and options.get(needs) is None:
        raise ValueError(f"fit_many: method {method!r} needs a prior: {needs}='tv' or a make_prox(...) callable")
    device = bs[0].device
    mode = _mode(batched, workers, device, count)
    if mode == "batched":
        if method not in BATCHABLE:
            raise ValueError(f"fit_many: method {method!r} cannot be batched; choose batched=False")
        return _batched(method, problems, seeds, iters, net_kwargs, nets, snapshots, progress, device, options)
    calls = []
    for k, (p, seed) in enumerate(zip(problems, seeds)):
        call = dict(options, A=p.A, b=p.b, iters=iters, ref=p.ref, seed=seed, snapshots=snapshots)
        if nets is not None:
            call["net"] = copy.deepcopy(nets[k])
        elif net_kwargs:
            call["net_kwargs"] = dict(net_kwargs)
        if "stopper" in call:
            call["stopper"] = copy.deepcopy(call["stopper"])
        calls.append(call)
    function = METHODS[method]
    if mode == "processes":
        results = parallel.run_calls(function, calls, workers=workers, desc=f"{method} ×{count}", progress=progress)
    else:
        results = [function(**call, progress=progress) for call in calls]
    for result in results:
        result.params["mode"] = mode
    return results


def fit_one(method, **arguments):
    """One run of the method named as in :func:`fit_many`: ``fit_one("admm_v2", A=A, b=b, iters=600, prox=...)``
    is ``dip_admm_v2(A=A, b=b, iters=600, prox=...)``. A module-level function, so that
    :func:`dipcourse.parallel.run_calls` can share one pool of worker processes among several methods
    (lesson 04 runs DIP and its three hybrids on every image as one list of runs)."""
    checks.choice(method, "method", "fit_one", tuple(METHODS))
    return METHODS[method](**arguments)


def _batched(method, problems, seeds, iters, net_kwargs, nets, snapshots, progress, device, options):
    """The method's loop on a :class:`NetworkStack` of the K networks."""
    built = [prepare_network(problems[0].shape, net=None if nets is None else copy.deepcopy(nets[k]), seed=seed,
                             dtype=problems[0].b.dtype, **({} if nets is not None else (net_kwargs or {})))
             for k, seed in enumerate(seeds)]
    stack = NetworkStack([net for net, _ in built], [z for _, z in built], device)
    where = "fit_many"
    if method == "dip":
        stopper = options.pop("stopper", None)
        if stopper is not None and not isinstance(stopper, WMVStopper):
            raise TypeError(f"fit_many: stopper must be a WMVStopper, got {type(stopper).__name__}")
        stoppers = None if stopper is None else [copy.deepcopy(stopper) for _ in seeds]
        settings = dip_options(where, iters=iters, seed=seeds[0], snapshots=snapshots, progress=progress,
                               callback=None, **_with_defaults(options, lr=1e-3, reg_noise_std=0.0, smoothing=0.9,
                                                               cuda_graph=False, loss="data", sigma=None,
                                                               optimizer="adam", weight_decay=0.0, weight_noise=0.0,
                                                               burn_in=0))
        results = dip_steps(problems, stack, seeds, stoppers=stoppers, **settings)
    else:
        prox = resolve_prox(options.pop("prox"), where)
        settings = admm_options(where, iters=iters, lr=options.pop("lr", 1e-3), seed=seeds[0], callback=None,
                                progress=progress, snapshots=snapshots, rho=options.pop("rho", 1.0))
        if method == "admm_v1":
            settings["inner"] = checks.integer(options.pop("inner", 5), "inner", where, minimum=1)
            results = admm_v1_steps(problems, stack, seeds, prox, **settings, **options)
        else:
            results = admm_v2_steps(problems, stack, seeds, prox, **settings, **options)
    for result in results:
        for key in ("time_cpu", "time_wall"):
            result.history[key] = result.history[key] / len(problems)
        result.params.update(batched=len(problems), net=stack.config, mode="batched")
    return results


def _with_defaults(options, **defaults):
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise TypeError(f"fit_many: unknown option(s) {unknown} for method 'dip'")
    return {**defaults, **options}


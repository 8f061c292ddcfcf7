"""The lessons' sliders, built from the views of :mod:`dipcourse.widgets.views`.

Each builder is thin: its compute or train part is an ordinary function of the other modules (a
PnP-ADMM run, a DIP fit, …), tested like any other, and the builder only wires sliders to it. A
builder whose arguments are wrong (a starting σ below 0, a range the slider cannot show) returns a
widget that shows the message instead of raising.

=========  ==========================  ====================================================
lesson     builder                     what moves
=========  ==========================  ====================================================
01         :func:`cs_explorer`         λ, σ, sampling ratio → PnP-ADMM TV inpainting (instant)
02         :func:`sigma_explorer`      σ → DIP denoising (trained)
03         :func:`rho_explorer`        ρ → PnP-ADMM (instant) and DIP-ADMM-v2 (trained)
06         :func:`subspace_explorer`   p, σ → DIP fitted along the top-p directions (trained)
07         :func:`remedies_explorer`   remedies shown, σ → the remedies against plain DIP (trained)
=========  ==========================  ====================================================
"""
import copy
import functools

import ipywidgets as widgets
import numpy as np

from dipcourse import checks
from dipcourse.config import get_profile
from dipcourse.dip import fit_dip
from dipcourse.jacobian import fit_along_directions
from dipcourse.metrics import psnr
from dipcourse.operators import Identity, RandomMask, measure
from dipcourse.priors import make_prox
from dipcourse.solvers import pnp_admm
from dipcourse.admm import dip_admm_v2
from dipcourse.remedies import fit_remedy, remedy_colour, remedy_spec
from dipcourse.runs import Iterate
from dipcourse.widgets.runner import cache_key
from dipcourse.widgets.views import InstantExplorer, LiveTrainer, describe, error_widget, make_slider, show_image


def refuses_bad_arguments(name):
    """Decorate a builder so that a bad argument — a ``ValueError``/``TypeError``, or a training option whose
    first step diverges (``DivergedError``) or fails inside torch (``RuntimeError``) — becomes a widget that
    shows the message (CSS class ``dipcourse-message``) in the lesson, instead of a traceback."""
    def decorate(builder):
        @functools.wraps(builder)
        def build(*args, **kwargs):
            try:
                return builder(*args, **kwargs)
            except (ValueError, TypeError, FloatingPointError, RuntimeError) as exc:
                return error_widget(exc, name)
        return build
    return decorate


def _stop_at_once(it):
    return True


def _one_step(train, sliders):
    """Train one iteration with the sliders' starting values, now: a wrong training option (lr ≤ 0, a network
    setting that does not fit the image, …) is refused while the widget is built — as a message in the widget —
    and not only when a slider first moves or Run is pressed."""
    train(_stop_at_once, **{key: slider.value for key, slider in sliders.items()})


def _linked(sliders, parts, name):
    """One box showing ``sliders`` once above several explorers that share them."""
    box = widgets.VBox([widgets.VBox(list(sliders.values())), *parts])
    box.add_class("dipcourse-widget")
    box.add_class(f"dipcourse-{name}")
    box.sliders = sliders
    return box


def _fresh_network(net):
    """A copy of ``net`` to train (runs train in place, and every slider value must start from the same θ₀),
    or ``None``: the run then builds its network from ``net_kwargs`` and its seed."""
    return None if net is None else copy.deepcopy(net)


def draw_dip_run(run, fig):
    """Measurement, PSNR curve with its peak, and final image of a DIP run."""
    result = run["result"]
    show_image(fig.add_subplot(1, 4, 1), run["measured"], f"noisy, {describe(run['values'])}")
    ax = fig.add_subplot(1, 4, (2, 3))
    history = result.history
    ax.plot(history["iteration"], history["psnr"], label="x_t")
    ax.plot(history["iteration"], history["psnr_smoothed"], label="smoothed r_t")
    ax.plot([result.peak_iteration], [result.peak_psnr], "v", color="k", label="peak")
    ax.set_xlabel("iteration")
    ax.set_ylabel("PSNR (dB)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    show_image(fig.add_subplot(1, 4, 4), result.x,
               f"final {result.final_psnr:.1f} dB\n(peak {result.peak_psnr:.1f} dB at {result.peak_iteration})")


# -- lesson 01 ---------------------------------------------------------------------------------

def cs_inpainting(image, lam, sigma, keep, iters=40, rho=1.0, seed=0):
    """Lesson 01's slider computation: inpaint ``image`` from a fraction ``keep`` of its entries
    with noise σ by PnP-ADMM (Algorithm 3) with the TV prox of weight ``lam``.

    Returns a dict: ``measured`` (the zero-filled image Aᵀb), ``psnr_measured``, ``result``
    (the :class:`dipcourse.Result` of :func:`dipcourse.solvers.pnp_admm`) and ``values``.
    """
    A = RandomMask(tuple(image.shape), keep=keep, seed=seed)
    b = measure(A, image, sigma, seed=seed)
    result = pnp_admm(A, b, make_prox("tv", lam=lam), rho=rho, iters=iters, ref=image)
    measured = A.adjoint(b)
    return dict(measured=measured, psnr_measured=psnr(image, measured), result=result,
                values=dict(lam=lam, sigma=sigma, keep=keep))


def draw_cs(run, fig):
    """Zero-filled measurement, PnP-ADMM TV reconstruction (PSNR in the titles), PSNR curve."""
    result, values = run["result"], run["values"]
    show_image(fig.add_subplot(1, 3, 1), run["measured"],
               f"measured (keep {values['keep']:.2f}, σ {values['sigma']:.3f})\n{run['psnr_measured']:.1f} dB")
    show_image(fig.add_subplot(1, 3, 2), result.x,
               f"PnP-ADMM TV, λ = {values['lam']:.3g}\n{result.final_psnr:.1f} dB")
    ax = fig.add_subplot(1, 3, 3)
    ax.plot(result.history["iteration"], result.history["psnr"])
    ax.set_xlabel("ADMM iteration")
    ax.set_ylabel("PSNR (dB)")
    ax.grid(alpha=0.3)


@refuses_bad_arguments("cs")
def cs_explorer(image, *, lam=0.01, sigma=10 / 255, keep=0.5, iters=40, rho=1.0, seed=0):
    """Lesson 01: sliders λ (TV weight), σ and sampling ratio → PnP-ADMM TV inpainting, redrawn at once.

    Computes :func:`cs_inpainting` (``iters`` ADMM iterations; 40 take well under a second at the
    quick profile's size) and draws it with :func:`draw_cs`. Defaults: the thesis's λ = 0.01,
    σ = 10/255, half the entries kept, ρ = 1. Slider CSS classes: ``dipcourse-slider-lam``,
    ``dipcourse-slider-sigma``, ``dipcourse-slider-keep``; plot: ``dipcourse-plot-cs``.
    """
    checks.image(image, "image", "cs_explorer")
    sliders = {
        "lam": make_slider("lam", lam, 1e-4, 1.0, log=True, description="λ (TV weight)"),
        "sigma": make_slider("sigma", sigma, 0.0, 0.2, 0.005, description="σ (noise)"),
        "keep": make_slider("keep", keep, 0.05, 1.0, 0.05, description="sampling ratio (keep)"),
    }

    def compute(lam, sigma, keep):
        return cs_inpainting(image, lam, sigma, keep, iters=iters, rho=rho, seed=seed)

    return InstantExplorer(compute, draw_cs, sliders, name="cs", figsize=(9.0, 3.2))


# -- lesson 02 ---------------------------------------------------------------------------------

def dip_denoising(callback, image, sigma, iters, lr=0.01, seed=0, net=None, net_kwargs=None, **fit_kwargs):
    """Lesson 02's training: DIP (:func:`dipcourse.dip.fit_dip`) denoising ``image`` + noise σ, calling
    ``callback`` each iteration (stops when it returns ``True``). Returns a dict: ``result``,
    ``measured`` (the noisy image), ``values``."""
    A = Identity(tuple(image.shape))
    b = measure(A, image, sigma, seed=seed)
    result = fit_dip(A, b, iters, net=_fresh_network(net), net_kwargs=net_kwargs, lr=lr, ref=image, seed=seed,
                     callback=callback, progress=False, **fit_kwargs)
    return dict(result=result, measured=b, values=dict(sigma=sigma))


@refuses_bad_arguments("dip-sigma")
def sigma_explorer(image, *, sigma=25 / 255, sigma_max=0.2, iters=None, lr=0.01, seed=0, net=None,
                   net_kwargs=None, initial=None, refresh_s=0.5, **fit_kwargs):
    """Lesson 02: a σ slider → DIP denoising trained live (progress, curve, Stop, cache per σ).

    Each run is :func:`dip_denoising` for ``iters`` iterations (default: the profile's), drawn by
    :func:`draw_dip_run`. The network is a copy of ``net``, or the network of ``net_kwargs`` seeded by
    ``seed``, or (both ``None``) fit_dip's thesis network; every σ starts from the same weights.
    ``initial``: a run for the starting σ (the dict :func:`dip_denoising` returns) to show without
    training. Extra keywords go to :func:`dipcourse.dip.fit_dip`. Slider: ``dipcourse-slider-sigma``;
    plot: ``dipcourse-plot-dip-sigma``.
    """
    checks.image(image, "image", "sigma_explorer")
    iters = get_profile().iters if iters is None else checks.iters(iters, "sigma_explorer")
    sliders = {"sigma": make_slider("sigma", sigma, 0.0, sigma_max, 0.005, description="σ (noise)")}

    def train(callback, sigma):
        return dip_denoising(callback, image, sigma, iters, lr=lr, seed=seed, net=net, net_kwargs=net_kwargs,
                             **fit_kwargs)

    _one_step(train, sliders)
    return LiveTrainer(train, sliders, draw=draw_dip_run, total=iters, initial=initial, refresh_s=refresh_s,
                       name="dip-sigma", figsize=(10.0, 2.8))


# -- lesson 03 ---------------------------------------------------------------------------------

def pnp_at_rho(A, b, ref, rho, prox, iters=50):
    """Lesson 03's instant part: PnP-ADMM (Algorithm 3) with penalty ρ. Returns a dict
    ``result``, ``values``."""
    return dict(result=pnp_admm(A, b, prox, rho=rho, iters=iters, ref=ref), values=dict(rho=rho))


def dip_admm_v2_at_rho(callback, A, b, ref, rho, prox, iters, lr=1e-3, seed=0, net=None, net_kwargs=None):
    """Lesson 03's trained part: DIP-ADMM-v2 (Algorithm 2) with penalty ρ. Returns a dict ``result``,
    ``values``."""
    result = dip_admm_v2(A, b, prox, iters, rho=rho, lr=lr, ref=ref, seed=seed,
                         net=_fresh_network(net), net_kwargs=net_kwargs, callback=callback, progress=False)
    return dict(result=result, values=dict(rho=rho))


def draw_rho_run(title):
    """A ``draw(run, fig)`` showing the PSNR curve of a run at one ρ and its final image."""
    def draw(run, fig):
        result = run["result"]
        ax = fig.add_subplot(1, 2, 1)
        ax.plot(result.history["iteration"], result.history["psnr"])
        ax.set_xlabel("iteration")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(f"{title}, ρ = {run['values']['rho']:.3g}", fontsize=10)
        ax.grid(alpha=0.3)
        show_image(fig.add_subplot(1, 2, 2), result.x, f"final {result.final_psnr:.1f} dB")
    return draw


@refuses_bad_arguments("rho")
def rho_explorer(A, b, ref, *, rho=1.0, rho_range=(0.01, 100.0), prior="tv", lam=0.01, pnp_iters=50,
                 dip_iters=None, lr=1e-3, seed=0, net=None, net_kwargs=None, initial=None, refresh_s=0.5):
    """Lesson 03: one ρ slider → PnP-ADMM redrawn at once AND DIP-ADMM-v2 trained live, cached per ρ.

    Both use the prior ``make_prox(prior, lam=lam)`` (thesis: TV, λ = 0.01, ρ = 1, lr 0.001), or
    ``prior`` itself when it is a ``prox(v, rho)`` callable (e.g. ``make_prox("nlm")``).
    ``dip_iters`` defaults to the profile's iterations; ``initial`` is a DIP-ADMM-v2 run for the
    starting ρ (the dict :func:`dip_admm_v2_at_rho` returns). Returns a box with ``.instant``
    (:class:`InstantExplorer`), ``.trainer`` (:class:`LiveTrainer`) and ``.sliders``. Slider:
    ``dipcourse-slider-rho``; plots: ``dipcourse-plot-pnp-rho`` and ``dipcourse-plot-dip-admm-rho``.
    """
    checks.measurement(A, b, "rho_explorer")
    prox = prior if callable(prior) else make_prox(prior, lam=lam)
    dip_iters = get_profile().iters if dip_iters is None else checks.iters(dip_iters, "rho_explorer")
    low, high = rho_range
    sliders = {"rho": make_slider("rho", rho, low, high, log=True, description="ρ (penalty)")}

    def compute(rho):
        return pnp_at_rho(A, b, ref, rho, prox, iters=pnp_iters)

    def train(callback, rho):
        return dip_admm_v2_at_rho(callback, A, b, ref, rho, prox, dip_iters, lr=lr, seed=seed, net=net,
                                  net_kwargs=net_kwargs)

    _one_step(train, sliders)
    instant = InstantExplorer(compute, draw_rho_run("PnP-ADMM"), sliders, name="pnp-rho",
                              figsize=(7.0, 2.8), show_sliders=False)
    trainer = LiveTrainer(train, sliders, draw=draw_rho_run("DIP-ADMM-v2"), total=dip_iters, initial=initial,
                          refresh_s=refresh_s, name="dip-admm-rho", figsize=(7.0, 2.8), show_sliders=False)
    box = _linked(sliders, [instant, trainer], "rho")
    box.instant, box.trainer = instant, trainer
    return box


# -- lesson 06 ---------------------------------------------------------------------------------

def subspace_fit(callback, U, ref, p, sigma, iters, lr=1e-3, seed=0, net=None, z=None, **fit_kwargs):
    """Lesson 06's training: fit DIP only along the top-``p`` columns of ``U`` (eq. 44,
    :func:`dipcourse.jacobian.fit_along_directions`) to ``ref`` + noise σ. Returns a dict
    ``result``, ``measured``, ``values``."""
    b = measure(Identity(tuple(ref.shape)), ref, sigma, seed=seed)
    result = fit_along_directions(b, U, iters, net=_fresh_network(net), z=z, lr=lr,
                                  ref=ref, seed=seed, p=p, callback=callback, progress=False, **fit_kwargs)
    return dict(result=result, measured=b, values=dict(p=p, sigma=sigma))


@refuses_bad_arguments("subspace")
def subspace_explorer(U, ref, *, net=None, z=None, p=None, p_max=None, sigma=25 / 255, sigma_max=0.2,
                      iters=None, lr=1e-3, seed=0, initial=None, refresh_s=0.5, **fit_kwargs):
    """Lesson 06: sliders p (directions) and σ → DIP fitted along the top-p eigen-directions, live.

    ``U`` (n × k) holds the eigenvectors of J Jᵀ at ``net``/``z`` (pass the same network and input:
    each run trains a copy, so all start from that θ₀). The noisy image is ``ref`` + σ noise (seeded).
    ``p`` defaults to k // 2; the p slider runs from 1 to ``p_max`` (default k); a p above k shows
    the module's message in the widget. ``iters`` defaults to the profile's. Sliders:
    ``dipcourse-slider-p``, ``dipcourse-slider-sigma``; plot: ``dipcourse-plot-subspace``. With a single
    direction to fit (``U`` of one column, or ``p_max=1``) there is no p slider: p = 1.
    """
    where = "subspace_explorer"
    checks.image(ref, "ref", where)
    if np.ndim(U) != 2 or np.shape(U)[1] < 1:
        raise ValueError(f"{where}: U must be an (n, k) array whose k ≥ 1 columns are eigenvectors, got shape "
                         f"{tuple(np.shape(U))}.")
    k = np.shape(U)[1]
    p = max(1, k // 2) if p is None else p
    p_max = k if p_max is None else p_max
    iters = get_profile().iters if iters is None else checks.iters(iters, where)
    sliders = {"sigma": make_slider("sigma", sigma, 0.0, sigma_max, 0.005, description="σ (noise)")}
    if p_max == 1:   # a slider needs a range of more than one value
        checks.integer(p, "p", where, minimum=1, maximum=1, hint="there is one direction to fit")
    else:
        sliders = {"p": make_slider("p", p, 1, p_max, integer=True, description="p (directions)"), **sliders}

    def train(callback, sigma, p=p):
        return subspace_fit(callback, U, ref, p, sigma, iters, lr=lr, seed=seed, net=net, z=z, **fit_kwargs)

    _one_step(train, sliders)
    return LiveTrainer(train, sliders, draw=draw_dip_run, total=iters, initial=initial, refresh_s=refresh_s,
                       name="subspace", figsize=(10.0, 2.8))


# -- lesson 07 ---------------------------------------------------------------------------------


def draw_remedies(run, fig, order=None):
    """PSNR against iteration of every remedy of ``run`` (the dict the widget's training returns; the posterior
    mean of a sampler dashed), and the final images beside it."""
    runs, values = run["runs"], run["values"]
    order = list(order or runs)
    if not runs:
        draw_placeholder_text(fig, "Pick at least one remedy (ctrl/shift-click in the list).")
        return
    left, right = fig.subfigures(1, 2, width_ratios=[1.25, 1.0])
    ax = left.add_subplot()
    finals = []
    for name, result in runs.items():
        history, colour = result.history, remedy_colour(order, name)
        ax.plot(history["iteration"], history["psnr"], color=colour, lw=1.2, label=name)
        finals.append(result.final_median("psnr"))
        if "psnr_mean" in history:
            ax.plot(history["iteration"], history["psnr_mean"], color=colour, lw=1.2, ls="--",
                    label=f"{name}: posterior mean")
    noisy = psnr(run["reference"], run["measured"])
    ax.axhline(noisy, color="0.6", lw=0.8, ls=":", label=f"noisy image ({noisy:.1f} dB)")
    ax.set_ylim(min(finals + [noisy]) - 2.0, None)
    ax.set_xlabel("iteration")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(f"denoising, σ = {255 * values['sigma']:.0f}/255", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    images = [("noisy", run["measured"])] + [(f"{name}\n{result.final_psnr:.1f} dB", result.x)
                                             for name, result in runs.items()]
    for name, result in runs.items():
        if "posterior_mean" in result.extras:
            mean = result.extras["posterior_mean"]
            images.append((f"{name}: mean\n{psnr(run['reference'], mean):.1f} dB", mean))
    cols = int(np.ceil(len(images) / 2)) if len(images) > 3 else len(images)
    rows = int(np.ceil(len(images) / cols))
    for index, (title, img) in enumerate(images):
        show_image(right.add_subplot(rows, cols, index + 1), img.clamp(0, 1), title)


def draw_placeholder_text(fig, text):
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, color="0.3")
    ax.set_axis_off()


@refuses_bad_arguments("remedies")
def remedies_explorer(image, remedies, *, shown=None, sigma=25 / 255, sigma_max=0.2, iters=None, seed=0,
                      noise_seed=None, precomputed=None, refresh_s=0.5):
    """Lesson 07: pick the remedies shown and the noise σ → each trained live on ``image`` + σ noise.

    ``remedies`` maps names to specs (:func:`remedy_spec`), e.g. ``{"DIP": ("dip", dict(lr=0.01)), ...}``;
    ``shown`` (default: the first two) are selected at the start. Each remedy runs :func:`fit_remedy` for
    ``iters`` iterations (default: the profile's) with network seed ``seed`` on
    b = ``measure(Identity, image, σ, seed=noise_seed)`` (``noise_seed`` defaults to ``seed``); runs are cached
    per (σ, remedy), so adding a remedy to the selection trains only that one, and a stopped run is not kept.
    ``precomputed``: ``{name: Result}`` already run at the starting σ with these settings (the lesson's own
    runs), shown without training. Drawn by :func:`draw_remedies`.

    Controls: ``dipcourse-slider-sigma`` (σ) and ``dipcourse-slider-remedies`` (a multiple selection); plot:
    ``dipcourse-plot-remedies``. Returns the :class:`LiveTrainer`; its ``train(callback, sigma, remedies)``
    runs the chosen remedies one after the other.
    """
    checks.image(image, "image", "remedies_explorer")
    if not isinstance(remedies, dict) or not remedies:
        raise ValueError("remedies_explorer: remedies must be a non-empty dict {name: (method, options) or "
                         "function sigma -> (method, options)}")
    specs = dict(remedies)
    names = list(specs)
    shown = tuple(names[:2] if shown is None else shown)
    unknown = [name for name in shown if name not in remedies]
    if unknown:
        raise ValueError(f"remedies_explorer: shown names {unknown} are not among the remedies {names}")
    iters = get_profile().iters if iters is None else checks.iters(iters, "remedies_explorer")
    seed = checks.seed(seed, "remedies_explorer")
    noise_seed = seed if noise_seed is None else checks.seed(noise_seed, "remedies_explorer", "noise_seed")
    A = Identity(tuple(image.shape))
    done = {}                                            # cache_key((σ, name)) -> Result
    training = {"names": []}

    def key(sigma, name):
        return cache_key({"sigma": float(sigma), "name": name})

    for name, result in (precomputed or {}).items():
        if name not in remedies:
            raise ValueError(f"remedies_explorer: precomputed run {name!r} is not among the remedies {names}")
        done[key(sigma, name)] = result

    slider_sigma = make_slider("sigma", sigma, 0.0, sigma_max, 1 / 255, description="σ (noise)")
    choice = widgets.SelectMultiple(options=names, value=shown, rows=len(names), description="remedies",
                                    style={"description_width": "12em"}, layout=widgets.Layout(width="32em"))
    choice.add_class("dipcourse-slider-remedies")
    sliders = {"sigma": slider_sigma, "remedies": choice}

    def measured(sigma):
        return measure(A, image, sigma, seed=noise_seed)

    for name in names:         # one iteration each, not cached: a wrong option is refused now, not at Run
        if key(sigma, name) in done:
            remedy_spec(specs[name], sigma)
        else:
            fit_remedy(_stop_at_once, specs[name], A, measured(sigma), 1, sigma, ref=image, seed=seed)

    def todo(sigma, chosen):
        return [name for name in chosen if key(sigma, name) not in done]

    def total(sigma, remedies):
        return max(1, iters * len(todo(sigma, remedies)))

    def train(callback, sigma, remedies):
        b = measured(sigma)
        training["names"] = todo(sigma, remedies)
        stopped = False
        for index, name in enumerate(training["names"]):
            asked = []

            def report(it, index=index):
                view = Iterate(it.iteration, it.x, {"psnr": it.values.get("psnr", float("nan")),
                                                    "remedy": index + 1}, it.state, it.run)
                asked.append(bool(callback(view)))
                return asked[-1]

            result = fit_remedy(report, specs[name], A, b, iters, sigma, ref=image, seed=seed)
            if any(asked):
                stopped = True
                partial = result
                break
            done[key(sigma, name)] = result
        runs = {name: done[key(sigma, name)] for name in remedies if key(sigma, name) in done}
        if stopped:
            runs[name] = partial
        return dict(runs=runs, measured=b, reference=image, values=dict(sigma=sigma, remedies=tuple(remedies)))

    def draw(run, fig):
        draw_remedies(run, fig, order=names)

    def draw_live(curve, fig):
        ax = fig.add_subplot()
        sigma_now = curve.values["sigma"]
        for name in curve.values["remedies"]:
            if key(sigma_now, name) in done and name not in training["names"]:
                history = done[key(sigma_now, name)].history
                ax.plot(history["iteration"], history["psnr"], color=remedy_colour(names, name), label=name)
        which = np.asarray(curve.scalars.get("remedy", []), dtype=int)
        values = np.asarray(curve.scalars.get("psnr", []), dtype=float)
        steps = np.asarray(curve.iterations[:len(values)])
        for index, name in enumerate(training["names"]):
            mask = which[:len(values)] == index + 1
            if mask.any():
                ax.plot(steps[mask], values[mask], color=remedy_colour(names, name), label=f"{name} (training)")
        ax.set_xlim(0, iters)
        ax.set_xlabel("iteration")
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(loc="lower right", fontsize=8)
        ax.set_title(f"training σ = {255 * sigma_now:.0f}/255: {curve.done}/{curve.total} iterations", fontsize=10)

    initial = None
    if all(key(sigma, name) in done for name in shown) and shown:
        initial = dict(runs={name: done[key(sigma, name)] for name in shown}, measured=measured(sigma),
                       reference=image, values=dict(sigma=sigma, remedies=shown))
    trainer = LiveTrainer(train, sliders, draw=draw, draw_live=draw_live, total=total, initial=initial,
                          refresh_s=refresh_s, name="remedies", figsize=(11.0, 3.6))
    trainer.remedies = specs
    trainer.runs_done = done
    return trainer

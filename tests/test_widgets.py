"""Tests of dipcourse.widgets: the compute parts are driven by setting slider values in Python.

The runner is tested without any widget (a recording listener); the generic views with small fake
compute/train functions whose calls we count; the lesson builders on tiny problems with the real modules.
"""
import base64
import html
import threading
import time

import ipywidgets
import numpy as np
import pytest

from dipcourse import widgets as W
from dipcourse.operators import Identity
from dipcourse.runs import Iterate
from dipcourse.widgets.runner import Listener, TrainingRunner

TIMEOUT = 60  # seconds; a generous bound for joins on a busy machine, never reached when all works


def draw_value(result, fig):
    """Draw a scalar result as a grey square whose brightness is the value."""
    ax = fig.add_subplot()
    ax.imshow(np.full((4, 4), float(result)), cmap="gray", vmin=0, vmax=1)


class CountingCompute:
    def __init__(self):
        self.calls = []

    def __call__(self, sigma):
        self.calls.append(sigma)
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        return min(1.0, sigma)


def sigma_slider(value=0.1):
    return W.make_slider("sigma", value, -0.5, 1.0, 0.05, description="σ")


# ---- InstantExplorer ------------------------------------------------------------------------

def test_instant_slider_change_recomputes_caches_and_redraws():
    compute = CountingCompute()
    explorer = W.InstantExplorer(compute, draw_value, {"sigma": sigma_slider(0.1)}, name="test")
    first_png = explorer.image.value
    assert compute.calls == [0.1] and explorer.result == 0.1 and first_png[:4] == b"\x89PNG"

    explorer.sliders["sigma"].value = 0.6
    assert compute.calls == [0.1, 0.6]
    assert explorer.cache[W.cache_key({"sigma": 0.6})] == 0.6
    assert explorer.image.value != first_png

    explorer.sliders["sigma"].value = 0.1  # back to a computed value: from the cache, same picture
    assert compute.calls == [0.1, 0.6]
    assert explorer.image.value == first_png


def test_instant_bad_input_shows_message_not_exception():
    compute = CountingCompute()
    explorer = W.InstantExplorer(compute, draw_value, {"sigma": sigma_slider(0.1)})
    png = explorer.image.value
    explorer.sliders["sigma"].value = -0.2
    assert "sigma must be" in explorer.message.value
    assert isinstance(explorer.last_error, ValueError)
    assert explorer.image.value == png  # the last good picture stays
    explorer.sliders["sigma"].value = 0.3
    assert explorer.message.value == "" and explorer.result == 0.3


def test_css_classes_for_browser_tests():
    explorer = W.InstantExplorer(CountingCompute(), draw_value, {"sigma": sigma_slider()}, name="demo")
    assert "dipcourse-slider-sigma" in explorer.sliders["sigma"]._dom_classes
    assert {"dipcourse-plot", "dipcourse-plot-demo"} <= set(explorer.image._dom_classes)
    assert {"dipcourse-widget", "dipcourse-demo"} <= set(explorer._dom_classes)
    assert "dipcourse-message" in explorer.message._dom_classes
    assert explorer.sliders["sigma"].continuous_update is False


def test_make_slider_kinds():
    assert isinstance(W.make_slider("p", 4, 1, 16, integer=True), ipywidgets.IntSlider)
    log = W.make_slider("rho", 1.0, 0.01, 100.0, log=True)
    assert isinstance(log, ipywidgets.FloatLogSlider) and (log.min, log.max) == (-2.0, 2.0)
    assert W.cache_key({"a": 0.1 + 0.2}) == W.cache_key({"a": 0.3})


# ---- LiveTrainer ----------------------------------------------------------------------------

class FakeTrainer:
    """train(callback, sigma): `iters` iterations reporting a PSNR; returns the final 'image' value.

    Runs for a σ in ``block`` keep iterating (slowly) until ``report`` asks them to stop, so a test
    can act while they run. Tracks how many runs train at once.
    """

    def __init__(self, iters=20, block=()):
        self.iters, self.block = iters, set(block)
        self.calls, self.iterations_done = [], []
        self.started = threading.Event()
        self.active = self.max_active = 0
        self._lock = threading.Lock()

    def __call__(self, callback, sigma):
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        with self._lock:
            self.calls.append(sigma)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        self.started.set()
        blocking = sigma in self.block
        try:
            k = 0
            while k < self.iters or blocking:
                if callback(Iterate(k, None, {"psnr": 20 + k * sigma, "loss": 1.0 / (k + 1)})):
                    break
                k += 1
                if blocking:
                    threading.Event().wait(0.005)
            self.iterations_done.append(k)
            return min(1.0, sigma + 0.01 * k)
        finally:
            with self._lock:
                self.active -= 1


def make_trainer(train, value=0.1, **kwargs):
    kwargs.setdefault("refresh_s", 60.0)  # no live frames unless a test asks (rendering is slow)
    kwargs.setdefault("draw", draw_value)
    return W.LiveTrainer(train, {"sigma": sigma_slider(value)}, total=20, figsize=(3, 2.5), dpi=40, **kwargs)


def dipcourse_threads():
    return [t for t in threading.enumerate() if t.name.startswith("dipcourse-") and t.is_alive()]


def test_headless_construction_trains_nothing():
    train = FakeTrainer()
    trainer = make_trainer(train)
    assert train.calls == [] and not trainer.busy and dipcourse_threads() == []
    assert trainer.image.value[:4] == b"\x89PNG"  # the placeholder picture
    assert "not trained yet" in trainer.status.value
    assert trainer.result is None


def test_initial_result_is_shown_and_cached():
    train = FakeTrainer()
    trainer = make_trainer(train, initial=0.42)
    assert train.calls == [] and trainer.result == 0.42
    assert trainer.cache[W.cache_key({"sigma": 0.1})] == 0.42
    assert "cached" in trainer.status.value


def test_slider_change_trains_in_background_then_cache_makes_return_instant():
    train = FakeTrainer()
    trainer = make_trainer(train)
    placeholder = trainer.image.value

    trainer.sliders["sigma"].value = 0.5
    assert trainer.wait(TIMEOUT) == pytest.approx(0.7)
    assert train.calls == [0.5] and train.iterations_done == [20]
    assert trainer.cache[W.cache_key({"sigma": 0.5})] == pytest.approx(0.7)
    assert trainer.image.value != placeholder and trainer.progress.value == 1.0
    png_05 = trainer.image.value

    trainer.sliders["sigma"].value = 0.2
    trainer.wait(TIMEOUT)
    assert train.calls == [0.5, 0.2] and trainer.image.value != png_05

    trainer.sliders["sigma"].value = 0.5  # already trained: no new run, the same picture at once
    assert train.calls == [0.5, 0.2] and not trainer.busy
    assert trainer.image.value == png_05 and trainer.result == pytest.approx(0.7)


def test_run_button_trains_current_values():
    train = FakeTrainer()
    trainer = make_trainer(train, value=0.3, run_on_change=False)
    trainer.sliders["sigma"].value = 0.4  # no training on change with run_on_change=False
    assert train.calls == []
    trainer.run_button.click()
    trainer.wait(TIMEOUT)
    assert train.calls == [0.4] and trainer.result == pytest.approx(0.6)


def test_live_curve_is_drawn_during_run():
    train = FakeTrainer()
    trainer = make_trainer(train, refresh_s=0.0)
    frames = []
    trainer.image.observe(lambda change: frames.append(change["new"]), names="value")
    curves = []
    trainer.draw_live = lambda curve, fig: (curves.append(list(curve.scalars.get("psnr", []))),
                                            W.draw_live_curve(curve, fig))
    trainer.run_now({"sigma": 0.3})
    assert len(frames) >= 3  # start, at least one live frame, the final picture
    assert any(len(c) > 1 for c in curves)
    assert curves[-1] == pytest.approx([20 + k * 0.3 for k in range(len(curves[-1]))])


def test_stop_button_stops_the_run_and_does_not_cache_it():
    train = FakeTrainer(block={0.3})
    trainer = make_trainer(train)
    trainer.sliders["sigma"].value = 0.3
    assert train.started.wait(TIMEOUT) and trainer.busy
    assert not trainer.stop_button.disabled
    trainer.stop_button.click()
    trainer.wait(TIMEOUT)
    assert not trainer.busy and len(train.iterations_done) == 1
    assert W.cache_key({"sigma": 0.3}) not in trainer.cache
    assert "stopped" in trainer.status.value
    assert trainer.result == pytest.approx(0.3 + 0.01 * train.iterations_done[0])  # partial run shown


def test_new_selection_stops_old_run_and_stale_run_never_draws():
    train = FakeTrainer(block={0.3})
    drawn = []
    trainer = make_trainer(train, draw=lambda result, fig: (drawn.append(result), draw_value(result, fig)))
    trainer.sliders["sigma"].value = 0.3
    assert train.started.wait(TIMEOUT)
    first_thread = trainer.runner.current.thread
    trainer.sliders["sigma"].value = 0.6
    trainer.wait(TIMEOUT)
    first_thread.join(TIMEOUT)
    assert train.calls == [0.3, 0.6]
    assert train.max_active == 1  # never two trainings at once
    assert W.cache_key({"sigma": 0.3}) not in trainer.cache  # stopped, so not cached
    assert drawn == [pytest.approx(0.6 + 0.2)]  # the stale run drew nothing
    assert trainer.result == pytest.approx(0.8)


def test_training_error_shows_message_not_exception():
    train = FakeTrainer()
    trainer = make_trainer(train)
    trainer.sliders["sigma"].value = -0.2
    trainer.wait(TIMEOUT)
    assert "sigma must be" in trainer.message.value
    assert isinstance(trainer.last_error, ValueError) and not trainer.busy
    assert trainer.cache == {}
    assert trainer.run_now({"sigma": -0.3}) is None  # synchronous path: message too, no exception
    assert "-0.3" in trainer.message.value


def test_run_now_is_synchronous_and_moves_slider_without_background_run():
    train = FakeTrainer()
    trainer = make_trainer(train)
    result = trainer.run_now({"sigma": 0.25})
    assert result == pytest.approx(0.45) and trainer.sliders["sigma"].value == 0.25
    assert dipcourse_threads() == [] and train.calls == [0.25]
    assert trainer.run_now({"sigma": 0.25}) == pytest.approx(0.45) and train.calls == [0.25]
    assert trainer.run_now({"sigma": 0.25}, force=True) and train.calls == [0.25, 0.25]
    with pytest.raises(ValueError, match="no slider named"):
        trainer.run_now({"rho": 1.0})


# ---- lesson builders on tiny problems ---------------------------------------------------------

TINY_NET = dict(in_channels=4, nd=[8, 8], nu=[8, 8], ns=[0, 0])


def tiny_image(channels=1, size=16, seed=0):
    import torch
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(1, channels, size, size, generator=g), 3, 1, 1)
    return smooth[0].clamp(0, 1)


def test_sigma_explorer_trains_caches_and_matches_fit_dip():
    from dipcourse.dip import fit_dip
    from dipcourse.operators import Identity, measure

    image = tiny_image()
    explorer = W.sigma_explorer(image, sigma=0.1, iters=8, lr=0.01, net_kwargs=TINY_NET, refresh_s=60.0)
    assert explorer.result is None and not explorer.busy  # headless: nothing trained
    placeholder = explorer.image.value

    explorer.sliders["sigma"].value = 0.05
    run = explorer.wait(TIMEOUT)
    assert run["values"] == {"sigma": 0.05} and len(run["result"].history["psnr"]) == 8
    assert explorer.image.value != placeholder and explorer.message.value == ""

    # The widget's run is exactly the ordinary function call (same seed, same network, same noise).
    from dipcourse.config import seed_everything
    from dipcourse.dip import SkipNet
    seed_everything(0)
    net = SkipNet(out_channels=1, **TINY_NET)
    A = Identity(tuple(image.shape))
    direct = fit_dip(A, measure(A, image, 0.05, seed=0), 8, net=net, lr=0.01, ref=image, seed=0, progress=False)
    np.testing.assert_allclose(run["result"].history["psnr"], direct.history["psnr"], rtol=1e-5)

    png = explorer.image.value
    explorer.sliders["sigma"].value = 0.1
    explorer.wait(TIMEOUT)
    explorer.sliders["sigma"].value = 0.05  # cached: instant, no new thread
    assert not explorer.busy and explorer.image.value == png
    assert len(explorer.cache) == 2


def test_subspace_explorer_runs_and_reports_p_too_large():
    import torch

    from dipcourse.config import seed_everything
    from dipcourse.dip import SkipNet, make_input

    image = tiny_image()
    seed_everything(0)
    net = SkipNet(out_channels=1, **TINY_NET)
    z = make_input(4, 16, 16, seed=0)
    U, _ = torch.linalg.qr(torch.randn(image.numel(), 6, generator=torch.Generator().manual_seed(1)))
    before = [t.detach().clone() for t in net.parameters()]

    explorer = W.subspace_explorer(U.numpy(), image, net=net, z=z, p=3, p_max=10, sigma=0.1, iters=5,
                                   refresh_s=60.0)
    assert explorer.result is None
    run = explorer.run_now({"p": 4})
    assert run["values"] == {"p": 4, "sigma": 0.1} and run["result"].params["p"] == 4
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))  # the caller's θ₀ untouched

    explorer.sliders["p"].value = 8  # more directions than U has columns
    explorer.wait(TIMEOUT)
    assert "p must be an integer ≥ 1 and ≤ 6, got 8" in explorer.message.value
    assert isinstance(explorer.last_error, ValueError)
    assert W.cache_key({"p": 8, "sigma": 0.1}) not in explorer.cache


def test_cs_explorer_redraws_on_each_slider():
    image = tiny_image(channels=3, size=32)
    explorer = W.cs_explorer(image, iters=20)
    run = explorer.result
    assert run["result"].final_psnr > run["psnr_measured"]  # TV inpainting beats the zero-filled image
    for key, value in [("lam", 0.1), ("sigma", 0.05), ("keep", 0.8)]:
        png = explorer.image.value
        explorer.sliders[key].value = value
        assert explorer.message.value == "" and explorer.image.value != png
        assert explorer.result["values"][key] == pytest.approx(value)
    assert len(explorer.cache) == 4


def test_rho_explorer_instant_pnp_and_trained_dip_admm():
    from dipcourse.operators import RandomMask, measure
    from dipcourse.priors import make_prox

    image = tiny_image()
    A = RandomMask(tuple(image.shape), keep=0.5, seed=0)
    b = measure(A, image, 0.05, seed=0)
    box = W.rho_explorer(A, b, image, prior=make_prox("tv", lam=0.02), pnp_iters=10, dip_iters=4,
                         net_kwargs=TINY_NET, refresh_s=60.0)
    assert box.instant.result["values"] == {"rho": 1.0}  # PnP drawn at once
    assert box.trainer.result is None and not box.trainer.busy  # DIP-ADMM waits for a person
    pnp_png, dip_png = box.instant.image.value, box.trainer.image.value

    box.sliders["rho"].value = 10.0
    run = box.trainer.wait(TIMEOUT)
    assert box.instant.result["values"] == {"rho": 10.0} and box.instant.image.value != pnp_png
    assert run["values"] == {"rho": 10.0} and run["result"].params["rho"] == 10.0
    assert box.trainer.image.value != dip_png


def test_two_trainers_never_train_at_once():
    train = FakeTrainer(block={0.3})
    first, second = make_trainer(train), make_trainer(train)
    first.sliders["sigma"].value = 0.3
    assert train.started.wait(TIMEOUT)
    second.sliders["sigma"].value = 0.4  # stops the first trainer's run, then trains
    second.wait(TIMEOUT)
    first.wait(TIMEOUT)
    assert train.max_active == 1 and train.calls == [0.3, 0.4]
    assert "stopped" in first.status.value and W.cache_key({"sigma": 0.3}) not in first.cache
    assert second.result == pytest.approx(0.6)


def test_moving_to_a_cached_value_stops_the_run_which_then_stays_silent():
    train = FakeTrainer(block={0.3})
    trainer = make_trainer(train)
    trainer.store({"sigma": 0.5}, 0.9)
    trainer.sliders["sigma"].value = 0.3
    assert train.started.wait(TIMEOUT)
    trainer.sliders["sigma"].value = 0.5  # cached: shown at once, the running 0.3 stops
    cached_png = trainer.image.value
    trainer.wait(TIMEOUT)
    assert len(train.iterations_done) == 1 and not trainer.busy
    assert trainer.result == 0.9 and trainer.image.value == cached_png
    assert trainer.status.value.startswith("cached") and W.cache_key({"sigma": 0.3}) not in trainer.cache


# ---- the runner without widgets ----------------------------------------------------------------

class Recorder(Listener):
    """A listener that writes down what the runner tells it."""

    def __init__(self):
        self.events = []

    def on_started(self, run):
        self.events.append(("started", dict(run.values)))

    def on_progress(self, run):
        self.events.append(("progress", run.curve.done))

    def on_finished(self, run, result):
        self.events.append(("finished", result, run.stopped))

    def on_failed(self, run, error):
        self.events.append(("failed", str(error)))


def test_runner_runs_caches_and_reports_without_any_widget():
    train = FakeTrainer(iters=30)
    recorder = Recorder()
    runner = TrainingRunner(train, total=30, refresh_s=0.0, listener=recorder)
    result = runner.run_now({"sigma": 0.2})
    assert result == pytest.approx(0.5) and runner.cached({"sigma": 0.2}) == pytest.approx(0.5)
    kinds = [event[0] for event in recorder.events]
    assert kinds[0] == "started" and kinds[-1] == "finished" and kinds.count("progress") == 30
    assert runner.start({"sigma": 0.2}) is None          # cached: no thread, no new training
    assert train.calls == [0.2]


def test_runner_throttles_progress_reports():
    def slow(callback, sigma):
        for k in range(40):
            time.sleep(0.005)
            callback(Iterate(k, None, {"loss": 1.0}))
        return sigma

    recorder = Recorder()
    TrainingRunner(slow, refresh_s=0.05, listener=recorder).run_now({"sigma": 0.1})
    reports = [e for e in recorder.events if e[0] == "progress"]
    assert 1 <= len(reports) <= 8        # 40 iterations over ≥ 0.2 s at one report per 0.05 s at most


def test_runner_stop_is_not_cached_and_failures_are_reported():
    train = FakeTrainer(block={0.3})
    recorder = Recorder()
    runner = TrainingRunner(train, listener=recorder)
    thread = runner.start({"sigma": 0.3})
    assert train.started.wait(TIMEOUT) and runner.busy
    runner.stop()
    thread.join(TIMEOUT)
    assert recorder.events[-1][0] == "finished" and recorder.events[-1][2] is True
    assert runner.cached({"sigma": 0.3}) is None
    assert runner.run_now({"sigma": -1.0}) is None
    assert recorder.events[-1] == ("failed", "sigma must be >= 0, got -1.0")


@pytest.mark.parametrize("build, match", [
    (lambda: W.sigma_explorer(tiny_image(), sigma=-0.1, iters=2), "starting value -0.1 lies outside"),
    (lambda: W.sigma_explorer(tiny_image(), sigma=0.1, sigma_max=0.0, iters=2), "min < max"),
    (lambda: W.cs_explorer(tiny_image(3, 16), lam=0.0), "starting value 0.0 lies outside"),
    (lambda: W.subspace_explorer(np.eye(256)[:, :4], tiny_image(), p=9, iters=2), "lies outside"),
    (lambda: W.sigma_explorer(tiny_image(), iters=0), "iters must be an integer ≥ 1"),
    # training options are tried with one step when the widget is built, not at the first slider move
    (lambda: W.sigma_explorer(tiny_image(), lr=-1.0, iters=2), "fit_dip: lr must be a finite number > 0"),
    (lambda: W.sigma_explorer(tiny_image(), iters=2, net_kwargs=dict(nd=[8, True])), "SkipNet: nd[1] must be"),
    (lambda: W.rho_explorer(Identity((3, 16, 16)), tiny_image(3), tiny_image(3), lr=0.0, dip_iters=2),
     "dip_admm_v2: lr must be a finite number > 0"),
])
def test_builders_refuse_bad_starting_values_with_a_message_in_the_widget(build, match):
    widget = build()
    assert "dipcourse-widget" in widget._dom_classes
    message = widget.children[0]
    assert "dipcourse-message" in message._dom_classes and match in html.unescape(message.value)


def test_rho_range_from_zero_is_refused_not_minus_infinity():
    from dipcourse.operators import RandomMask, measure
    image = tiny_image()
    A = RandomMask(tuple(image.shape), keep=0.5, seed=0)
    box = W.rho_explorer(A, measure(A, image, 0.05), image, rho_range=(0, 100), dip_iters=2)
    assert "logarithmic slider needs min > 0" in html.unescape(box.children[0].value)


def test_a_displayed_widget_offers_its_picture_to_static_pages():
    explorer = W.InstantExplorer(CountingCompute(), draw_value, {"sigma": sigma_slider(0.3)}, name="static")
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]) == explorer.image.value
    assert "Interactive widget" in bundle["text/plain"]

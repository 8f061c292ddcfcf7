"""The batched runner (dipcourse.batched) must reproduce K sequential runs with the same seeds.

In float64 the only difference is the order of floating-point sums, so the curves agree to ~1e-10.
(In float32 the networks' pre-BatchNorm biases, whose gradient is pure rounding noise that Adam
amplifies, make the two runs drift apart slowly; see the module docstring. The float32 test therefore
compares a short run with a tolerance far below the curves' changes.)
"""
import os
import time

import numpy as np
import pytest
import torch

from dipcourse.batched import NetworkStack, fit_many
from dipcourse.dip import prepare_network
from dipcourse.operators import RandomMask, measure

TINY_NET = dict(nd=[4, 4], ns=[2, 2])   # 2 levels: 16 px images, fast even in float64
SHAPE = (3, 16, 16)


def _problems(count, dtype):
    generator = torch.Generator().manual_seed(123)
    refs = [torch.rand(SHAPE, generator=generator, dtype=torch.float64).to(dtype) for _ in range(count)]
    ops = [RandomMask(SHAPE, keep=0.5, seed=k) for k in range(count)]
    bs = [measure(A, ref, 10 / 255, seed=k) for k, (A, ref) in enumerate(zip(ops, refs))]
    return ops, bs, refs


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _assert_same_runs(sequential, batched, keys, atol):
    assert len(sequential) == len(batched)
    for s, b in zip(sequential, batched):
        for key in keys:
            np.testing.assert_allclose(b.history[key], s.history[key], rtol=0, atol=atol, err_msg=key)
        torch.testing.assert_close(b.x, s.x, rtol=0, atol=1e-3 if atol > 1e-6 else 1e-10)


def _prox_tv():
    from dipcourse.priors import make_prox
    return make_prox("tv", lam=0.01)


@pytest.mark.parametrize("method", ["dip", "admm_v2"])
def test_batched_equals_sequential_float64(float64, method):
    ops, bs, refs = _problems(2, torch.float64)
    kwargs = dict(lr=0.01, refs=refs, seeds=[0, 5], net_kwargs=TINY_NET, snapshots=(1, 5, 11), progress=False)
    if method == "admm_v2":
        kwargs["prox"] = _prox_tv()
    sequential = fit_many(method, ops, bs, 12, batched=False, workers=0, **kwargs)
    batched = fit_many(method, ops, bs, 12, batched=True, **kwargs)
    keys = ["loss", "psnr", "psnr_smoothed"] + (["psnr_x", "data", "prox_calls"] if method == "admm_v2" else [])
    _assert_same_runs(sequential, batched, keys, atol=1e-9)
    for s, b in zip(sequential, batched):
        assert sorted(b.snapshots) == sorted(s.snapshots) == [1, 5, 11]
        for it in (1, 5, 11):
            torch.testing.assert_close(b.snapshots[it], s.snapshots[it], rtol=0, atol=1e-10)
        assert not torch.equal(s.snapshots[1], s.snapshots[11])
        assert b.params.get("loss") == s.params.get("loss")      # the history means the same thing
    # the runs are really different problems (not K copies of one): curves differ between images
    assert abs(batched[0].history["psnr"][-1] - batched[1].history["psnr"][-1]) > 0.01
    if method == "admm_v2":
        assert batched[0].history["prox_calls"][-1] == 12   # one prox call per iteration and image


def test_batched_equals_sequential_float32_short_run():
    ops, bs, refs = _problems(2, torch.float32)
    kwargs = dict(prox=_prox_tv(), lr=0.001, refs=refs, net_kwargs=TINY_NET, progress=False)
    sequential = fit_many("admm_v2", ops, bs, 15, batched=False, workers=0, **kwargs)
    batched = fit_many("admm_v2", ops, bs, 15, batched=True, **kwargs)
    _assert_same_runs(sequential, batched, ["psnr", "psnr_x"], atol=1e-3)   # dB


def test_sequential_path_is_fit_dip_with_the_prepared_network():
    from dipcourse.dip import fit_dip
    ops, bs, refs = _problems(2, torch.float32)
    many = fit_many("dip", ops, bs, 5, refs=refs, seeds=[3, 4], net_kwargs=TINY_NET, batched=False, workers=0,
                    progress=False)
    net, z = prepare_network(SHAPE, seed=4, **TINY_NET)
    alone = fit_dip(ops[1], bs[1], 5, net=net, z=z, ref=refs[1], seed=4, progress=False)
    np.testing.assert_array_equal(many[1].history["psnr"], alone.history["psnr"])


def test_network_stack_evaluates_each_network_on_its_input():
    built = [prepare_network(SHAPE, seed=seed, **TINY_NET) for seed in (0, 1)]
    stack = NetworkStack([net for net, _ in built], [z for _, z in built], torch.device("cpu"))
    out = stack()
    assert out.shape == (2, *SHAPE)
    for k, (net, z) in enumerate(built):
        torch.testing.assert_close(out[k], net.train()(z)[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(stack.network(k).train()(z)[0], out[k], rtol=1e-5, atol=1e-6)


def test_auto_runs_in_processes_on_the_cpu_and_batched_runs_amortise_time():
    ops, bs, refs = _problems(2, torch.float32)
    auto = fit_many("dip", ops, bs, 3, refs=refs, net_kwargs=TINY_NET, progress=False)
    expected = "processes" if (os.cpu_count() or 1) >= 2 else "sequential"
    assert all(r.params["mode"] == expected for r in auto)      # CPU: not batched (see the benchmark)
    start = time.perf_counter()
    forced = fit_many("dip", ops, bs, 3, refs=refs, net_kwargs=TINY_NET, batched=True, progress=False)
    elapsed = time.perf_counter() - start
    assert all(r.params["batched"] == 2 for r in forced)
    # each image is charged half of the shared clock: equal shares that add up to at most the call's duration
    # (not a lower bound: the call also builds the networks, which can take longer than three tiny steps)
    shares = [r.history["time_wall"][-1] for r in forced]
    assert shares[0] == pytest.approx(shares[1], rel=0.05) and 0 < sum(shares) <= elapsed


def test_one_operator_for_all_images():
    A = RandomMask(SHAPE, seed=0)
    refs = [torch.rand(SHAPE), torch.rand(SHAPE)]
    bs = torch.stack([measure(A, r, 0.0) for r in refs])
    results = fit_many("dip", A, bs, 2, refs=refs, net_kwargs=TINY_NET, progress=False)
    assert len(results) == 2 and results[1].x.shape == SHAPE


@pytest.mark.parametrize("change, match", [
    (dict(method="pnp"), "method must be one of"),
    (dict(method="admm_v2"), "needs a prior"),
    (dict(batched="yes"), "batched must be"),
    (dict(seeds=[0]), "seeds must be a list of 2 entries"),
    (dict(seeds=[0, -1]), "seeds must be an integer ≥ 0"),
    (dict(refs=[None]), "refs must be a list of 2 entries"),
    (dict(bs=[]), "at least one"),
])
def test_bad_input_is_refused(change, match):
    ops, bs, _ = _problems(2, torch.float32)
    args = dict(method="dip", A=ops, bs=bs, iters=2, net_kwargs=TINY_NET, progress=False)
    args.update(change)
    with pytest.raises(ValueError, match=match):
        fit_many(**args)


def test_operator_count_must_match():
    ops, bs, _ = _problems(2, torch.float32)
    with pytest.raises(ValueError, match="3 operators for 2"):
        fit_many("dip", ops + ops[:1], bs, 2, net_kwargs=TINY_NET, progress=False)


def test_images_of_different_shapes_are_refused():
    A1, A2 = RandomMask(SHAPE, seed=0), RandomMask((3, 32, 32), seed=0)
    bs = [measure(A1, torch.rand(SHAPE), 0.0), measure(A2, torch.rand(3, 32, 32), 0.0)]
    with pytest.raises(ValueError, match="one shape"):
        fit_many("dip", [A1, A2], bs, 2, net_kwargs=TINY_NET, progress=False)


def test_processes_give_the_same_runs_as_one_thread_here():
    """The worker processes run each fit on one torch thread, so with one thread here the sequential runs
    are bit for bit the same — whatever the thread count of the notebook that asks for them."""
    ops, bs, refs = _problems(2, torch.float32)
    kwargs = dict(prox=_prox_tv(), lr=0.01, refs=refs, net_kwargs=TINY_NET, snapshots=(3,), progress=False)
    parallel_runs = fit_many("admm_v2", ops, bs, 6, workers=2, **kwargs)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        here = fit_many("admm_v2", ops, bs, 6, workers=0, **kwargs)
    finally:
        torch.set_num_threads(threads)
    for p, h in zip(parallel_runs, here):
        assert p.params["threads"] == 1 and p.params["mode"] == "processes"
        for key in ("loss", "psnr", "psnr_x", "prox_calls"):
            np.testing.assert_array_equal(p.history[key], h.history[key])
        assert torch.equal(p.snapshots[3], h.snapshots[3])


def test_processes_refuse_what_cannot_travel():
    ops, bs, refs = _problems(2, torch.float32)
    with pytest.raises(ValueError, match="picklable"):
        fit_many("admm_v2", ops, bs, 2, prox=lambda v, rho: v, workers=2, net_kwargs=TINY_NET, progress=False)

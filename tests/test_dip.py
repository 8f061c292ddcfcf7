"""Tests of dipcourse.dip: the skip network, fit_dip and the ES-WMV early-stopping detector."""
import numpy as np
import pytest
import torch

from dipcourse.dip import SkipNet, WMVStopper, fit_dip, make_input
from dipcourse.operators import Identity, RandomMask


# ---------------------------------------------------------------- parameter counts

def conv(cin, cout, k, bias=True):
    """Weights cin·cout·k² plus one bias per output channel."""
    return cin * cout * k * k + (cout if bias else 0)


def bn(c, affine=True):
    """BatchNorm: a scale and a shift per channel (running statistics are buffers, not parameters)."""
    return 2 * c if affine else 0


def skip_count(cin, cout, nd, nu, ns, kd, ku, bias=True, affine=True, conv1x1_up=True):
    """Hand count, layer by layer, of DIP's skip() network (models/skip.py)."""
    total = 0
    inputs = [cin] + nd[:-1]
    for i in range(len(nd)):
        if ns[i]:
            total += conv(inputs[i], ns[i], 1, bias) + bn(ns[i], affine)                  # skip 1×1
        total += conv(inputs[i], nd[i], kd, bias) + bn(nd[i], affine)                     # down, stride 2
        total += conv(nd[i], nd[i], kd, bias) + bn(nd[i], affine)                         # down, stride 1
        deeper = nd[i] if i == len(nd) - 1 else nu[i + 1]
        total += bn(ns[i] + deeper, affine)                                               # BN on the concat
        total += conv(ns[i] + deeper, nu[i], ku, bias) + bn(nu[i], affine)                # up conv ku
        if conv1x1_up:
            total += conv(nu[i], nu[i], 1, bias) + bn(nu[i], affine)                      # up conv 1×1
    return total + conv(nu[0], cout, 1, bias)                                             # head


def test_parameter_count_small_network_by_hand():
    # in 3, nd = nu = [4, 8], ns = [2, 2], 3×3 kernels, written out number by number:
    level0 = (3*2 + 2) + 4 + (3*4*9 + 4) + 8 + (4*4*9 + 4) + 8 + 2*(2 + 8) + (10*4*9 + 4) + 8 + (4*4 + 4) + 8
    level1 = (4*2 + 2) + 4 + (4*8*9 + 8) + 16 + (8*8*9 + 8) + 16 + 2*(2 + 8) + (10*8*9 + 8) + 16 + (8*8 + 8) + 16
    head = 4*3 + 3
    net = SkipNet(in_channels=3, out_channels=3, nd=[4, 8], ns=[2, 2])
    assert net.parameter_count() == level0 + level1 + head == 2501


@pytest.mark.parametrize("kwargs", [
    dict(),                                                     # the thesis network
    dict(ns=[4] * 5),                                           # DIP's default skips
    dict(bias=False),
    dict(conv1x1_up=False),
    dict(bn_affine=False),
    dict(in_channels=1, out_channels=1, nd=[8, 16, 32], nu=[4, 8, 16], ns=[1, 2, 3], kd=5, ku=3),
])
def test_parameter_count_matches_hand_count(kwargs):
    cfg = dict(in_channels=32, out_channels=3, nd=[16, 32, 64, 128, 128], nu=None, ns=None, kd=3, ku=3)
    cfg.update(kwargs)
    nd = cfg["nd"]
    nu = cfg["nu"] or nd
    ns = cfg["ns"] or [0] * len(nd)
    expected = skip_count(cfg["in_channels"], cfg["out_channels"], nd, nu, ns, cfg["kd"], cfg["ku"],
                          bias=cfg.get("bias", True), affine=cfg.get("bn_affine", True),
                          conv1x1_up=cfg.get("conv1x1_up", True))
    assert SkipNet(**cfg).parameter_count() == expected


def test_thesis_counts():
    assert SkipNet().parameter_count() == 1_027_379
    # the configuration that reproduces the thesis's footnote 6
    assert SkipNet(in_channels=3, conv1x1_up=False, bn_affine=False).parameter_count() == 980_787


# ---------------------------------------------------------------- forward pass and sizes

def test_output_shape_and_range():
    torch.manual_seed(0)
    net = SkipNet(nd=[8, 16, 16], ns=[4, 4, 4], out_channels=3)
    y = net(make_input(32, 32, 48))
    assert y.shape == (1, 3, 32, 48)
    assert 0 < y.min().item() and y.max().item() < 1


def test_make_input_is_seeded_uniform_noise():
    z = make_input(32, 16, 16, seed=3)
    assert z.shape == (1, 32, 16, 16)
    assert torch.equal(z, make_input(32, 16, 16, seed=3))
    assert not torch.equal(z, make_input(32, 16, 16, seed=4))
    assert 0 <= z.min().item() and z.max().item() < 0.1
    assert abs(z.mean().item() - 0.05) < 0.005


@pytest.mark.parametrize("size", [(50, 64), (32, 32), (64, 16)])
def test_check_size_rejects_and_explains(size):
    net = SkipNet()
    with pytest.raises(ValueError, match="multiples of 32 and at least 64") as err:
        net.check_size(*size)
    assert "depths that fit" in str(err.value) or "no depth fits" in str(err.value)


def test_check_size_accepts_and_suggests_depths():
    SkipNet().check_size(64, 96)
    with pytest.raises(ValueError, match=r"depths that fit 32x32: \[1, 2, 3, 4\]"):
        SkipNet().check_size(32, 32)


@pytest.mark.parametrize("kwargs", [dict(nd=[8, 8], ns=[1]), dict(kd=2), dict(upsample="cubic"),
                                    dict(nd=[0, 8]), dict(pad="mirror"), dict(in_channels=0)])
def test_skipnet_bad_configuration(kwargs):
    with pytest.raises(ValueError):
        SkipNet(**kwargs)


# ---------------------------------------------------------------- fitting

def small_problem(size=32, sigma=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(3, size, size, generator=g)
    b = x + sigma * torch.randn(3, size, size, generator=g)
    return x, b


def small_net():
    return dict(nd=[8, 16, 16], ns=[4, 4, 4])


def test_same_seed_same_history():
    x, b = small_problem()
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        net = SkipNet(**small_net())
        runs.append(fit_dip(Identity(x.shape), b, 6, net=net, lr=0.01, ref=x, seed=5, reg_noise_std=1 / 30,
                            progress=False))
    for key in ("loss", "psnr", "psnr_smoothed"):
        np.testing.assert_array_equal(runs[0].history[key], runs[1].history[key])
    assert torch.equal(runs[0].x, runs[1].x)


def test_default_network_is_seeded():
    x = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(1))
    r1 = fit_dip(Identity(x.shape), x, 2, seed=3, progress=False)
    r2 = fit_dip(Identity(x.shape), x, 2, seed=3, progress=False)
    r3 = fit_dip(Identity(x.shape), x, 2, seed=4, progress=False)
    np.testing.assert_array_equal(r1.history["loss"], r2.history["loss"])
    assert r1.history["loss"][0] != r3.history["loss"][0]
    assert r1.params["net"]["nd"] == [16, 32, 64, 128, 128] and r1.params["net"]["ns"] == [0] * 5


def test_loss_decreases_with_identity():
    x, b = small_problem()
    torch.manual_seed(0)
    result = fit_dip(Identity(x.shape), b, 60, net=SkipNet(**small_net()), lr=0.01, ref=x, progress=False)
    loss = result.history["loss"]
    block_means = loss.reshape(6, 10).mean(axis=1)
    assert np.all(np.diff(block_means) < 0), block_means
    assert np.mean(np.diff(loss) < 0) > 0.6
    h = result.history
    assert list(h["iteration"]) == list(range(60))
    assert {"loss", "psnr", "psnr_smoothed", "time_cpu", "time_wall"} <= set(h)
    assert all(len(v) == 60 for v in h.values())
    # the final image is the last recorded iterate, so its PSNR is the last history entry
    from dipcourse.metrics import psnr
    assert psnr(x, result.x) == pytest.approx(h["psnr"][-1])


def test_loss_is_half_squared_residual_and_smoothing_matches_running_average():
    x, b = small_problem()
    torch.manual_seed(0)
    seen = []
    result = fit_dip(Identity(x.shape), b, 5, net=SkipNet(**small_net()), lr=0.01, ref=x, progress=False,
                     callback=lambda it: seen.append(it.x.clone()) and False)
    for img, loss in zip(seen, result.history["loss"]):
        assert loss == pytest.approx(0.5 * torch.sum((b - img) ** 2).item(), rel=1e-5)
    r = seen[0]
    for img in seen[1:]:
        r = 0.9 * r + 0.1 * img
    from dipcourse.metrics import psnr
    assert result.history["psnr_smoothed"][-1] == pytest.approx(psnr(x, r), abs=1e-4)


def test_inpainting_operator_and_callback_stop():
    x, _ = small_problem()
    A = RandomMask(x.shape, keep=0.5, seed=0)
    b = A.forward(x)
    torch.manual_seed(0)
    result = fit_dip(A, b, 50, net=SkipNet(**small_net()), lr=0.01, ref=x, progress=False,
                     callback=lambda it: it.iteration == 7)
    assert len(result.history["loss"]) == 8 and result.params["stopped_at"] == 7


def test_without_reference_no_psnr():
    x, b = small_problem()
    torch.manual_seed(0)
    result = fit_dip(Identity(x.shape), b, 3, net=SkipNet(**small_net()), progress=False)
    assert "psnr" not in result.history and result.peak_iteration is None


@pytest.mark.parametrize("change, message", [
    (dict(b=torch.zeros(3, 16, 16)), "b must be a tensor of shape"),
    (dict(lr=0.0), "lr must be a finite number > 0"),
    (dict(lr=-1e-3), "lr must be a finite number > 0"),
    (dict(iters=0), "iters must be an integer ≥ 1"),
    (dict(iters=2.5), "iters must be an integer"),
    (dict(ref=torch.zeros(3, 16, 16)), "ref must be a tensor of shape"),
    (dict(smoothing=1.0), "smoothing"),
    (dict(reg_noise_std=-0.1), "reg_noise_std"),
    (dict(cuda_graph=True), "cuda_graph=True needs a CUDA device"),
    (dict(z=torch.zeros(1, 32, 16, 16)), "z must have shape"),
])
def test_fit_dip_bad_inputs(change, message):
    x, b = small_problem()
    kwargs = dict(A=Identity(x.shape), b=b, iters=3, net=SkipNet(**small_net()), progress=False, device="cpu")
    kwargs.update(change)
    with pytest.raises((TypeError, ValueError), match=message):
        fit_dip(**kwargs)


def test_fit_dip_rejects_unsuitable_image_and_network():
    x = torch.rand(3, 40, 40)
    with pytest.raises(ValueError, match="multiples of 32"):
        fit_dip(Identity(x.shape), x, 2, progress=False)
    x = torch.rand(1, 32, 32)
    with pytest.raises(ValueError, match="outputs 3 channels but the image has 1"):
        fit_dip(Identity(x.shape), x, 2, net=SkipNet(**small_net()), progress=False)
    with pytest.raises(TypeError, match="operator"):
        fit_dip(torch.eye(3), x, 2, progress=False)


# ---------------------------------------------------------------- ES-WMV

def naive_variances(images, window):
    """VAR_t of every full window, computed directly from its members."""
    out = []
    for t in range(window - 1, len(images)):
        stack = torch.stack(images[t - window + 1:t + 1]).double()
        out.append(((stack - stack.mean(0)) ** 2).sum().item() / window)
    return np.array(out)


def test_wmv_variance_matches_direct_computation():
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(2, 4, 4, generator=g) * (1 + t % 7) for t in range(40)]
    stopper = WMVStopper(window=5, patience=1000)
    for img in images:
        stopper.update(img)
    np.testing.assert_allclose(stopper.variances, naive_variances(images, 5), rtol=1e-9, atol=1e-12)
    assert stopper.best_iteration == 4 + int(np.argmin(stopper.variances))


def test_wmv_finds_the_plateau_and_stops_after_patience():
    # the iterate slows down (steps 3 → 1) for 50 iterations, rests at iterations 50..79, then moves
    # again: windows of 10 lying inside the rest have variance 0; the first ends at iteration 59.
    moving = np.cumsum(np.linspace(3.0, 1.0, 50))
    rest = moving[-1] + 1.0
    position = np.concatenate([moving, np.full(30, rest), rest + np.arange(1, 41) ** 1.5])
    stopper = WMVStopper(window=10, patience=25)
    stops = [stopper.update(torch.full((1, 2, 2), p)) for p in position]
    assert stopper.best_iteration == 59
    assert stops.index(True) == 59 + 25 == stopper.stopped_at
    assert not any(stops[:10])
    # once finished, the detector keeps its answer although the sequence goes on
    assert all(stops[84:]) and stopper.best_iteration == 59
    assert stopper.update(torch.full((1, 2, 2), 0.0)) and stopper.best_iteration == 59


def test_wmv_u_shaped_speed():
    # step size |t - 300| + 1: the iterates move slowest at t = 300, so the window of 20 iterates centred on it
    # (ending at 309: its 19 steps are 10, …, 1, …, 10) has the smallest variance.
    steps = np.abs(np.arange(600) - 300.0) + 1.0
    position = np.cumsum(steps) / 1000
    stopper = WMVStopper(window=20, patience=100)
    stop_at = next(t for t, p in enumerate(position) if stopper.update(torch.tensor([p])))
    assert stopper.best_iteration == 309
    assert stop_at == 409


def test_wmv_trace_keeps_the_curve_and_the_choice():
    # the same sequence as the plateau test: with trace=True the variances go on to the end, computed
    # as directly from the windows, while the choice and the stop are those of the plain detector.
    moving = np.cumsum(np.linspace(3.0, 1.0, 50))
    rest = moving[-1] + 1.0
    position = np.concatenate([moving, np.full(30, rest), rest + np.arange(1, 41) ** 1.5])
    images = [torch.full((1, 2, 2), p) for p in position]
    plain, traced = WMVStopper(window=10, patience=25), WMVStopper(window=10, patience=25, trace=True)
    stops_plain = [plain.update(x) for x in images]
    stops_traced = [traced.update(x) for x in images]
    assert stops_traced == stops_plain
    assert (traced.best_iteration, traced.stopped_at) == (plain.best_iteration, plain.stopped_at) == (59, 84)
    assert torch.equal(traced.best_image, plain.best_image)
    assert len(plain.variances) == 84 - 9 + 1 and len(traced.variances) == len(images) - 9
    np.testing.assert_allclose(traced.variances, naive_variances(images, 10), rtol=1e-9, atol=1e-9)
    assert traced.variance_iterations == list(range(9, len(images)))
    # a later, lower minimum does not change the finished detector's choice
    for _ in range(20):
        assert traced.update(torch.full((1, 2, 2), 0.0))
    assert traced.variances[-1] == 0.0 and traced.best_iteration == 59


def test_wmv_in_fit_dip_records_the_whole_curve_with_trace():
    x, b = small_problem()
    runs = {}
    for trace in (False, True):
        stopper = WMVStopper(window=5, patience=10, trace=trace)
        result = fit_dip(Identity(x.shape), b, 60, net_kwargs=small_net(), ref=x, seed=0, lr=0.01,
                         stopper=stopper, progress=False)
        runs[trace] = result.extras["stopper"]
    assert runs[False].stopped_at is not None and len(runs[False].variances) < 60 - 4
    assert runs[True].variances[:len(runs[False].variances)] == pytest.approx(runs[False].variances)
    assert len(runs[True].variances) == 60 - 4
    assert runs[True].best_iteration == runs[False].best_iteration


@pytest.mark.parametrize("kwargs", [dict(window=0), dict(patience=0), dict(window=2.5), dict(trace="yes")])
def test_wmv_bad_arguments(kwargs):
    with pytest.raises((TypeError, ValueError), match="window|patience|trace"):
        WMVStopper(**kwargs)


def test_wmv_rejects_changed_shape():
    stopper = WMVStopper(window=2)
    stopper.update(torch.zeros(3, 4, 4))
    with pytest.raises(ValueError, match="one stopper per run"):
        stopper.update(torch.zeros(3, 8, 8))


# ---------------------------------------------------------------- CUDA graph path (GPU only)

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("reg_noise_std", [0.0, 1 / 30])
def test_cuda_graph_matches_eager(reg_noise_std):
    x, b = small_problem(size=64)
    runs = {}
    for graph in (False, True):
        torch.manual_seed(0)
        net = SkipNet(**small_net())
        runs[graph] = fit_dip(Identity(x.shape), b, 30, net=net, lr=0.01, ref=x, seed=1, device="cuda",
                              reg_noise_std=reg_noise_std, cuda_graph=graph, progress=False)
    # the graph replays the same kernels as eager Adam(capturable=True); plain eager Adam computes its
    # bias correction on the host, so the two agree to rounding, not bit for bit
    np.testing.assert_allclose(runs[True].history["loss"], runs[False].history["loss"], rtol=1e-3)
    np.testing.assert_allclose(runs[True].history["psnr"], runs[False].history["psnr"], atol=1e-2)


def test_course_setup_trains_like_torch_defaults():
    """to_device (channels-last) and adam (fused on the CPU) change the speed, not the algorithm:
    ten steps agree with torch's defaults (NCHW, per-tensor Adam) up to float32 rounding."""
    from dipcourse.training import adam, to_device

    def run(course):
        torch.manual_seed(0)
        net, z = SkipNet(nd=[8, 16], nu=[8, 16], ns=[4, 4]), make_input(32, 16, 16)
        b = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(1))
        if course:
            net, z = to_device(net, z, "cpu")
            optimizer = adam(net.parameters(), 1e-2, "cpu")
            conv = next(p for p in net.parameters() if p.dim() == 4 and p.shape[-1] == 3)
            assert conv.is_contiguous(memory_format=torch.channels_last) and optimizer.defaults["fused"]
        else:
            optimizer = torch.optim.Adam(net.train().parameters(), lr=1e-2)
        for _ in range(10):
            optimizer.zero_grad()
            loss = 0.5 * torch.sum((b - net(z)[0]) ** 2)
            loss.backward()
            optimizer.step()
        return loss.item(), net(z)[0].detach()

    (loss_c, x_c), (loss_d, x_d) = run(True), run(False)
    assert abs(loss_c - loss_d) <= 1e-4 * loss_d
    assert (x_c - x_d).abs().max() < 1e-4


def test_a_deep_decoder_built_from_settings_is_seeded_like_dips_network():
    """net_kwargs=dict(kind="deep decoder", ...) draws the decoder's weights from the run's seed, so a remedy's
    run repeats exactly — a DeepDecoder built ready-made in a notebook would take torch's unseeded global
    generator, which differs from one kernel start to the next."""
    from dipcourse.networks import DeepDecoder, build_network

    x = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(1))
    settings = dict(kind="deep decoder", channels=8, depth=2)
    first, again, other = (fit_dip(Identity(x.shape), x, 3, seed=s, lr=0.01, net_kwargs=settings, progress=False)
                           for s in (3, 3, 4))
    np.testing.assert_array_equal(first.history["loss"], again.history["loss"])
    assert first.history["loss"][0] != other.history["loss"][0]
    assert first.params["net"]["kind"] == "deep decoder"
    assert isinstance(build_network(3, kind="deep decoder", channels=8, depth=2), DeepDecoder)
    with pytest.raises(ValueError, match="kind must be one of 'skip', 'deep decoder'"):
        build_network(3, kind="decoder")


def test_rounding_jitter_moves_every_weight_by_a_few_rounding_units(monkeypatch):
    from dipcourse.training import JITTER_SIZE, JITTER_VARIABLE, prepare_network, rounding_jitter

    def weights(draw=None):
        if draw is None:
            monkeypatch.delenv(JITTER_VARIABLE, raising=False)
        else:
            monkeypatch.setenv(JITTER_VARIABLE, draw)
        net, _ = prepare_network((3, 16, 16), seed=2, **small_net())
        return torch.cat([p.detach().reshape(-1) for p in net.parameters()])

    def tensors_moved(draw):
        monkeypatch.setenv(JITTER_VARIABLE, draw)
        jittered, _ = prepare_network((3, 16, 16), seed=2, **small_net())
        monkeypatch.delenv(JITTER_VARIABLE)
        plain_net, _ = prepare_network((3, 16, 16), seed=2, **small_net())
        return [not torch.equal(a, b) for a, b in zip(jittered.parameters(), plain_net.parameters()) if b.any()]

    assert all(tensors_moved("1"))                           # kernels, biases and BatchNorm scales alike
    plain, off, first, again, second = weights(), weights("0"), weights("1"), weights("1"), weights("2")
    assert torch.equal(plain, off)                           # unset or 0: nothing changes
    assert torch.equal(first, again)                         # a draw is reproducible
    assert not torch.equal(first, second)                    # and each draw is another "machine"
    moved = (first - plain).abs() / plain.abs().clamp_min(1e-30)
    assert 0 < moved.max() <= JITTER_SIZE + 2.0 ** -23 and (first != plain).float().mean() > 0.5   # + float32 rounding
    with pytest.raises(ValueError, match="DIPCOURSE_ROUNDING_JITTER must be a whole number"):
        weights("one")
    with pytest.raises(ValueError, match="DIPCOURSE_ROUNDING_JITTER must be a whole number"):
        weights("²")
    with pytest.raises(ValueError, match="rounding_jitter: draw must be an integer ≥ 0"):
        rounding_jitter(SkipNet(**small_net()), 0, draw=-1)

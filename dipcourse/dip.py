"""Deep image prior (§2.3, eq. 10): an untrained encoder–decoder fitted to one measurement.

DIP solves  min_θ ½‖b − A G(z; θ)‖²  (eq. 10 with x = G(z; θ)): the input z is fixed random noise,
only the weights θ are trained, and the convolutional structure of G is the prior. Fitted long
enough, G reproduces the noise in b too (overfitting, thesis §1 and Fig 2), so the run must be
stopped early — by the oracle (peak PSNR, needs the ground truth) or by a detector that does not
see it, such as :class:`WMVStopper`.

Contents:

* :class:`SkipNet` — the encoder–decoder of Ulyanov et al. (``models/skip.py`` of the original DIP
  code, described in the DIP supplementary material), with the thesis's parameters as defaults.
* :func:`make_input` — the fixed noise input z.
* :func:`prepare_network`, :func:`to_device` and :func:`adam` — the network, its input and its
  optimiser, built the same way for every DIP-style run (DIP, the ADMM variants, the batched runner).
* :func:`fit_dip` — Adam on ½‖b − A G(z; θ)‖², returning a :class:`dipcourse.Result`.
* :class:`WMVStopper` — early stopping by windowed moving variance (ES-WMV, Wang et al., TMLR 2023).
"""
import math
from collections import deque
from numbers import Integral

import torch
from torch import nn
from tqdm.auto import trange

from dipcourse.config import seed_everything
from dipcourse.result import Tracker

THESIS_CHANNELS = (16, 32, 64, 128, 128)   # nd = nu of §3.3 (DIP supplementary material)


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------

def _conv(in_channels, out_channels, kernel_size, stride=1, bias=True, pad="reflection"):
    """Convolution that keeps (stride 1) or halves (stride 2) the size, as ``conv`` in DIP's ``common.py``.

    With ``pad="reflection"`` the image is mirrored by (k−1)/2 pixels before an unpadded
    convolution; ``pad="zero"`` lets the convolution pad with zeros instead.
    """
    half = (kernel_size - 1) // 2
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                     padding=0 if pad == "reflection" else half, bias=bias)
    if pad == "reflection" and half > 0:
        return nn.Sequential(nn.ReflectionPad2d(half), conv)
    return nn.Sequential(conv)


def _act():
    """LeakyReLU with slope 0.2, DIP's default activation."""
    return nn.LeakyReLU(0.2)


class _Level(nn.Module):
    """One scale of the skip network: a downward branch that wraps the deeper levels, an optional
    skip branch at this scale, and the upward layers that merge them.

    Mirrors one pass of the loop in DIP's ``skip()``::

        deeper: conv kd stride 2 → BN → act → conv kd → BN → act → [next level] → upsample ×2
        skip:   conv 1×1 → BN → act                                   (only when ns > 0)
        up:     concat(skip, deeper) → BN → conv ku → BN → act → conv 1×1 → BN → act
    """

    def __init__(self, in_channels, nd, nu, ns, deeper_out, inner, kd, ku, upsample, bias, pad, conv1x1_up,
                 bn_affine):
        super().__init__()

        def bn(channels):
            return nn.BatchNorm2d(channels, affine=bn_affine)

        self.skip = None
        if ns > 0:
            self.skip = nn.Sequential(_conv(in_channels, ns, 1, bias=bias, pad=pad), bn(ns), _act())
        self.down = nn.Sequential(
            _conv(in_channels, nd, kd, stride=2, bias=bias, pad=pad), bn(nd), _act(),
            _conv(nd, nd, kd, bias=bias, pad=pad), bn(nd), _act())
        self.inner = inner
        align = False if upsample in ("bilinear", "bicubic") else None
        self.upsample = nn.Upsample(scale_factor=2, mode=upsample, align_corners=align)
        up = [bn(ns + deeper_out), _conv(ns + deeper_out, nu, ku, bias=bias, pad=pad), bn(nu), _act()]
        if conv1x1_up:
            up += [_conv(nu, nu, 1, bias=bias, pad=pad), bn(nu), _act()]
        self.up = nn.Sequential(*up)

    def forward(self, x):
        deeper = self.down(x)
        if self.inner is not None:
            deeper = self.inner(deeper)
        deeper = self.upsample(deeper)
        if self.skip is not None:
            deeper = torch.cat([self.skip(x), deeper], dim=1)
        return self.up(deeper)


class SkipNet(nn.Module):
    """The DIP encoder–decoder ("skip" architecture of Ulyanov et al., CVPR 2018), G(z; θ) of eq. 10.

    Level i (i = 0 is the finest) halves the image with a stride-2 convolution, and its output is
    upsampled ×2 back, so an image of side s passes through sides s, s/2, …, s/2^L with L = len(nd).

    Args:
        in_channels: channels of the noise input z (DIP uses 32 for denoising and inpainting).
        out_channels: channels of the image (3 for colour).
        nd: channels of the downward convolutions per level (thesis: [16, 32, 64, 128, 128]).
        nu: channels of the upward convolutions per level (default: equal to ``nd``, as in the thesis).
        ns: channels of the 1×1 skip connection per level (thesis: [0]*5, i.e. no skips, a plain
            encoder–decoder; the original DIP code's default is 4 per level).
        kd, ku: kernel sizes down and up (thesis: 3 and 3).
        upsample: ``"bilinear"`` (DIP's choice for denoising) or ``"nearest"`` (its ``skip()`` default).
        bias: learnable biases in every convolution (DIP's ``need_bias=True``).
        pad: ``"reflection"`` (DIP's notebooks) or ``"zero"`` (its ``skip()`` default).
        conv1x1_up: the extra 1×1 convolution + BN + act after each upward convolution
            (DIP's ``need1x1_up=True``).
        bn_affine: BatchNorm with a learnable scale and shift per channel (PyTorch's and DIP's default);
            ``False`` normalises only and adds no parameters.

    Parameter count: with the defaults (the thesis's nd, nu, ns, kd, ku and DIP's other defaults)
    the network has 1,027,379 parameters; the thesis reports 980,787 (footnote 6). Exactly that
    number comes out with ``in_channels=3, conv1x1_up=False, bn_affine=False`` (a 3-channel input,
    no 1×1 upward convolutions, BatchNorm without learnable parameters or not counted) — the
    thesis does not say which options it used; lesson 02 explains the difference layer by layer.

    Choices that follow the original code: BatchNorm (learnable scale and shift) after every
    convolution and also on the concatenation before each upward convolution; LeakyReLU(0.2);
    a final 1×1 convolution to ``out_channels`` followed by a sigmoid so the output lies in (0, 1);
    bilinear upsampling with ``align_corners=False``. The network stays in training mode, as in DIP:
    BatchNorm normalises with the statistics of the single input image.
    """

    def __init__(self, in_channels=32, out_channels=3, nd=THESIS_CHANNELS, nu=None, ns=None, kd=3, ku=3,
                 upsample="bilinear", bias=True, pad="reflection", conv1x1_up=True, bn_affine=True):
        super().__init__()
        nd = list(nd)
        nu = list(nd if nu is None else nu)
        ns = [0] * len(nd) if ns is None else list(ns)
        if not nd or len(nu) != len(nd) or len(ns) != len(nd):
            raise ValueError(f"nd, nu and ns need one entry per level and at least one level; got "
                             f"{len(nd)}, {len(nu)} and {len(ns)} entries")
        if any(not isinstance(c, Integral) or c < 1 for c in nd + nu) or \
                any(not isinstance(c, Integral) or c < 0 for c in ns):
            raise ValueError(f"channel counts must be positive integers (ns may be 0); got nd={nd}, nu={nu}, ns={ns}")
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, Integral) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name, k in (("kd", kd), ("ku", ku)):
            if not isinstance(k, Integral) or k < 1 or k % 2 == 0:
                raise ValueError(f"{name} must be a positive odd kernel size (1, 3, 5, ...), got {k!r}")
        if upsample not in ("bilinear", "nearest", "bicubic"):
            raise ValueError(f"upsample must be 'bilinear', 'nearest' or 'bicubic', got {upsample!r}")
        if pad not in ("reflection", "zero"):
            raise ValueError(f"pad must be 'reflection' or 'zero', got {pad!r}")
        self.config = dict(in_channels=in_channels, out_channels=out_channels, nd=nd, nu=nu, ns=ns, kd=kd, ku=ku,
                           upsample=upsample, bias=bias, pad=pad, conv1x1_up=conv1x1_up, bn_affine=bn_affine)
        self.in_channels, self.out_channels, self.depth = in_channels, out_channels, len(nd)
        inputs = [in_channels] + nd[:-1]            # level i receives the output of level i-1's down branch
        level = None
        for i in reversed(range(len(nd))):           # build from the deepest level outwards
            deeper_out = nd[i] if level is None else nu[i + 1]
            level = _Level(inputs[i], nd[i], nu[i], ns[i], deeper_out, level, kd, ku, upsample, bias, pad,
                           conv1x1_up, bn_affine)
        self.levels = level
        self.head = nn.Sequential(_conv(nu[0], out_channels, 1, bias=bias, pad=pad), nn.Sigmoid())

    def forward(self, z):
        if z.dim() != 4:
            raise ValueError(f"SkipNet expects a batch (N, C, H, W); got shape {tuple(z.shape)} — "
                             "use z[None] for a single input")
        if z.shape[1] != self.in_channels:
            raise ValueError(f"SkipNet was built for {self.in_channels} input channels, got {z.shape[1]}")
        self.check_size(z.shape[2], z.shape[3])
        return self.head(self.levels(z))

    def check_size(self, height, width):
        """Raise ``ValueError`` unless an image of ``height`` × ``width`` fits the network's depth.

        Every level halves the size and upsampling doubles it back, so each side must be a multiple
        of 2^depth; the deepest level must keep at least 2 px (reflection padding of a 3×3
        convolution needs 2). The message lists the sizes and the depths that would work.
        """
        depth, unit = self.depth, 2 ** self.depth
        bad = [s for s in (height, width) if not isinstance(s, Integral) or s % unit != 0 or s // unit < 2]
        if not bad:
            return
        sizes = ", ".join(str(unit * k) for k in range(2, 6))
        works = [d for d in range(1, 9) if all(isinstance(s, Integral) and s % 2 ** d == 0 and s // 2 ** d >= 2
                                              for s in (height, width))]
        hint = (f"depths that fit {height}x{width}: {works} (give nd, nu, ns that many entries)" if works
                else f"no depth fits {height}x{width}; resize the image to a multiple of a power of two")
        raise ValueError(f"SkipNet with {depth} levels needs height and width that are multiples of {unit} "
                         f"and at least {2 * unit} px (e.g. {sizes}, ...); got {height}x{width}. {hint}.")

    def parameter_count(self):
        """Number of trainable parameters (convolution weights and biases, BatchNorm scales and shifts)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def make_input(channels, height, width, seed=0):
    """The fixed network input z: uniform noise on [0, 0.1), shape (1, channels, height, width).

    As DIP's ``get_noise(..., method='noise', noise_type='u', var=1/10)``: U[0, 1) scaled by 0.1.
    """
    for name, value in (("channels", channels), ("height", height), ("width", width)):
        if not isinstance(value, Integral) or value < 1:
            raise ValueError(f"make_input: {name} must be a positive integer, got {value!r}")
    generator = torch.Generator().manual_seed(int(seed))
    return torch.rand(1, channels, height, width, generator=generator) * 0.1


# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------

def prepare_network(shape, net=None, z=None, seed=0, in_channels=32, **net_kwargs):
    """The network G and its fixed input z for an image of ``shape`` (C, H, W), checked against it.

    Every DIP-style run (:func:`fit_dip`, the ADMM variants, the batched runner) builds them here, so
    the same ``seed`` gives the same θ₀ and z everywhere and DIP and its hybrids start from one network:
    ``seed_everything(seed)``, then ``SkipNet(in_channels, out_channels=C, **net_kwargs)`` (the thesis
    network by default), then ``make_input(in_channels, H, W, seed)``. A given ``net`` or ``z`` is used
    as it is, after checking it fits the image.
    """
    channels, height, width = shape
    if net is None:
        seed_everything(seed)
        net = SkipNet(in_channels=in_channels, out_channels=channels, **net_kwargs)
    if isinstance(net, SkipNet):
        net.check_size(height, width)
        if net.out_channels != channels:
            raise ValueError(f"the network outputs {net.out_channels} channels but the image has "
                             f"{channels}; build SkipNet(out_channels={channels}, ...)")
    if z is None:
        z = make_input(getattr(net, "in_channels", in_channels), height, width, seed=seed)
    if z.dim() != 4 or z.shape[0] != 1 or tuple(z.shape[2:]) != (height, width):
        raise ValueError(f"z must have shape (1, C, {height}, {width}) to match the image; "
                         f"got {tuple(z.shape)} — use make_input(C, {height}, {width})")
    return net, z


def to_device(net, z, device):
    """``net`` (in training mode) and ``z`` on ``device``, in the memory layout that trains fastest there.

    On the CPU that is channels-last (NHWC): the convolution kernels PyTorch picks for a single image
    run faster on it (5–30 % per DIP step in our probes, more with one thread than with two).
    Together with :func:`adam` a DIP step is 1.25–1.32× faster in CPU time on 2 cores
    (``benchmarks/bench_dip.py``, column "torch defaults"). Only the layout changes, not a single
    value; ``net`` is converted in place, as ``Module.to`` does.
    """
    device = torch.device(device)
    net, z = net.to(device).train(), z.to(device)
    if device.type == "cpu":
        net, z = net.to(memory_format=torch.channels_last), z.contiguous(memory_format=torch.channels_last)
    return net, z


def adam(params, lr, device, capturable=False):
    """The Adam optimiser of every DIP-style run: ``torch.optim.Adam(params, lr)`` (DIP's optimiser, §3.3).

    On the CPU it uses the fused kernel, which updates all weights in one pass: the default
    per-tensor loop launches about ten small operations per weight tensor, a quarter of a whole DIP
    step at 64 px. Same update, same defaults (β = (0.9, 0.999), ε = 1e-8). ``capturable`` is for
    CUDA-graph capture (:func:`fit_dip` with ``cuda_graph=True``).
    """
    fused = torch.device(device).type == "cpu" or None
    return torch.optim.Adam(params, lr=lr, capturable=capturable, fused=fused)


def _validate_fit(A, b, iters, lr, ref, smoothing, reg_noise_std):
    for name in ("forward", "in_shape", "out_shape"):
        if not hasattr(A, name):
            raise TypeError(f"fit_dip: A must be an operator from dipcourse.operators (it lacks .{name}); "
                            f"got {type(A).__name__}")
    if not isinstance(b, torch.Tensor):
        raise TypeError(f"fit_dip: b must be a torch.Tensor (the measurement A x + noise), got {type(b).__name__}")
    if tuple(b.shape) != tuple(A.out_shape):
        raise ValueError(f"fit_dip: measurement b has shape {tuple(b.shape)} but the operator's output shape is "
                         f"{tuple(A.out_shape)}; measure with the same operator (dipcourse.operators.measure(A, x, sigma))")
    if len(A.in_shape) != 3:
        raise ValueError(f"fit_dip: the operator must act on images (C, H, W); its in_shape is {tuple(A.in_shape)}")
    if ref is not None and tuple(ref.shape) != tuple(A.in_shape):
        raise ValueError(f"fit_dip: ref has shape {tuple(ref.shape)}, the operator's image shape is "
                         f"{tuple(A.in_shape)}; pass the ground-truth image of that shape")
    if isinstance(iters, bool) or not isinstance(iters, Integral) or iters < 1:
        raise ValueError(f"fit_dip: iters must be an integer ≥ 1, got {iters!r}")
    if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"fit_dip: the learning rate lr must be a positive number (thesis: 0.001), got {lr!r}")
    if not 0 <= smoothing < 1:
        raise ValueError(f"fit_dip: smoothing must be in [0, 1) (thesis: 0.9 in r ← 0.9 r + 0.1 x), got {smoothing!r}")
    if reg_noise_std < 0:
        raise ValueError(f"fit_dip: reg_noise_std must be ≥ 0 (DIP uses 1/30 for denoising), got {reg_noise_std!r}")


def fit_dip(A, b, iters, net=None, z=None, lr=1e-3, ref=None, seed=0, callback=None, reg_noise_std=0.0,
            smoothing=0.9, device=None, progress=True, cuda_graph=False, in_channels=32):
    """Fit the deep image prior to the measurement ``b``: Adam on ½‖b − A G(z; θ)‖² (eq. 10).

    Each iteration t = 0, 1, …, iters−1:

        1. x_t = G(z + s·η_t; θ_t), η_t ~ N(0, I) fresh noise ("input jitter", DIP's ``reg_noise_std`` = s;
           s = 0 keeps z fixed, as in the thesis)
        2. loss_t = ½‖b − A x_t‖²                      (the thesis's sum, not DIP's mean; Adam barely cares)
        3. θ_{t+1} = Adam step on ∇_θ loss_t          (lr 0.001 as in §3.3)
        4. record x_t: loss, PSNR of x_t and of r_t = 0.9 r_{t−1} + 0.1 x_t (§4.2) when ``ref`` is given

    The recorded image x_t is the output of the forward pass that produced the gradient (no extra
    forward pass), as in the original DIP code; ``Result.x`` is the last one.

    Args:
        A: operator from :mod:`dipcourse.operators` (``.forward``, ``.in_shape``, ``.out_shape``).
        b: the measurement, a tensor of shape ``A.out_shape``.
        iters: number of Adam steps (≥ 1).
        net: a :class:`SkipNet` (or any module mapping z to an image of ``A.in_shape``); trained in place,
            so the caller keeps the fitted network. Default: the thesis network, seeded by ``seed``.
        z: input of shape (1, C_in, H, W). Default: :func:`make_input` with ``in_channels`` and ``seed``.
        lr: Adam learning rate (thesis 0.001; the DIP notebooks use 0.01).
        ref: ground truth for PSNR reporting only; the fit never sees it.
        seed: seeds the default network, the default input and the jitter; same seed, same device →
            the same history.
        callback: ``callback(iteration, x, tracker)`` after each iteration; return ``True`` to stop
            (stop button, early stopping). ``x`` is only valid during the call: ``clone()`` it to keep it.
        reg_noise_std: standard deviation s of the input jitter (DIP uses 1/30 for denoising; 0 here).
        smoothing: factor of the running average r ← smoothing·r + (1 − smoothing)·x (thesis 0.9).
        device: ``"cpu"``, ``"cuda"``, ... Default: the network's device when ``net`` is given, else the
            CPU; pass ``dipcourse.config.default_device()`` to use a GPU when there is one.
        progress: show a ``tqdm`` progress bar.
        cuda_graph: CUDA only. Capture one whole iteration (forward, backward, Adam with
            ``capturable=True``) in a CUDA graph and replay it; the first three iterations run eagerly
            as the warm-up the capture needs. Removes the per-kernel launch cost that dominates small
            images on a GPU. Refused on the CPU.
        in_channels: channels of the default input z (DIP: 32).

    Returns:
        :class:`dipcourse.Result` with history keys ``iteration``, ``loss``, ``time_cpu``, ``time_wall``
        and, with ``ref``, ``psnr`` and ``psnr_smoothed``; ``params`` holds the settings and
        ``stopped_at`` (the iteration a callback stopped at, else ``None``).
    """
    _validate_fit(A, b, iters, lr, ref, smoothing, reg_noise_std)
    if device is None:
        device = next(net.parameters()).device if net is not None else torch.device("cpu")
    device = torch.device(device)
    if cuda_graph and device.type != "cuda":
        raise ValueError("fit_dip: cuda_graph=True needs a CUDA device (device='cuda'); on the CPU leave it False")
    net, z = prepare_network(A.in_shape, net=net, z=z, seed=seed, in_channels=in_channels)

    net, z = to_device(net, z, device)
    b = b.to(device)                           # the operators move their own tensors to x's device
    jitter = torch.Generator(device=device).manual_seed(int(seed) + 1)
    noise = torch.zeros_like(z)
    optimizer = adam(net.parameters(), lr, device, capturable=cuda_graph)

    def step():
        """Lines 1-3: forward with jittered input, loss, backward, Adam step. Returns (x_t, loss_t)."""
        optimizer.zero_grad(set_to_none=not cuda_graph)
        x = net(z + reg_noise_std * noise if reg_noise_std > 0 else z)[0]
        loss = 0.5 * torch.sum((b - A.forward(x)) ** 2)
        loss.backward()
        optimizer.step()
        return x.detach(), loss.detach()

    params = dict(method="dip", iters=iters, lr=lr, seed=seed, reg_noise_std=reg_noise_std, smoothing=smoothing,
                  device=str(device), cuda_graph=cuda_graph, net=dict(getattr(net, "config", {})))
    tracker = Tracker(ref=None if ref is None else ref.to(device), smoothing=smoothing, params=params)
    graph = graph_outputs = None
    stopped_at = None
    for it in trange(iters, disable=not progress, desc="DIP", leave=False):
        if reg_noise_std > 0:
            noise.normal_(generator=jitter)             # same draws on both paths: same history
        if graph is not None:
            graph.replay()                              # one whole iteration, recorded once
            x, loss = graph_outputs
        elif cuda_graph:
            x, loss = _on_side_stream(step, device)     # warm-up iterations (they count as iterations)
            if it == _GRAPH_WARMUP - 1:
                graph, graph_outputs = _capture(step, device)
        else:
            x, loss = step()
        tracker.step(it, x, loss=loss.item())
        if callback is not None and callback(it, x, tracker):
            stopped_at = it
            break
    return tracker.result(x, stopped_at=stopped_at)


_GRAPH_WARMUP = 3   # eager iterations before the capture, as in PyTorch's whole-network capture example


def _on_side_stream(step, device):
    """Run ``step`` on a side stream, as PyTorch asks for the warm-up before a CUDA graph capture."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        outputs = step()
    torch.cuda.current_stream(device).wait_stream(side)
    return outputs


def _capture(step, device):
    """Record one call of ``step`` in a CUDA graph; returns the graph and its (static) outputs.

    Capturing only records kernels, it runs none, so the weights are untouched by it; each
    ``replay()`` is then exactly one more iteration reading and writing the same buffers.
    """
    torch.cuda.synchronize(device)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outputs = step()
    return graph, outputs


# --------------------------------------------------------------------------------------------
# Early stopping without the ground truth
# --------------------------------------------------------------------------------------------

class WMVStopper:
    """Early stopping by windowed moving variance, ES-WMV (Wang, Li, Zhuang & Sun, TMLR 2023).

    Feed every iterate x_0, x_1, … with :meth:`update`. Once W iterates have arrived, the variance
    of the window ending at iterate t is

        VAR_t = (1/W) Σ_{w=0}^{W−1} ‖x_{t−w} − x̄_t‖²,   x̄_t = (1/W) Σ_{w=0}^{W−1} x_{t−w}.

    The iterates move slowly near the PSNR peak and fast again while the network fits the noise,
    so the variance curve is U-shaped around the peak. (Much later, once the network has nearly
    reproduced b, the iterates slow down again and VAR falls once more; the patience must end the
    search before that — the detector takes the first minimum that stands for P iterations, not the
    global one. W and P scale with the time to the peak.) The detector keeps the minimum of VAR_t;
    ``best_iteration`` is the t (0-based count of updates, the index of the *newest* iterate of the
    minimising window — the paper returns that iterate) where it was reached. :meth:`update`
    returns ``True`` once VAR has not reached a new minimum for ``patience`` iterations; from then on
    the detector is finished (``stopped_at`` is set): later updates return ``True`` and change
    nothing, so ``best_iteration`` stays the detector's choice even if training goes on.

    Cost per update: O(image). Running sums S = Σ x and Q = Σ ‖x‖² (in float64, on the CPU) over the
    deque of the last W iterates give VAR_t = Q/W − ‖S/W‖² without touching the whole window.
    """

    def __init__(self, window=100, patience=1000):
        for name, value in (("window", window), ("patience", patience)):
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
                raise ValueError(f"WMVStopper: {name} must be an integer ≥ 1, got {value!r}")
        self.window, self.patience = int(window), int(patience)
        self.queue = deque()
        self.sum = None
        self.sum_sq = 0.0
        self.count = 0
        self.best_iteration = None
        self.best_variance = math.inf
        self.variances = []   # VAR_t for t = window−1, window, … (index t − window + 1)
        self.stopped_at = None

    def update(self, x):
        """Add the next iterate; returns ``True`` when stopping is advised (no new minimum for ``patience``)."""
        if self.stopped_at is not None:
            return True
        x = torch.as_tensor(x).detach().to(dtype=torch.float64, device="cpu", copy=True)
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
        if variance < self.best_variance:
            self.best_variance, self.best_iteration = variance, t
        if t - self.best_iteration >= self.patience:
            self.stopped_at = t
        return self.stopped_at is not None

"""What every DIP-style run shares: its problems, its networks and their input, and its optimiser.

DIP (eq. 10), DIP-ADMM-v1/v2 (Algorithms 1 and 2), gradient descent on (36) and the remedies of lesson
07 all train the weights θ of an untrained network G(z; θ) against a measurement b = A x♮ + ε. Their
update steps are written out in :mod:`dipcourse.dip` and :mod:`dipcourse.admm`; the pieces they share
are here, so that the same ``seed`` gives the same θ₀ and z in every method:

* :class:`Problem` — one reconstruction (A, b and, for PSNR only, the ground truth), checked once;
* :func:`prepare_network`, :func:`to_device` — the seeded network and its fixed input z;
* :func:`rounding_jitter` — for authors: the same run on "another machine", to test a claim's margin;
* :class:`SingleNetwork` — the network(s) a method trains, as a callable returning K images at once
  (K = 1 here; :class:`dipcourse.batched.NetworkStack` is the K > 1 case), so that each method's loop is
  written once for one run and for K independent runs side by side;
* :class:`InputJitter` — DIP's fresh input noise z + s·η_t, one seeded generator per run;
* :func:`adam` — the optimiser (thesis §3.3: Adam, lr 0.001), and :class:`SGLD` (thesis eq. 14);
* :func:`graphed` — a step recorded once as a CUDA graph and replayed (GPU only).
"""
import math
import os
from dataclasses import dataclass

import torch

from dipcourse import checks
from dipcourse.config import seed_everything
from dipcourse.operators import data_term


# ----------------------------------------------------------------------------------------------
# The problem


@dataclass
class Problem:
    """One reconstruction: the operator ``A``, the measurement ``b`` (shape ``A.out_shape``) and, for
    PSNR reporting only, the ground truth ``ref`` (shape ``A.in_shape``) or ``None``."""

    A: object
    b: torch.Tensor
    ref: torch.Tensor = None

    @classmethod
    def checked(cls, where, A, b, ref=None):
        """The problem after the checks every method makes: an image operator, a finite float ``b`` of its
        output shape, a finite ``ref`` of its input shape, one dtype."""
        checks.measurement(A, b, where)
        if len(A.in_shape) != 3:
            raise ValueError(f"{where}: the operator must act on images (C, H, W); its in_shape is "
                             f"{tuple(A.in_shape)}")
        checks.reference(ref, A.in_shape, where)
        checks.same_dtype({"b": b, "ref": ref}, where)
        return cls(A, b, ref)

    @property
    def shape(self):
        return tuple(self.A.in_shape)


def data_terms(problems, images):
    """½‖b_k − A_k x_k‖² for each problem k and its image ``images[k]``, as a tensor of K values."""
    return torch.stack([data_term(p.A, p.b, x) for p, x in zip(problems, images)])


# ----------------------------------------------------------------------------------------------
# The network and its input


def prepare_network(shape, net=None, z=None, seed=0, in_channels=32, dtype=None, **net_kwargs):
    """The network G and its fixed input z for an image of ``shape`` (C, H, W), checked against it.

    Every DIP-style run builds them here, so the same ``seed`` gives the same θ₀ and z everywhere and DIP
    and its hybrids start from one network: ``seed_everything(seed)``, then
    ``build_network(C, in_channels, **net_kwargs)`` (the thesis SkipNet by default; ``kind="deep decoder"``
    for :class:`dipcourse.networks.DeepDecoder`), then
    ``net.make_input(H, W, seed)`` (for SkipNet: uniform noise, :func:`dipcourse.networks.make_input`).
    A given ``net`` or ``z`` is used as it is, after checking it fits the image. A network built here takes
    ``dtype`` (that of the measurement, so a float64 run is float64 end to end); a given one must match it.
    """
    from dipcourse.networks import build_network

    channels, height, width = shape
    if net is None:
        seed_everything(seed)
        net = build_network(channels, in_channels, **net_kwargs)
        if dtype is not None:
            net = net.to(dtype)
    elif net_kwargs:
        raise ValueError(f"give either a network (net=...) or its settings ({', '.join(net_kwargs)}), not both")
    if not isinstance(net, torch.nn.Module):
        raise TypeError(f"net must be a torch.nn.Module such as dipcourse.dip.SkipNet, got {type(net).__name__}")
    weights = next(net.parameters(), None)
    if weights is None:
        raise ValueError("the network has no trainable weights θ")
    if dtype is not None and weights.dtype != dtype:
        raise TypeError(f"the network's weights are {weights.dtype} but the measurement is {dtype}; use one dtype: "
                        f"b.to({weights.dtype}) or net.to({dtype})")
    if hasattr(net, "check_size"):
        net.check_size(height, width)
    out_channels = getattr(net, "out_channels", channels)
    if out_channels != channels:
        raise ValueError(f"the network outputs {out_channels} channels but the image has {channels}; "
                         f"build it with out_channels={channels}")
    expected = net.input_shape(height, width) if hasattr(net, "input_shape") else None
    if z is None:
        if expected is None:
            raise ValueError("pass the network's input z: this network has no input_shape(height, width)")
        z = net.make_input(height, width, seed=seed)
    checks.tensor(z, "z", "the network input", ndim=4)
    if expected is not None and tuple(z.shape) != (1, *expected):
        raise ValueError(f"z must have shape {(1, *expected)} for this network and a {height}x{width} image; "
                         f"got {tuple(z.shape)} — use net.make_input({height}, {width})")
    rounding_jitter(net, seed)
    return net, z


JITTER_VARIABLE = "DIPCOURSE_ROUNDING_JITTER"
JITTER_SIZE = 2.0 ** -20   # relative: 8 units in the last place of float32


def rounding_jitter(net, seed, draw=None):
    """Move every weight of ``net``, in place, by a relative 2⁻²⁰ when ``$DIPCOURSE_ROUNDING_JITTER`` is set.

    For authors, not students: a lesson's claim about a training run must hold on every student's machine,
    and another CPU (AMD or Intel) or thread count sums in another order, rounds differently, and after a
    few dozen iterations its DIP trajectory has parted from ours by tenths of a dB. One machine cannot run
    the others' paths, but it can run the same seed from slightly different starting weights:
    θ₀ ← θ₀·(1 + 2⁻²⁰·u), u ~ U(−1, 1), drawn from ``draw`` (default ``$DIPCOURSE_ROUNDING_JITTER``) and the
    run's ``seed`` — 8 float32 rounding units at most (in float64 it is far more than rounding, and still a
    tiny start); weights that start at exactly 0 (BatchNorm's shifts) stay 0, as they would on any machine. :func:`prepare_network` applies it to the network of every training run, built or given;
    networks a notebook builds for other uses (the Jacobian's spectrum of lessons 05 and 06) are not
    jittered. Each draw is one more "machine"; the course runner's ``--jitter`` runs a lesson under several
    and ``python -m dipcourse.authoring.course spread`` reports every claim's worst margin.
    Unset (the default) or ``0``, nothing changes.
    """
    if draw is None:
        text = os.environ.get(JITTER_VARIABLE, "").strip() or "0"
        if not (text.isascii() and text.isdecimal()):
            raise ValueError(f"${JITTER_VARIABLE} must be a whole number ≥ 0 (0 or unset: no jitter), got {text!r}")
        draw = int(text)
    draw = checks.integer(draw, "draw", "rounding_jitter", minimum=0)
    if draw == 0:
        return net
    generator = torch.Generator().manual_seed((1_000_003 * draw + int(seed)) % 2 ** 64)
    with torch.no_grad():
        for weight in net.parameters():
            u = torch.rand(weight.shape, generator=generator, dtype=torch.float64) * 2 - 1
            weight.mul_((1 + JITTER_SIZE * u).to(device=weight.device, dtype=weight.dtype))
    return net
    generator = torch.Generator().manual_seed(1_000_003 * draw + int(seed))
    with torch.no_grad():
        for weight in net.parameters():
            u = torch.rand(weight.shape, generator=generator, dtype=torch.float64) * 2 - 1
            weight.mul_((1 + JITTER_SIZE * u).to(device=weight.device, dtype=weight.dtype))
    return net


def to_device(net, z, device):
    """``net`` (in training mode) and ``z`` on ``device`` in the network's dtype and the memory layout that
    trains fastest there.

    On the CPU that is channels-last (NHWC): the convolution kernels PyTorch picks for a single image
    run faster on it (5–30 % per DIP step in our probes, more with one thread than with two).
    Together with :func:`adam` a DIP step is 1.25–1.32× faster in CPU time on 2 cores
    (``benchmarks/bench_dip.py``, column "torch defaults"). Only the layout changes, not a single
    value; ``net`` is converted in place, as ``Module.to`` does.
    """
    device = torch.device(device)
    net = net.to(device).train()
    dtype = next(net.parameters()).dtype
    z = z.to(device=device, dtype=dtype)
    if device.type == "cpu":
        net, z = net.to(memory_format=torch.channels_last), z.contiguous(memory_format=torch.channels_last)
    return net, z


class SingleNetwork:
    """One network G(z; θ) as the K = 1 case of "the networks a run trains": calling it returns the
    output as a batch of one image, (1, C, H, W), exactly what :class:`dipcourse.batched.NetworkStack`
    returns for K networks, so each method's loop serves both."""

    count = 1

    def __init__(self, net, z, device):
        self.net, self.z = to_device(net, z, device)
        self.device = device

    def __call__(self, noise=None):
        return self.net(self.z if noise is None else self.z + noise)

    def parameters(self):
        return list(self.net.parameters())

    def kernels(self):
        """The convolution kernels (the 4-D weights)."""
        return [p for p in self.net.parameters() if p.dim() == 4]

    def network(self, k=0):
        """The trained network (for K = 1 the caller's own, trained in place)."""
        return self.net


class InputJitter:
    """DIP's input jitter (``reg_noise_std``): each iteration the network sees z + s·η_t with fresh
    η_t ~ N(0, I), drawn from one generator per run seeded by ``seed + 1``. s = 0 keeps z fixed, as in
    the thesis."""

    def __init__(self, z, std, seeds, device):
        self.std = std
        self.noise = torch.zeros_like(z) if std > 0 else None
        self.generators = [torch.Generator(device=device).manual_seed(int(seed) + 1) for seed in seeds]

    def draw(self):
        """Draw this iteration's η_t (in place, so a CUDA graph that reads the buffer sees it)."""
        if self.noise is None:
            return
        if len(self.generators) == 1:
            self.noise.normal_(generator=self.generators[0])
        else:
            for k, generator in enumerate(self.generators):
                self.noise[k].normal_(generator=generator)

    def value(self):
        """s·η_t, the shift of this iteration's input (``None`` when s = 0)."""
        return None if self.noise is None else self.std * self.noise


def run_device(device, net, where):
    """The device a run uses: ``device`` (checked), else the given network's, else the CPU."""
    if device is not None:
        return checks.device(device, where)
    if checks.network(net, where) is not None:
        return next(net.parameters()).device
    return torch.device("cpu")


# ----------------------------------------------------------------------------------------------
# Optimisers


def adam(params, lr, device, capturable=False, weight_decay=0.0):
    """The Adam optimiser of every DIP-style run: ``torch.optim.Adam(params, lr)`` (DIP's optimiser, §3.3).

    On the CPU it uses the fused kernel, which updates all weights in one pass: the default per-tensor
    loop launches about ten small operations per weight tensor, a quarter of a whole DIP step at 64 px.
    Same update, same defaults (β = (0.9, 0.999), ε = 1e-8). ``capturable`` is for CUDA-graph capture.
    ``weight_decay`` w adds w·θ to the gradient, the gradient of (w/2)‖θ‖² (see ``fit_dip``'s eq. 13).
    """
    fused = torch.device(device).type == "cpu" or None
    return torch.optim.Adam(params, lr=lr, capturable=capturable, fused=fused, weight_decay=weight_decay)


class SGLD(torch.optim.Optimizer):
    """Stochastic gradient Langevin dynamics, thesis eq. (14):

        θ_{t+1} = θ_t − (ε/2) ∇_θ L(θ_t) + η_t,    η_t ~ N(0, ε I),

    with ε = ``lr``. The gradient ∇L already holds the prior's term (``fit_dip``'s ``weight_decay``
    adds λ‖θ‖²); the noise makes the iterates samples of the posterior ∝ exp(−L) rather than a point
    estimate (Welling & Teh 2011, used for DIP by Cheng et al. 2019). One seeded generator, so runs repeat.
    """

    def __init__(self, params, lr, generator):
        super().__init__(params, dict(lr=lr))
        self.generator = generator

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            epsilon = group["lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                p.add_(p.grad, alpha=-epsilon / 2)
                noise = torch.randn(p.shape, generator=self.generator, device=p.device, dtype=p.dtype)
                p.add_(noise, alpha=math.sqrt(epsilon))


# ----------------------------------------------------------------------------------------------
# CUDA graphs


GRAPH_WARMUP = 3   # eager iterations before the capture, as in PyTorch's whole-network capture example


def graphed(step, device):
    """``step`` (no arguments, returns tensors) as a CUDA graph: three eager warm-up calls on a side stream,
    then one capture, then a replay per call.

    Capturing only records kernels, it runs none, so the weights are untouched by it; each replay is one
    more call reading and writing the same buffers. It removes the per-kernel launch cost that dominates
    small images on a GPU. The warm-up calls count as iterations like any other.
    """
    state = {"calls": 0, "graph": None, "outputs": None}

    def replay():
        if state["graph"] is not None:
            state["graph"].replay()
            return state["outputs"]
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            outputs = step()
        torch.cuda.current_stream(device).wait_stream(side)
        state["calls"] += 1
        if state["calls"] == GRAPH_WARMUP:
            torch.cuda.synchronize(device)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                state["outputs"] = step()
            state["graph"] = graph
        return outputs

    return replay

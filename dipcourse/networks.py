"""The untrained networks of the course: DIP's encoder–decoder and its fixed random input.

* :class:`SkipNet` — the encoder–decoder of Ulyanov et al. (``models/skip.py`` of the original DIP code,
  described in the DIP supplementary material), with the thesis's parameters (§3.3) as defaults;
* :func:`make_input` — its fixed noise input z.

Every network here can say which input it takes (``input_shape(height, width)``) and make it
(``make_input(height, width, seed)``), so the training code (:mod:`dipcourse.training`) builds any of
them the same way.
"""
import numpy as np
import torch
from torch import nn

from dipcourse import checks

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


def _channels(value, name, minimum):
    """A SkipNet setting of one channel count per level (``nd``, ``nu``, ``ns``) as a list of integers; a 1-D
    NumPy array such as ``np.full(5, 16)`` is taken as its list."""
    hint = f"{name} holds one channel count per level, e.g. [16, 32, 64, 128, 128]"
    if isinstance(value, np.ndarray) and value.ndim == 1:
        value = value.tolist()
    return [checks.integer(c, f"{name}[{i}]", "SkipNet", minimum=minimum, hint=hint)
            for i, c in enumerate(checks.sequence(value, name, "SkipNet", hint=hint))]


def _kernel_size(value, name):
    """A SkipNet kernel size: odd, since an even kernel has no centre pixel and padding by (k − 1)/2 would not
    keep the image's size."""
    k = checks.integer(value, name, "SkipNet", minimum=1)
    if k % 2 == 0:
        raise ValueError(f"SkipNet: {name} must be an odd kernel size (1, 3, 5, ...), got {k}.")
    return k


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
        where = "SkipNet"
        in_channels = checks.integer(in_channels, "in_channels", where, minimum=1)
        out_channels = checks.integer(out_channels, "out_channels", where, minimum=1, hint="3 for a colour image")
        nd = _channels(nd, "nd", minimum=1)
        nu = list(nd) if nu is None else _channels(nu, "nu", minimum=1)
        ns = [0] * len(nd) if ns is None else _channels(ns, "ns", minimum=0)
        if not nd or len(nu) != len(nd) or len(ns) != len(nd):
            raise ValueError(f"{where}: nd, nu and ns need one entry per level and at least one level; got "
                             f"{len(nd)}, {len(nu)} and {len(ns)} entries.")
        kd, ku = _kernel_size(kd, "kd"), _kernel_size(ku, "ku")
        checks.choice(upsample, "upsample", where, ("bilinear", "nearest", "bicubic"))
        checks.choice(pad, "pad", where, ("reflection", "zero"))
        bias, conv1x1_up, bn_affine = (checks.flag(value, name, where) for name, value in
                                       (("bias", bias), ("conv1x1_up", conv1x1_up), ("bn_affine", bn_affine)))
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
        weight = self.head[0][0].weight
        if z.dtype != weight.dtype:
            raise TypeError(f"SkipNet: the input z is {z.dtype} but the network's weights are {weight.dtype}; "
                            "convert one of them (z.to(torch.float32), or net.double() for a float64 run)")
        self.check_size(z.shape[2], z.shape[3])
        return self.head(self.levels(z))

    def input_shape(self, height, width):
        """Shape (C, H, W) of the input z for a ``height`` × ``width`` image: noise of the image's size."""
        self.check_size(height, width)
        return (self.in_channels, height, width)

    def make_input(self, height, width, seed=0):
        """The fixed input z for a ``height`` × ``width`` image (:func:`make_input`), in the weights' dtype;
        a size the network cannot take is refused here, not at the first forward pass."""
        z = make_input(*self.input_shape(height, width), seed=seed)
        return z.to(self.head[0][0].weight.dtype)

    def check_size(self, height, width):
        """Raise ``ValueError`` unless an image of ``height`` × ``width`` fits the network's depth.

        Every level halves the size and upsampling doubles it back, so each side must be a multiple
        of 2^depth; the deepest level must keep at least 2 px (reflection padding of a 3×3
        convolution needs 2). The message lists the sizes and the depths that would work.
        """
        height, width = (checks.integer(s, name, "SkipNet", minimum=1, hint="a size in pixels")
                         for name, s in (("height", height), ("width", width)))
        depth, unit = self.depth, 2 ** self.depth
        if all(s % unit == 0 and s // unit >= 2 for s in (height, width)):
            return
        sizes = ", ".join(str(unit * k) for k in range(2, 6))
        works = [d for d in range(1, 9) if all(s % 2 ** d == 0 and s // 2 ** d >= 2 for s in (height, width))]
        hint = (f"depths that fit {height}x{width}: {works} (give nd, nu, ns that many entries)" if works
                else f"no depth fits {height}x{width}; resize the image to a multiple of a power of two")
        raise ValueError(f"SkipNet with {depth} levels needs height and width that are multiples of {unit} "
                         f"and at least {2 * unit} px (e.g. {sizes}, ...); got {height}x{width}. {hint}.")

    def parameter_count(self):
        """Number of trainable parameters (convolution weights and biases, BatchNorm scales and shifts)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def make_input(channels, height, width, seed=0, noise="uniform"):
    """The fixed network input z, shape (1, channels, height, width).

    ``noise="uniform"`` (default): U[0, 1) scaled by 0.1, as DIP's code draws it
    (``get_noise(..., method='noise', noise_type='u', var=1/10)``) and every lesson uses.
    ``noise="gaussian"``: standard normal entries, as the thesis writes (§3.1). The first layer of the
    network is a convolution followed by BatchNorm, which removes the input's mean and scale per
    channel, so the two choices give networks of the same kind; lesson 02 lets you compare them.
    """
    for name, value in (("channels", channels), ("height", height), ("width", width)):
        checks.integer(value, name, "make_input", minimum=1)
    seed = checks.seed(seed, "make_input")
    checks.choice(noise, "noise", "make_input", ("uniform", "gaussian"))
    generator = torch.Generator().manual_seed(seed)
    if noise == "gaussian":
        return torch.randn(1, channels, height, width, generator=generator)
    return torch.rand(1, channels, height, width, generator=generator) * 0.1


class DeepDecoder(nn.Module):
    """The deep decoder of Heckel & Hand (ICLR 2019), thesis §2.3.3: an *under*-parameterised image model.

    No 3×3 convolutions, no encoder, no skips: ``depth`` blocks of

        1×1 convolution (k → k, no bias) → bilinear upsampling ×2 → ReLU → BatchNorm (scale and shift)

    then one more block without upsampling, and a 1×1 convolution to ``out_channels`` followed by a
    sigmoid — as ``decodernw`` in the authors' ``include/decoder.py``. Only the upsampling mixes
    neighbouring pixels. The input is fixed noise of shape (k, H/2^depth, W/2^depth) (U[0, 0.1), as in their
    ``fit.py``), so an image of side s needs s divisible by 2^depth with at least 2 px left (a 1×1 input
    makes a constant image).

    Parameters: (depth + 1)·(k² + 2k) + k·out_channels (:meth:`parameter_count`: depth + 1 convolutions
    k → k without bias, depth + 1 BatchNorms with a scale and a shift per channel, the k → C head). With fewer
    parameters than the image has pixels it cannot reproduce all of the noise; with more it overfits like
    DIP (at 32×32×3 = 3,072 pixels: k = 16, depth = 3 has 1,200 parameters and falls little; k = 32 has
    4,448 and falls — lesson 07). The authors' denoising example uses k = 128, depth 5 on 512 px images.

    Args:
        out_channels: channels of the image (3 for colour).
        channels: k, the channels of every block (default 64; the authors' notebooks use 64–128 on
            512 px images — scale k with the image so that the parameters stay below the pixels).
        depth: the number of upsamplings (default 5, the authors' ``num_channels_up=[k]*5``).

    Defaults from ``reinhardh/supplement_deep_decoder`` (``include/decoder.py``, ``decodernw``: 1×1 filters,
    bilinear upsampling first, ReLU then BatchNorm with affine parameters, sigmoid output; ``include/fit.py``:
    input U[0, 1)·0.1, Adam lr 0.01).
    """

    def __init__(self, out_channels=3, channels=64, depth=5):
        super().__init__()
        self.out_channels = checks.integer(out_channels, "out_channels", "DeepDecoder", minimum=1)
        self.channels = checks.integer(channels, "channels", "DeepDecoder", minimum=1)
        self.depth = checks.integer(depth, "depth", "DeepDecoder", minimum=0)
        self.in_channels = self.channels
        self.config = dict(kind="deep decoder", out_channels=out_channels, channels=channels, depth=depth)
        blocks = []
        for i in range(self.depth + 1):
            blocks.append(nn.Conv2d(self.channels, self.channels, 1, bias=False))
            if i < self.depth:
                blocks.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            blocks += [nn.ReLU(), nn.BatchNorm2d(self.channels)]
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Conv2d(self.channels, self.out_channels, 1, bias=False), nn.Sigmoid())

    def forward(self, z):
        if z.dim() != 4 or z.shape[1] != self.channels:
            raise ValueError(f"DeepDecoder expects an input of shape (N, {self.channels}, h, w); got "
                             f"{tuple(z.shape)} — use net.make_input(H, W)")
        weight = self.head[0].weight
        if z.dtype != weight.dtype:
            raise TypeError(f"DeepDecoder: the input z is {z.dtype} but the network's weights are {weight.dtype}; "
                            "convert one of them (z.to(torch.float32), or net.double() for a float64 run)")
        return self.head(self.blocks(z))

    def check_size(self, height, width):
        """Raise ``ValueError`` unless a ``height`` × ``width`` image fits: both divisible by 2^depth, ≥ 2 px left
        (the input is the image shrunk by 2^depth; a 1 × 1 input makes a constant image)."""
        sides = tuple(checks.integer(s, name, "DeepDecoder", minimum=1, hint="a size in pixels")
                      for name, s in (("height", height), ("width", width)))
        unit = 2 ** self.depth
        if all(s % unit == 0 and s // unit >= 2 for s in sides):
            return
        fits = [d for d in range(0, 9) if all(s % 2 ** d == 0 and s // 2 ** d >= 2 for s in sides)]
        raise ValueError(f"DeepDecoder with depth {self.depth} needs height and width divisible by {unit} with "
                         f"at least 2 px left after {self.depth} halvings (at least {2 * unit} px); got "
                         f"{height}x{width}. Depths that fit: {fits}")

    def input_shape(self, height, width):
        """Shape (k, H/2^depth, W/2^depth) of the fixed input for a ``height`` × ``width`` image."""
        self.check_size(height, width)
        unit = 2 ** self.depth
        return (self.channels, height // unit, width // unit)

    def make_input(self, height, width, seed=0):
        """The fixed input z: U[0, 0.1) noise of :meth:`input_shape`, in the weights' dtype."""
        channels, h, w = self.input_shape(height, width)
        return make_input(channels, h, w, seed=seed).to(self.head[0].weight.dtype)

    def parameter_count(self):
        """Trainable parameters: (depth + 1)·(k² + 2k) + k·out_channels."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


ARCHITECTURES = {"skip": SkipNet, "deep decoder": DeepDecoder}


def build_network(out_channels, in_channels=32, kind="skip", **settings):
    """The network a run builds from its settings (``net_kwargs`` of ``fit_dip`` and the ADMM variants).

    ``kind="skip"`` (default): ``SkipNet(in_channels, out_channels, **settings)``, the thesis network when
    ``settings`` is empty. ``kind="deep decoder"``: ``DeepDecoder(out_channels, **settings)``, whose input has
    ``channels`` channels (``in_channels`` does not apply). Built from settings, a run's network is drawn from
    the run's seed like DIP's; a network passed in ready-made starts from the weights it was given.
    """
    checks.choice(kind, "kind", "the network settings (net_kwargs)", tuple(ARCHITECTURES))
    if kind == "deep decoder":
        return DeepDecoder(out_channels, **settings)
    return SkipNet(in_channels=in_channels, out_channels=out_channels, **settings)

"""Checks of the arguments that every public function of the course takes — one module, one message
per kind of mistake.

A student who passes σ = −0.1, a uint8 image, a measurement of the wrong shape or ``device="cuda"`` on a
laptop should read *which argument* is wrong, *what* was expected and *what to do* — not a traceback 21
frames deep inside torch, and never get a silently wrong or NaN answer. Every function of the package
checks its arguments here, so the same argument gets the same check and the same message everywhere::

    fit_dip: lr must be a finite number > 0 (thesis: 0.001), got inf.

The rules:

* numbers are Python or NumPy scalars (or 0-d tensors); ``bool`` is not a number; NaN and ±inf are refused;
* integers are ``int`` or NumPy integers, never floats (``iters=3.0``) and never ``bool`` (``iters=True``);
* tensors must be ``torch.Tensor`` of a floating dtype (float32 or float64) with finite values;
  images have shape (C, H, W) (or (B, C, H, W) where a batch is allowed);
* devices must exist on this machine.
"""
import inspect
import math
import numbers

import numpy as np
import torch


def _shown(value):
    """A short description of ``value`` for a message: tensors by shape and dtype, others by repr."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    if isinstance(value, np.ndarray):
        return f"a NumPy array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fail(where, name, expected, value, hint="", error=ValueError):
    message = f"{where}: {name} must be {expected}, got {_shown(value)}."
    raise error(message + (f" {hint[0].upper()}{hint[1:]}." if hint else ""))


# ----------------------------------------------------------------------------------------------
# numbers


def _as_scalar(value):
    """Python/NumPy scalars and 0-d tensors as a Python number; anything else (bool too) as None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, torch.Tensor):
        if value.dim() != 0 or value.dtype == torch.bool:
            return None
        return value.item()
    if isinstance(value, numbers.Real):
        return value.item() if isinstance(value, np.generic) else value
    return None


def _range_text(minimum, maximum, strict_min, strict_max):
    parts = []
    if minimum is not None:
        parts.append(f"{'>' if strict_min else '≥'} {minimum:g}")
    if maximum is not None:
        parts.append(f"{'<' if strict_max else '≤'} {maximum:g}")
    return " and ".join(parts)


def number(value, name, where, *, minimum=None, maximum=None, strict_min=False, strict_max=False, hint=""):
    """``value`` as a finite float within the given bounds, else ``ValueError``/``TypeError`` naming ``name``."""
    scalar = _as_scalar(value)
    bounds = _range_text(minimum, maximum, strict_min, strict_max)
    expected = "a finite number" + (f" {bounds}" if bounds else "")
    if scalar is None:
        _fail(where, name, expected, value, hint, TypeError)
    scalar = float(scalar)
    if not math.isfinite(scalar):
        _fail(where, name, expected, value, hint)
    if minimum is not None and (scalar < minimum or (strict_min and scalar == minimum)):
        _fail(where, name, expected, value, hint)
    if maximum is not None and (scalar > maximum or (strict_max and scalar == maximum)):
        _fail(where, name, expected, value, hint)
    return scalar


def positive(value, name, where, hint=""):
    """A finite number > 0 (learning rates, penalties ρ, step sizes)."""
    return number(value, name, where, minimum=0, strict_min=True, hint=hint)


def nonnegative(value, name, where, hint=""):
    """A finite number ≥ 0 (noise levels σ, weights λ)."""
    return number(value, name, where, minimum=0, hint=hint)


def integer(value, name, where, *, minimum=None, maximum=None, hint=""):
    """``value`` as an int within the bounds; floats and bools are refused, NumPy integers accepted."""
    bounds = _range_text(minimum, maximum, False, False)
    expected = "an integer" + (f" {bounds}" if bounds else "")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        _fail(where, name, expected, value, hint, TypeError)
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        _fail(where, name, expected, value, hint)
    return value


def choice(value, name, where, options):
    """``value`` if it is one of ``options``, else a ``ValueError`` listing them."""
    if not any(value == option and type(value) is type(option) for option in options):
        listed = ", ".join(repr(option) for option in options)
        _fail(where, name, f"one of {listed}", value)
    return value


def flag(value, name, where):
    """``value`` as a bool; only ``True``/``False`` (or NumPy bools) are accepted."""
    if not isinstance(value, (bool, np.bool_)):
        _fail(where, name, "True or False", value, error=TypeError)
    return bool(value)


def function(value, name, where, hint="", arguments=None):
    """``value`` if it can be called — with ``arguments`` positional arguments, when given (a prox is called
    as prox(v, rho), a denoiser as f(x)): a wrong signature is refused here, not at the first iteration."""
    if not callable(value):
        _fail(where, name, "a callable", value, hint, TypeError)
    if arguments is not None:
        try:
            signature = inspect.signature(value)
        except (TypeError, ValueError):   # some built-ins have no signature to read: trust them
            return value
        try:
            signature.bind(*range(arguments))
        except TypeError:
            _fail(where, name, f"a callable taking {arguments} positional argument(s)", value,
                  hint or f"its signature is {signature}", TypeError)
    return value


def sequence(value, name, where, length=None, hint=""):
    """``value`` (a list, tuple or other iterable, not a string or tensor) as a list, of ``length`` entries
    when given — so that runs are never paired up silently by a ``zip`` that drops the extra ones."""
    if isinstance(value, (str, bytes, torch.Tensor, np.ndarray)) or not hasattr(value, "__iter__"):
        _fail(where, name, "a list", value, hint, TypeError)
    value = list(value)
    if length is not None and len(value) != length:
        _fail(where, name, f"a list of {length} entries (one per measurement)", value,
              hint or f"it has {len(value)}")
    return value


def network(net, where, name="net", required=False):
    """A ``torch.nn.Module`` with weights (an untrained network such as SkipNet), or ``None`` unless
    ``required``."""
    if net is None and not required:
        return None
    if not isinstance(net, torch.nn.Module):
        _fail(where, name, "a torch.nn.Module such as dipcourse.networks.SkipNet(...)", net,
              "" if required else "or leave it out to build the thesis network", TypeError)
    if next(net.parameters(), None) is None:
        _fail(where, name, "a network with weights to train", net, "DIP fits the weights θ of G(θ)", TypeError)
    return net


def shape(value, name, where):
    """``value`` as a non-empty tuple of positive integers, such as an image's (C, H, W); each entry is
    checked as an integer, so (3, 16.7, 16) is refused rather than truncated to (3, 16, 16)."""
    expected = "a tuple of positive integers such as (3, 64, 64)"
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        _fail(where, name, expected, value, error=TypeError)
    entries = tuple(value)
    if not entries:
        _fail(where, name, expected, value)
    return tuple(integer(entry, f"{name}[{i}]", where, minimum=1, hint=f"{name} must be {expected}")
                 for i, entry in enumerate(entries))


# ----------------------------------------------------------------------------------------------
# the arguments that recur across the course: one check, one message each


def iters(value, where):
    """A number of iterations: an integer ≥ 1."""
    return integer(value, "iters", where, minimum=1, hint="the number of iterations")


SEED_MAX = 2 ** 63 - 1   # torch and NumPy generators take seeds up to a signed 64-bit integer


def seed(value, where, name="seed"):
    """A seed: an integer in [0, 2⁶³ − 1]."""
    return integer(value, name, where, minimum=0, maximum=SEED_MAX)


def lr(value, where):
    """A learning rate (or step size): a finite number > 0."""
    return positive(value, "lr", where, hint="the learning rate; the thesis uses 0.001 (§3.3)")


def rho(value, where):
    """The ADMM penalty ρ: a finite number > 0."""
    return positive(value, "rho", where, hint="the ADMM penalty ρ; the thesis uses 1 (§3.3)")


def sigma(value, where, name="sigma"):
    """A noise level in image units: a finite number ≥ 0."""
    return nonnegative(value, name, where,
                       hint="a noise level in image units [0, 1], e.g. 10/255 for the thesis's σ = 10")


def lam(value, where, name="lam"):
    """A prior's weight λ: a finite number ≥ 0."""
    return nonnegative(value, name, where, hint="a prior's weight λ ≥ 0, e.g. the thesis's TV weight 0.01")


# ----------------------------------------------------------------------------------------------
# tensors and images


def tensor(x, name, where, *, ndim=None, shape=None, finite=True, hint=""):
    """A floating-point ``torch.Tensor`` (float32 or float64), optionally of a given rank or shape, with
    finite values."""
    if not isinstance(x, torch.Tensor):
        _fail(where, name, "a torch.Tensor", x, hint or "convert with torch.as_tensor(x, dtype=torch.float32)",
              TypeError)
    if x.dtype not in (torch.float32, torch.float64):
        how = "x.float() / 255 (images are floats in [0, 1])" if x.dtype == torch.uint8 else "x.float()"
        _fail(where, name, "a float32 or float64 tensor", x, f"convert it with {how}", TypeError)
    if ndim is not None and x.dim() not in (ndim if isinstance(ndim, tuple) else (ndim,)):
        ranks = " or ".join(str(n) for n in (ndim if isinstance(ndim, tuple) else (ndim,)))
        _fail(where, name, f"a tensor with {ranks} dimensions", x, hint)
    if shape is not None and tuple(x.shape) != tuple(shape):
        _fail(where, name, f"a tensor of shape {tuple(shape)}", x, hint)
    if finite and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{where}: {name} has {bad} NaN or infinite value(s); every entry must be a finite "
                         "number (look for a division by zero or a run that diverged where it was made).")
    return x


def image(x, name, where, *, batch=False, shape=None):
    """A finite float image of shape (C, H, W) — or (B, C, H, W) when ``batch`` is allowed."""
    ranks = (3, 4) if batch else 3
    hint = "images are (C, H, W) tensors: add a channel axis with x[None] for a gray (H, W) image"
    return tensor(x, name, where, ndim=ranks, shape=shape, hint=hint)


def same_dtype(tensors, where):
    """All tensors in ``{name: tensor}`` share one dtype (float64 runs end to end, or not at all)."""
    dtypes = {name: t.dtype for name, t in tensors.items() if t is not None}
    if len(set(dtypes.values())) > 1:
        listed = ", ".join(f"{name} {dtype}" for name, dtype in dtypes.items())
        raise TypeError(f"{where}: the tensors must share one dtype, got {listed}; convert them with .float() "
                        "(float32, the course's default) or .double() (float64) all alike.")


# ----------------------------------------------------------------------------------------------
# operators, measurements, references


OPERATOR_METHODS = ("forward", "adjoint", "in_shape", "out_shape", "norm_sq")


def operator(A, where, name="A"):
    """An operator from :mod:`dipcourse.operators` (it has ``forward``, ``adjoint``, shapes and ``norm_sq``)."""
    missing = [attr for attr in OPERATOR_METHODS if not hasattr(A, attr)]
    if missing:
        _fail(where, name, "an operator from dipcourse.operators (Identity, RandomMask, Downsample, GaussianCS)",
              A, f"it lacks .{', .'.join(missing)}", TypeError)
    return A


def measurement(A, b, where, name="b"):
    """The operator ``A`` and a finite float measurement ``b`` of shape ``A.out_shape``."""
    operator(A, where)
    hint = "make it with dipcourse.operators.measure(A, x, sigma) using the same operator"
    tensor(b, name, where, shape=A.out_shape, hint=hint)
    return b


def reference(ref, shape, where, name="ref"):
    """``None`` or a finite float ground-truth image of ``shape`` (used for PSNR only)."""
    if ref is None:
        return None
    tensor(ref, name, where, shape=shape, hint="pass the ground-truth image the measurement was made of")
    if not ref.max().item() > 0:
        _fail(where, name, "an image with a positive maximum (the peak of PSNR, eq. 35)", ref,
              "pass the ground-truth image in [0, 1], not an all-black or negated one")
    return ref


# ----------------------------------------------------------------------------------------------
# devices


def device(value, where, name="device"):
    """``value`` as a ``torch.device`` that exists here; ``"cuda"`` without a GPU is refused with advice."""
    try:
        dev = torch.device(value)
    except (RuntimeError, TypeError):
        _fail(where, name, "a device such as 'cpu' or 'cuda'", value)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            _fail(where, name, "a device this machine has", value,
                  "torch sees no CUDA GPU here (torch.cuda.is_available() is False): use device='cpu', or "
                  "dipcourse.config.default_device(), which picks the GPU only when there is one")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            _fail(where, name, f"a GPU index below {torch.cuda.device_count()}", value)
    elif dev.type != "cpu":
        _fail(where, name, "'cpu' or 'cuda'", value, "the course runs on the CPU or on a CUDA GPU")
    return dev

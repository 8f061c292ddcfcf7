"""Image quality metrics."""
import math

import torch

from dipcourse import checks


def psnr(ref, img):
    """Peak signal-to-noise ratio in dB, eq. (35): 20 log10( max(ref) / sqrt(mse(ref, img)) ).

    The peak is the maximum of the reference image, as in the thesis (not a fixed 1.0). Identical images
    give +inf; an error too large for a float (squares beyond ~1e308, a diverging run) gives −inf. Both
    arguments must be finite float tensors of one shape (NaN would make the PSNR meaningless), and the
    reference's maximum must be positive.
    """
    checks.tensor(ref, "ref", "psnr")
    checks.tensor(img, "img", "psnr")
    if ref.shape != img.shape:
        raise ValueError(f"psnr: shapes differ, ref {tuple(ref.shape)} vs img {tuple(img.shape)}; "
                         "compare images of the same (C, H, W) shape")
    return psnr_at_peak(ref, img, reference_peak(ref))


def reference_peak(ref):
    """The peak of eq. (35), max(ref), refused unless positive."""
    peak = ref.max().item()
    if peak <= 0:
        raise ValueError(f"psnr: the reference's maximum is {peak:g}; eq. (35) needs a positive peak "
                         "(is ref an all-black image, or did you swap ref and img?)")
    return peak


def psnr_at_peak(ref, img, peak):
    """Eq. (35) with the reference's peak given and no checks: the form a run's bookkeeping calls every
    iteration, once :func:`psnr`'s checks have been made on the reference (the run checks its iterates
    for NaN itself, and a NaN image gives a NaN PSNR here, which the run then reports as diverged)."""
    mse = torch.mean((ref.detach().double() - img.detach().to(ref.device).double()) ** 2).item()
    if mse == 0.0:
        return math.inf
    if math.isinf(mse):
        return -math.inf  # finite images whose squared error overflows: a run on its way to diverging
    return 20.0 * math.log10(peak / math.sqrt(mse))

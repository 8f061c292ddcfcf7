"""Image quality metrics."""
import math

import torch


def psnr(ref, img):
    """Peak signal-to-noise ratio in dB, eq. (35): 20 log10( max(ref) / sqrt(mse(ref, img)) ).

    The peak is the maximum of the reference image, as in the thesis (not a fixed 1.0).
    """
    ref = torch.as_tensor(ref)
    img = torch.as_tensor(img)
    if ref.shape != img.shape:
        raise ValueError(f"psnr: shapes differ, ref {tuple(ref.shape)} vs img {tuple(img.shape)}; "
                         "compare images of the same (C, H, W) shape")
    mse = torch.mean((ref.detach().double() - img.detach().to(ref.device).double()) ** 2).item()
    peak = ref.max().item()
    if mse == 0.0:
        return math.inf
    return 20.0 * math.log10(peak / math.sqrt(mse))

"""ExpandNets (Guo, Alvarez & Salzmann, NeurIPS 2020), following GUOShuxuan/expandnets
(`exp_cifar/models/cifar_tiny_7.py`, contraction in `exp_cifar/utils/compute_new_weights.py`).

A compact layer is trained as a chain of layers with no non-linearity between them, expanded by
the rate r (`expansion`), and contracted back into the compact layer for inference:

- `ExpandCL` (expand convolutional layers), for a kxk conv in -> out:
  1x1 (in -> r*in, padding p) -> kxk (r*in -> r*out, stride s, padding 0) -> 1x1 (r*out -> out).
- `ExpandCK` (expand convolutional kernels), for a kxk conv with k = 5, 7, ...:
  (k-1)/2 chained 3x3 convs, in -> r*in -> r*out -> ... -> out; only the FIRST conv pads (k//2).
- `ExpandFC` for a Linear: in -> r*in -> r*out -> out.

All layers keep their bias (nn.Conv2d / nn.Linear default), as in the official code. The chain is
EXACTLY one conv because all the padding happens on the input, before the first conv: every later
conv is a valid (unpadded) convolution of an affine function of the padded input, so biases just
propagate (`b = b2 + sum_{m,t} W2[o, m, t] * b1[m]`) and kernels compose. Moving any padding to a
later conv would make the border read zeros instead of the previous layer's bias response, and
the composition inexact. Stride is supported on the kxk conv of ExpandCL; ExpandCK has stride 1
like the official code.
"""

from __future__ import annotations

from torch import nn

__all__ = ["ExpandCK", "ExpandCL", "ExpandFC"]


class ExpandCL(nn.Sequential):
    """1x1 (pads) -> kxk (strides) -> 1x1, channels in -> r*in -> r*out -> out, no non-linearity."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        expansion: int = 4,
    ) -> None:
        super().__init__(
            nn.Conv2d(in_ch, expansion * in_ch, kernel_size=1, padding=padding),
            nn.Conv2d(expansion * in_ch, expansion * out_ch, kernel_size=kernel_size, stride=stride),
            nn.Conv2d(expansion * out_ch, out_ch, kernel_size=1),
        )


class ExpandCK(nn.Sequential):
    """(kernel_size - 1) / 2 chained 3x3 convs equal to one kxk conv; only the first one pads."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 5,
        expansion: int = 4,
        padding: int | None = None,
    ) -> None:
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"ExpandCK needs an odd kernel_size >= 3, got {kernel_size}")
        num_convs = (kernel_size - 1) // 2
        hidden = [expansion * in_ch] + [expansion * out_ch] * (num_convs - 2) if num_convs > 1 else []
        channels = [in_ch, *hidden, out_ch]
        first_padding = kernel_size // 2 if padding is None else padding
        super().__init__(
            *(
                nn.Conv2d(channels[i], channels[i + 1], kernel_size=3, padding=first_padding if i == 0 else 0)
                for i in range(num_convs)
            )
        )


class ExpandFC(nn.Sequential):
    """Linear in -> r*in -> r*out -> out, no non-linearity (ExpandNet-FC)."""

    def __init__(self, in_features: int, out_features: int, expansion: int = 4) -> None:
        super().__init__(
            nn.Linear(in_features, expansion * in_features),
            nn.Linear(expansion * in_features, expansion * out_features),
            nn.Linear(expansion * out_features, out_features),
        )

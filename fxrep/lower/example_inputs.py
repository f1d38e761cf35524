"""Normalize the ``example_inputs`` argument that every lowering entry point accepts.

Callers pass either one tensor or a tuple/list of tensors; the exporters and builders want a
tuple. Keeping the rule in one place keeps the error message the same everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["as_input_tuple", "cast_floating"]


def as_input_tuple(example_inputs: torch.Tensor | Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Return ``example_inputs`` as a tuple of tensors; a single tensor becomes a 1-tuple."""
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, (tuple, list)) and example_inputs:
        inputs = tuple(example_inputs)
        for index, value in enumerate(inputs):
            if not isinstance(value, torch.Tensor):
                raise TypeError(
                    f"example_inputs[{index}] is a {type(value).__name__}; the lowering functions take "
                    "a tensor or a tuple of tensors (one per positional argument of forward)"
                )
        return inputs
    raise TypeError(
        f"example_inputs must be a tensor or a non-empty tuple of tensors, got {type(example_inputs).__name__}"
    )


def cast_floating(inputs: tuple[torch.Tensor, ...], dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """Cast the floating-point tensors of ``inputs`` to ``dtype``; integer and bool inputs stay as they are."""
    return tuple(t.to(dtype) if t.is_floating_point() else t for t in inputs)

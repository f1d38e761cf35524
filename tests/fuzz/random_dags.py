"""Random DAG models for fuzzing `fxrep.optimize`: a random program, an interpreter module, a checker.

A *program* is plain data (JSON-serialisable): the input layout (batch, channels, 1-D/2-D/3-D
spatial size, dtype) and a list of nodes, each reading earlier values by index (value 0 is the
input, node ``i`` produces value ``i + 1``). `RandomDag` is an ``nn.Module`` whose ``forward``
interprets the program, so both capture levels (``torch.export`` and ``symbolic_trace``) see an
ordinary module with real submodules, parameters and functional calls.

The program space covers what fxrep collapses and what it must refuse:

- convs: kernels 1, 3, 5, 1x3, 3x1 (and 3-D analogues), stride 1/2, dilation 1/2, groups 1 / 2 /
  depthwise (channel multiplier 1 or 2), with or without bias, "same"-style, zero, partial, string
  ("same", "valid") padding, padding modes zeros / reflect / replicate / circular; module form
  (``nn.ConvNd``) or functional form (``F.convNd`` on registered parameters, with an explicit
  ``F.pad`` for a non-zero padding mode);
- BatchNorm with running statistics (module or ``F.batch_norm``, affine or not);
- per-channel and scalar mul / add / sub / rsub / div / neg, and adversarial *spatial* constants
  (not per channel: never foldable into a conv);
- residual adds ``x + f(x)``, multi-branch blocks of one input summed (or subtracted, or
  ``torch.add(alpha=...)``) in a random association, channel concatenations;
- avg-pool with ``count_include_pad`` True/False, ``ceil_mode``, ``divisor_override``;
- zero / constant / reflect / replicate ``F.pad`` (or pad modules) followed by an unpadded conv;
- sequential conv chains without an activation between (1x1 -> kxk, kxk -> kxk, strided);
- non-linearities (ReLU in several spellings, rarely in place; GELU; SiLU; max-pool);
- identities (dropout in eval, ``nn.Identity``, ``clone``, ``contiguous``);
- an optional classifier head: global mean -> Linear -> BatchNorm1d -> [ReLU] -> Linear;
- values reused by several consumers, dead branches, and a second output (an intermediate value).

Shapes are consistent by construction: every candidate node's output shape is computed on meta
tensors and a candidate that does not fit is replaced.

Choices go through a `Chooser`: `RandomChooser` (seeded ``random.Random``, for the sweep) or
`DrawChooser` (hypothesis ``draw``, so failures shrink towards fewer, simpler nodes: the first
option of every choice is the simplest one).

`check_program(program, seed, capture_method)` runs `fxrep.optimize` and checks the fuzzing
properties independently of fxrep's own verifier; it returns an `Outcome` instead of asserting,
so the sweep can tally outcomes and the tests can assert on them.
"""

from __future__ import annotations

import json
import math
import re
import traceback
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import fxrep
from fxrep.errors import CaptureError, EquivalenceError, FxrepError, InvalidModelError, PassError
from fxrep.models import randomize_
from fxrep.report import count_ops

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16,
          "float16": torch.float16}
LOW_PRECISION = ("bfloat16", "float16")
# Independent check tolerances, max |optimized - original| / max |original| (the verifier's measure).
TOLERANCE = {"float64": 1e-9, "float32": 1e-4, "float16": 1e-2, "bfloat16": 5e-2}
# In half precision a rounding difference is told from a wrong rewrite by re-running both in float64:
# the folded weights were rounded once to the half dtype, so a correct rewrite stays within this.
HALF_IN_DOUBLE_TOLERANCE = 2e-2
RELATIVE_SLACK = 1e-9

KERNELS = {
    1: [(1,), (3,), (5,)],
    2: [(1, 1), (3, 3), (5, 5), (1, 3), (3, 1)],
    3: [(1, 1, 1), (3, 3, 3), (1, 3, 3), (3, 1, 1)],
}
CONV = {1: (nn.Conv1d, F.conv1d), 2: (nn.Conv2d, F.conv2d), 3: (nn.Conv3d, F.conv3d)}
BATCHNORM = {0: nn.BatchNorm1d, 1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
AVGPOOL = {1: (nn.AvgPool1d, F.avg_pool1d), 2: (nn.AvgPool2d, F.avg_pool2d), 3: (nn.AvgPool3d, F.avg_pool3d)}
MAXPOOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
TRANSPOSED = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
TRANSPOSED_MODULES = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
PAD_MODULES = {
    "constant": {1: nn.ConstantPad1d, 2: nn.ConstantPad2d, 3: nn.ConstantPad3d},
    "reflect": {1: nn.ReflectionPad1d, 2: nn.ReflectionPad2d, 3: nn.ReflectionPad3d},
    "replicate": {1: nn.ReplicationPad1d, 2: nn.ReplicationPad2d, 3: nn.ReplicationPad3d},
}
MAX_CHANNELS = 24


# ---------------------------------------------------------------------------------------------- choosers
class RandomChooser:
    """Choices from a seeded ``random.Random`` (the sweep)."""

    def __init__(self, rng) -> None:
        self.rng = rng

    def integer(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def choice(self, options: Sequence[Any]) -> Any:
        return options[self.rng.randrange(len(options))]

    def chance(self, p: float) -> bool:
        return self.rng.random() < p


class DrawChooser:
    """Choices from hypothesis' ``draw``: shrinks to small integers, first options, and ``False``."""

    def __init__(self, draw) -> None:
        from hypothesis import strategies as st

        self.draw, self.st = draw, st

    def integer(self, low: int, high: int) -> int:
        return self.draw(self.st.integers(low, high))

    def choice(self, options: Sequence[Any]) -> Any:
        return options[self.draw(self.st.integers(0, len(options) - 1))]

    def chance(self, p: float) -> bool:
        return self.draw(self.st.integers(0, 999)) >= round(1000 * (1 - p))


def weighted(chooser, options: Sequence[tuple[Any, int]]) -> Any:
    """One option, drawn with integer weights (the first option is the shrink target)."""
    total = sum(w for _, w in options)
    pick = chooser.integer(0, total - 1)
    for option, w in options:
        if pick < w:
            return option
        pick -= w
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------------- programs
@dataclass
class Program:
    """A random model as data; ``nodes[i]`` produces value ``i + 1`` (value 0 is the input)."""

    nd: int
    batch: int
    channels: int
    size: list[int]
    dtype: str = "float32"
    nodes: list[dict] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Program:
        return cls(**json.loads(text))

    def kinds(self) -> Counter:
        return Counter(node["op"] for node in self.nodes)

    def describe(self) -> str:
        lines = [f"input v0: ({self.batch}, {self.channels}, {', '.join(map(str, self.size))}) {self.dtype}"]
        for index, node in enumerate(self.nodes):
            params = {k: v for k, v in node.items() if k not in ("op", "in", "shape")}
            args = ", ".join(f"v{i}" for i in node["in"])
            lines.append(f"v{index + 1} = {node['op']}({args}) {params} -> {tuple(node['shape'])}")
        lines.append(f"outputs: {', '.join(f'v{i}' for i in self.outputs)}")
        return "\n".join(lines)


class _Builder:
    """Grows a program node by node, keeping every value's shape (channels, *spatial)."""

    def __init__(self, chooser, nd: int, batch: int, channels: int, size: list[int], dtype: str,
                 inplace: bool = True, skip: frozenset[str] = frozenset()) -> None:
        self.ch = chooser
        self.inplace = inplace
        self.skip = skip
        self.program = Program(nd, batch, channels, list(size), dtype)
        self.shapes: list[tuple[int, ...]] = [(channels, *size)]

    # ------------------------------------------------------------------ basics
    @property
    def nd(self) -> int:
        return self.program.nd

    def add(self, node: dict) -> int | None:
        """Append ``node`` if its output shape is valid (computed on meta tensors); its value index or None."""
        try:
            with warnings.catch_warnings():  # e.g. padding="same" with an even kernel warns about a copy
                warnings.simplefilter("ignore")
                shape = infer_shape(node, [self.shapes[i] for i in node["in"]], self.nd, self.program.batch)
        except Exception:
            return None
        if shape is None or any(d < 1 for d in shape) or shape[0] > MAX_CHANNELS * 2:
            return None
        if len(shape) > 1 and min(shape[1:]) < 1:
            return None
        node["shape"] = list(shape)
        self.program.nodes.append(node)
        self.shapes.append(tuple(shape))
        return len(self.shapes) - 1

    def spatial(self, v: int) -> tuple[int, ...]:
        return self.shapes[v][1:]

    def channels(self, v: int) -> int:
        return self.shapes[v][0]

    def fresh(self, v: int) -> bool:
        """Whether value ``v`` is a new tensor (not the input or an alias of it), so it may be mutated."""
        if not self.inplace:
            return False
        return v > 0 and self.program.nodes[v - 1]["op"] in ("conv", "bn", "add", "cat", "avgpool", "convT")

    def is_spatial(self, v: int) -> bool:
        return len(self.shapes[v]) == self.nd + 1

    def source(self) -> int:
        """Mostly the newest spatial value (deep graphs); sometimes an earlier one (shared values)."""
        candidates = [v for v in range(len(self.shapes)) if self.is_spatial(v)]
        if self.ch.chance(0.75):
            return candidates[-1]
        return self.ch.choice(candidates[::-1])

    # ------------------------------------------------------------------ node factories
    def conv_node(self, v: int, *, out: int | None = None, kernel=None, stride: int | None = None,
                  padding: str | None = None, allow_grouped: bool = True) -> dict:
        ch, nd = self.ch, self.nd
        cin = self.channels(v)
        free = kernel is None and stride is None and padding is None  # no caller constraint on the geometry
        kernel = list(kernel if kernel is not None else ch.choice(KERNELS[nd] + ([[2] * nd] if free else [])))
        dilation = 2 if ch.chance(0.15) and max(kernel) > 1 else 1
        stride = stride if stride is not None else (2 if ch.chance(0.2) else 1)
        strides, dilations = [stride] * nd, [dilation] * nd
        if free and nd > 1 and ch.chance(0.08):  # per-axis stride and dilation
            strides = [ch.choice([1, 2]) for _ in range(nd)]
            dilations = [ch.choice([1, 2]) if k > 1 else 1 for k in kernel]
        if out is None:
            out = ch.choice([cin, cin, 2 * cin, max(1, cin // 2), 4, 8, 6])
            out = max(1, min(out, MAX_CHANNELS))
        groups = 1
        if allow_grouped:
            kind = weighted(ch, [("dense", 6), ("two", 2), ("depthwise", 2), ("four", 1)])
            if kind == "two" and cin % 2 == 0 and out % 2 == 0:
                groups = 2
            elif kind == "depthwise" and (out == cin or out == 2 * cin) and cin > 1:
                groups = cin
            elif kind == "four" and cin % 4 == 0 and out % 4 == 0:
                groups = 4
        padding = padding or weighted(ch, [("same", 6), ("zero", 2), ("partial", 1), ("string", 1),
                                           ("over", 1 if free else 0)])
        same = [d * (k - 1) // 2 for k, d in zip(kernel, dilations, strict=True)]
        if padding == "same":
            pad: Any = same
        elif padding == "zero":
            pad = [0] * nd
        elif padding == "partial":
            pad = [ch.integer(0, s) for s in same]
        elif padding == "over":  # more padding than the kernel reaches: the outer ring is just the bias
            pad = [s + ch.integer(1, 2) for s in same]
        else:
            pad = ch.choice(["same", "valid"]) if set(strides) == {1} else "valid"
        padding_mode = "zeros"
        if isinstance(pad, list) and any(pad) and ch.chance(0.12):
            padding_mode = ch.choice(["reflect", "replicate", "circular"])
        return {"op": "conv", "in": [v], "out": out, "k": kernel, "s": strides, "p": pad,
                "d": dilations, "g": groups, "bias": ch.chance(0.5), "pmode": padding_mode,
                "form": weighted(ch, [("module", 12), ("functional", 3), ("computed", 1)])}

    def conv(self, v: int, **kw) -> int:
        """A conv, or (if the random one does not fit the input) a 1x1 conv, which always fits."""
        made = self.add(self.conv_node(v, **kw))
        if made is None:
            kw.pop("kernel", None)
            made = self.add(self.conv_node(v, **{**kw, "kernel": [1] * self.nd, "stride": kw.get("stride") or 1}))
        assert made is not None
        return made

    def bn(self, v: int) -> int:
        node = {"op": "bn", "in": [v], "affine": self.ch.chance(0.85), "eps": self.ch.choice([1e-5, 1e-3]),
                "form": "functional" if self.ch.chance(0.2) else "module"}
        if node["form"] == "module" and self.ch.chance(0.03):
            node["form"] = "batch_stats"  # track_running_stats=False: batch statistics even in eval
        return self.add(node)

    def pointwise(self, v: int, kinds=None) -> int:
        kinds = kinds or [("mul_c", 4), ("mul_s", 2), ("add_c", 3), ("add_s", 1), ("sub_s", 1), ("rsub_s", 1),
                          ("div_s", 1), ("div_c", 1), ("neg", 1), ("mul_c_left", 1), ("mul_spatial", 1),
                          ("add_spatial", 1), ("mul_0d", 1), ("mul_c4", 1), ("mul_last", 1), ("add_last", 1),
                          ("inplace_mul_s", 1), ("inplace_add_c", 1)]
        kind = weighted(self.ch, kinds)
        if kind.startswith("inplace") and not self.fresh(v):
            kind = kind.replace("inplace_", "")
        value = self.ch.choice([0.5, 1.5, -0.75, 2.0, 0.25, 0.0])
        if kind == "div_s" and value == 0.0:
            value = 2.0
        return self.add({"op": "pointwise", "in": [v], "kind": kind, "value": value,
                         "buffer": self.ch.chance(0.3)})

    def activation(self, v: int) -> int:
        kind = weighted(self.ch, [("relu", 4), ("relu_fn", 1), ("relu_method", 1), ("relu_inplace", 1),
                                  ("gelu", 2), ("silu", 1), ("maxpool", 2)])
        if kind == "relu_inplace" and not self.fresh(v):
            kind = "relu"  # never mutate the caller's input (or an alias of it)
        node = {"op": "act", "in": [v], "kind": kind}
        if kind == "maxpool":
            k = self.ch.choice([2, 3])
            node.update(k=k, s=self.ch.choice([1, 2]), p=self.ch.integer(0, k // 2),
                        ceil=self.ch.chance(0.15))
        made = self.add(node)
        return made if made is not None else self.add({"op": "act", "in": [v], "kind": "relu"})

    def avgpool(self, v: int, *, same: bool = False, stride: int | None = None) -> int | None:
        ch = self.ch
        k = ch.choice([3, 2]) if not same else 3
        s = stride if stride is not None else ch.choice([1, 2])
        p = 1 if same else ch.integer(0, k // 2)
        node = {"op": "avgpool", "in": [v], "k": k, "s": s, "p": p,
                "cip": True if same else ch.chance(0.75), "ceil": False if same else ch.chance(0.15),
                "div": None if same or self.nd == 1 or not ch.chance(0.05) else 5,
                "form": "functional" if ch.chance(0.3) else "module"}
        return self.add(node)

    def pad(self, v: int, widths: list[list[int]], mode: str = "constant", value: float = 0.0) -> int | None:
        return self.add({"op": "pad", "in": [v], "w": widths, "mode": mode, "value": value,
                         "form": "module" if self.ch.chance(0.25) else "functional"})

    def identity(self, v: int) -> int:
        kind = self.ch.choice(["dropout", "identity", "clone", "contiguous"])
        return self.add({"op": "identity", "in": [v], "kind": kind})

    def sum_tree(self, values: list[int]) -> int:
        """Sum ``values`` (equal shapes) in a random association, sometimes as a difference or with alpha."""
        values = list(values)
        order = [values.pop(self.ch.integer(0, len(values) - 1)) for _ in range(len(values))]

        def combine(items: list[int]) -> int:
            if len(items) == 1:
                return items[0]
            cut = self.ch.integer(1, len(items) - 1)
            left, right = combine(items[:cut]), combine(items[cut:])
            kind = weighted(self.ch, [("+", 8), ("torch.add", 1), ("-", 1), ("alpha", 1)])
            node = {"op": "add", "in": [left, right], "kind": kind}
            if kind == "alpha":
                node["alpha"] = self.ch.choice([0.5, -2.0])
            made = self.add(node)
            assert made is not None, (self.shapes[left], self.shapes[right])
            return made

        return combine(order)

    # ------------------------------------------------------------------ composite steps
    def step(self) -> None:
        kind = weighted(self.ch, [("conv", 5), ("branches", 4), ("residual", 2), ("chain", 2), ("bn", 2),
                                  ("pointwise", 2), ("act", 3), ("pad_conv", 2), ("add", 1), ("cat", 2),
                                  ("avgpool", 1), ("identity", 1), ("odd", 3)])
        v = self.source()
        if kind == "conv":
            c = self.conv(v)
            if self.ch.chance(0.5):
                self.bn(c)
        elif kind == "bn":
            self.bn(v)
        elif kind == "pointwise":
            self.pointwise(v)
        elif kind == "act":
            self.activation(v)
        elif kind == "identity":
            self.identity(v)
        elif kind == "avgpool":
            if self.avgpool(v) is None:
                self.activation(v)
        elif kind == "branches":
            self.branches(v)
        elif kind == "residual":
            self.residual(v)
        elif kind == "chain":
            self.chain(v)
        elif kind == "pad_conv":
            self.pad_conv(v)
        elif kind == "add":
            self.add_existing(v)
        elif kind == "cat":
            self.cat(v)
        elif kind == "odd":
            self.odd(v)

    def odd(self, v: int) -> None:
        """Unusual ops, most of which fxrep must leave alone (or handle exactly)."""
        ch, nd = self.ch, self.nd
        kind = weighted(ch, [("se", 2), ("bcast_add", 1), ("cat_spatial", 1), ("cat_twice", 1), ("split_add", 1),
                             ("slice", 1), ("reuse", 2), ("linear_last", 1), ("cl_linear", 2), ("convT", 2),
                             ("crop", 1), ("chunk_cat", 1)])
        if kind in self.skip:
            kind = "pointwise"  # replaced after the draw, so the other programs stay the same
        cin = self.channels(v)
        if kind == "reuse":  # call an earlier module conv again, on another tensor (shared weights)
            earlier = [i for i, n in enumerate(self.program.nodes) if n["op"] == "conv" and n["form"] == "module"
                       and self.shapes[n["in"][0]][0] == cin and n["pmode"] == "zeros"]
            if earlier:
                index = ch.choice(earlier)
                node = {key: val for key, val in self.program.nodes[index].items() if key != "shape"}
                made = self.add({**node, "op": "reuse", "in": [v], "of": index})
                if made is not None:
                    if ch.chance(0.5):
                        self.bn(made)
                    return
            kind = "se"
        if kind == "se":  # squeeze-excitation: multiply by a tensor computed from the input itself
            self.add({"op": "se", "in": [v], "gate": ch.choice(["sigmoid", "none"])})
        elif kind == "bcast_add":
            self.add({"op": "bcast_add", "in": [v]})
        elif kind == "cat_spatial":
            self.add({"op": "cat", "in": [v, v], "dim": ch.integer(2, 1 + nd)})
        elif kind == "cat_twice":
            self.add({"op": "cat", "in": [v, v]})
        elif kind == "split_add" and cin % 2 == 0:
            self.add({"op": "split_add", "in": [v]})
        elif kind == "slice" and cin > 1:
            self.add({"op": "slice", "in": [v], "stop": ch.integer(1, cin - 1)})
        elif kind == "linear_last":  # a Linear over the last *spatial* dim, which may equal the channel count
            self.add({"op": "linear_last", "in": [v], "out": ch.choice([self.spatial(v)[-1], cin, 4])})
        elif kind == "cl_linear":  # channels-last pointwise Linear (ConvNeXt style), maybe + BatchNorm
            made = self.add({"op": "cl_linear", "in": [v], "out": ch.choice([cin, 2 * cin, 4])})
            if made is not None and ch.chance(0.5):
                self.bn(made)
        elif kind == "convT":
            k = ch.choice([2, 3, 1])
            stride = ch.choice([1, 2])
            made = self.add({"op": "convT", "in": [v], "out": ch.choice([cin, 4]), "k": k, "s": stride,
                             "p": ch.integer(0, k // 2), "op_pad": ch.integer(0, stride - 1),
                             "g": ch.choice([1, cin]) if cin > 1 else 1, "bias": ch.chance(0.5)})
            if made is not None and ch.chance(0.7):
                self.bn(made)
        elif kind == "crop":  # F.pad with negative widths crops
            widths = [[-ch.integer(0, 1), -ch.integer(0, 1)] if n > 4 else [0, 0] for n in self.spatial(v)]
            made = self.pad(v, widths)
            if made is not None and ch.chance(0.7):
                self.conv(made)
        elif kind == "chunk_cat" and cin % 2 == 0:  # channel shuffle-like: swap the two halves
            self.add({"op": "chunk_cat", "in": [v]})
        else:
            self.pointwise(v)

    def branches(self, v: int) -> None:
        """Several branches of one input, same output shape, summed in a random association."""
        ch, nd = self.ch, self.nd
        cin = self.channels(v)
        stride = 2 if ch.chance(0.25) and min(self.spatial(v)) >= 4 else 1
        count = ch.integer(1, 4)
        kinds = [weighted(ch, [("conv", 6), ("conv_bn", 4), ("identity", 2), ("bn", 2), ("scaled", 2),
                               ("avgpool", 1), ("pad_conv", 1), ("chain", 1)]) for _ in range(count)]
        keeps_channels = any(k in ("identity", "bn", "avgpool") for k in kinds)
        out = cin if keeps_channels else ch.choice([cin, 2 * cin, 8, max(1, cin // 2)])
        out = min(out, MAX_CHANNELS) if not keeps_channels else out
        outputs = []
        for kind in kinds:
            if kind in ("identity", "bn") and stride != 1:
                kind = "conv"
            if kind == "identity":
                outputs.append(v if ch.chance(0.6) else self.identity(v))
            elif kind == "bn":
                outputs.append(self.bn(v))
            elif kind == "avgpool":
                made = self.avgpool(v, same=True, stride=stride)
                outputs.append(made if made is not None else self.conv(v, out=out, stride=stride, padding="same"))
            elif kind == "pad_conv":
                kernel = [k if k % 2 else k + 1 for k in ch.choice(KERNELS[nd])]
                padded = self.pad(v, [[(k - 1) // 2, (k - 1) // 2] for k in kernel])
                node = self.conv_node(padded, out=out, kernel=kernel, stride=stride, padding="zero")
                node["d"], node["pmode"] = [1] * nd, "zeros"
                made = self.add(node)
                outputs.append(made if made is not None else self.conv(v, out=out, stride=stride, padding="same"))
            elif kind == "chain":
                mid = self.conv(v, out=ch.choice([cin, out, 4]), kernel=[1] * nd, stride=stride, padding="same")
                if ch.chance(0.5):
                    mid = self.bn(mid)
                outputs.append(self.conv(mid, out=out, stride=1, padding="same",
                                         kernel=[k if k % 2 else k + 1 for k in ch.choice(KERNELS[nd])]))
            else:
                kernel = [k if k % 2 else k + 1 for k in ch.choice(KERNELS[nd])]
                c = self.conv(v, out=out, kernel=kernel, stride=stride, padding="same")
                if kind == "conv_bn":
                    c = self.bn(c)
                elif kind == "scaled":
                    c = self.pointwise(c, [("mul_c", 2), ("mul_s", 1)])
                outputs.append(c)
        shapes = Counter(self.shapes[o] for o in outputs)
        target = shapes.most_common(1)[0][0]
        same_shape = [o for o in outputs if self.shapes[o] == target]  # the rest stay as dead branches
        result = self.sum_tree(same_shape) if len(same_shape) > 1 else same_shape[0]
        if ch.chance(0.3):
            result = self.bn(result)
        if ch.chance(0.5):
            self.activation(result)

    def residual(self, v: int) -> None:
        """``x + f(x)`` with f one or two shape-preserving linear ops."""
        ch, nd = self.ch, self.nd
        y = v
        for _ in range(ch.integer(1, 2)):
            kind = weighted(ch, [("conv", 4), ("bn", 1), ("scale", 1)])
            if kind == "conv":
                kernel = [k if k % 2 else k + 1 for k in ch.choice(KERNELS[nd])]
                y = self.conv(y, out=self.channels(v), kernel=kernel, stride=1, padding="same")
            elif kind == "bn":
                y = self.bn(y)
            else:
                y = self.pointwise(y, [("mul_c", 2), ("mul_s", 1), ("add_c", 1)])
        if self.shapes[y] != self.shapes[v]:  # a depthwise multiplier or an odd padding: project back
            y = self.conv(y, out=self.channels(v), kernel=[1] * nd, stride=1, padding="same",
                          allow_grouped=False)
        self.sum_tree([v, y] if ch.chance(0.5) else [y, v])

    def chain(self, v: int) -> None:
        """2-3 convs in sequence, no activation between (BN or scale sometimes between)."""
        y = v
        for _ in range(self.ch.integer(2, 3)):
            y = self.conv(y)
            if self.ch.chance(0.3):
                y = self.bn(y) if self.ch.chance(0.6) else self.pointwise(y, [("mul_c", 1), ("add_c", 1)])

    def pad_conv(self, v: int) -> None:
        """A pad (zero mostly; constant, reflect, replicate sometimes) then an unpadded conv."""
        ch, nd = self.ch, self.nd
        kernel = list(ch.choice(KERNELS[nd]))
        mode = weighted(ch, [("constant", 6), ("reflect", 1), ("replicate", 1)])
        value = 0.0 if mode != "constant" or ch.chance(0.8) else ch.choice([0.5, -1.0])
        widths = [[(k - 1) // 2, (k - 1) // 2] if ch.chance(0.7) else [ch.integer(0, 2), ch.integer(0, 2)]
                  for k in kernel]
        padded = self.pad(v, widths, mode, value)
        if padded is None:
            padded = self.pad(v, [[0, 0]] * nd, "constant", 0.0)
        node = self.conv_node(padded, kernel=kernel, padding="zero")
        node["pmode"] = "zeros"
        if self.add(node) is None:
            self.conv(padded, kernel=[1] * nd, stride=1)

    def add_existing(self, v: int) -> None:
        """Add two values that happen to have the same shape (often far apart in the graph)."""
        partners = [u for u in range(len(self.shapes)) if u != v and self.shapes[u] == self.shapes[v]]
        if partners:
            self.sum_tree([v, self.ch.choice(partners)])
        else:
            self.residual(v)

    def cat(self, v: int) -> None:
        """Concatenate along channels: branches of one input (Inception) or values of one spatial size."""
        ch = self.ch
        if ch.chance(0.6):
            parts = []
            stride = 2 if ch.chance(0.2) and min(self.spatial(v)) >= 4 else 1
            for _ in range(ch.integer(2, 3)):
                kind = weighted(ch, [("conv", 4), ("identity", 1), ("bn", 1), ("avgpool", 1)])
                if kind in ("identity", "bn") and stride == 1:
                    parts.append(v if kind == "identity" else self.bn(v))
                elif kind == "avgpool":
                    made = self.avgpool(v, same=True, stride=stride)
                    parts.append(made if made is not None else self.conv(v, stride=stride, padding="same"))
                else:
                    kernel = [k if k % 2 else k + 1 for k in ch.choice(KERNELS[self.nd])]
                    c = self.conv(v, kernel=kernel, stride=stride, padding="same",
                                  out=ch.choice([2, 4, self.channels(v)]))
                    parts.append(self.bn(c) if ch.chance(0.4) else c)
        else:
            parts = [v] + [u for u in range(len(self.shapes)) if u != v and self.is_spatial(u)
                           and self.spatial(u) == self.spatial(v)][-2:]
        target = Counter(self.spatial(p) for p in parts).most_common(1)[0][0]
        parts = [p for p in parts if self.spatial(p) == target]
        if sum(self.channels(p) for p in parts) > MAX_CHANNELS * 2 or len(parts) < 2:
            return
        self.add({"op": "cat", "in": parts})
        if ch.chance(0.4):
            self.conv(len(self.shapes) - 1, kernel=[1] * self.nd, stride=1)

    def head(self, v: int) -> int:
        hidden = self.ch.choice([8, 16])
        node = {"op": "head", "in": [v], "hidden": hidden, "classes": self.ch.choice([3, 5]),
                "bn": self.ch.chance(0.7), "act": self.ch.chance(0.5), "mean": self.ch.choice(["mean", "pool"])}
        return self.add(node)


def sample_program(chooser, *, max_steps: int = 6, dtypes: Sequence[tuple[str, int]] | None = None,
                   nds: Sequence[tuple[int, int]] | None = None, inplace: bool = True,
                   skip: Sequence[str] = ()) -> Program:
    """Draw a random program: input layout, ``1..max_steps`` composite steps, outputs.

    ``inplace=False`` leaves out in-place ops (``nn.ReLU(inplace=True)``, ``x.mul_``, ``x.add_``); they
    are only ever applied to fresh intermediate tensors, never to the input or an alias of it.
    ``skip`` names unusual ops (`_Builder.odd` kinds, e.g. ``"linear_last"``) to replace by a pointwise op.
    """
    ch = chooser
    nd = weighted(ch, list(nds or [(2, 7), (1, 2), (3, 1)]))
    dtype = weighted(ch, list(dtypes or [("float32", 16), ("float64", 3), ("bfloat16", 1), ("float16", 1)]))
    if dtype in LOW_PRECISION:
        nd = 2
    channels = ch.choice([4, 2, 3, 6, 8])
    size = {1: lambda: [ch.integer(8, 20)], 2: lambda: [ch.integer(6, 12), ch.integer(6, 12)],
            3: lambda: [ch.integer(4, 6), ch.integer(4, 7), ch.integer(4, 7)]}[nd]()
    builder = _Builder(ch, nd, ch.choice([1, 2]), channels, size, dtype, inplace, frozenset(skip))
    for _ in range(ch.integer(1, max_steps if dtype not in LOW_PRECISION else min(max_steps, 3))):
        builder.step()
    last = len(builder.shapes) - 1
    if ch.chance(0.12) and builder.is_spatial(last):
        last = builder.head(last) or last
    outputs = [last]
    if ch.chance(0.12) and last > 1:
        outputs.append(ch.integer(1, last - 1))
    builder.program.outputs = outputs
    return builder.program


# ---------------------------------------------------------------------------------------------- shapes
def _flat_pad(widths: Sequence[Sequence[int]]) -> list[int]:
    """F.pad's flat order (last dim first) from per-dim (low, high) in dim order."""
    flat: list[int] = []
    for low, high in reversed(widths):
        flat += [low, high]
    return flat


def infer_shape(node: dict, in_shapes: list[tuple[int, ...]], nd: int, batch: int) -> tuple[int, ...]:
    """Output shape (channels, *spatial) of ``node``, computed by running it on meta tensors."""
    inputs = [torch.empty((batch, *shape), device="meta") for shape in in_shapes]
    op = node["op"]
    if op == "conv":
        x = inputs[0]
        cin = in_shapes[0][0]
        if cin % node["g"] or node["out"] % node["g"]:
            raise ValueError("groups")
        weight = torch.empty((node["out"], cin // node["g"], *node["k"]), device="meta")
        padding = node["p"]
        if node["pmode"] != "zeros":
            if any(p >= n for p, n in zip(padding, in_shapes[0][1:], strict=True)):
                raise ValueError("padding too large for the padding mode")
            x = F.pad(x, _flat_pad([[p, p] for p in padding]), mode=node["pmode"])
            padding = 0
        y = CONV[nd][1](x, weight, None, node["s"], padding, node["d"], node["g"])
    elif op == "avgpool":
        if node["p"] > node["k"] // 2:
            raise ValueError("pad")
        y = AVGPOOL[nd][1](inputs[0], node["k"], node["s"], node["p"], node["ceil"], node["cip"],
                           *([node["div"]] if nd > 1 else []))
    elif op == "act" and node["kind"] == "maxpool":
        y = MAXPOOL[nd](node["k"], node["s"], node["p"], ceil_mode=node["ceil"])(inputs[0])
    elif op == "pad":
        widths = node["w"]
        if node["mode"] != "constant" and any(max(w) >= n for w, n in zip(widths, in_shapes[0][1:], strict=True)):
            raise ValueError("padding too large for the padding mode")
        y = F.pad(inputs[0], _flat_pad(widths), mode=node["mode"],
                  **({"value": node["value"]} if node["mode"] == "constant" else {}))
    elif op == "add":
        if in_shapes[0] != in_shapes[1]:
            raise ValueError("add of different shapes")
        y = inputs[0]
    elif op == "head":
        return (node["classes"],)
    elif op == "reuse":
        return infer_shape({**node, "op": "conv"}, in_shapes, nd, batch)
    elif op == "cat":
        y = torch.cat(inputs, dim=node.get("dim", 1))
    elif op == "slice":
        y = inputs[0][:, :node["stop"]]
    elif op == "split_add":
        a, b = inputs[0].chunk(2, dim=1)
        y = a + b
    elif op == "linear_last":
        y = torch.empty((*inputs[0].shape[:-1], node["out"]), device="meta")
    elif op == "cl_linear":
        y = torch.empty((batch, node["out"], *in_shapes[0][1:]), device="meta")
    elif op == "convT":
        cin = in_shapes[0][0]
        if cin % node["g"] or node["out"] % node["g"]:
            raise ValueError("groups")
        weight = torch.empty((cin, node["out"] // node["g"], *[node["k"]] * nd), device="meta")
        y = TRANSPOSED[nd](inputs[0], weight, None, node["s"], node["p"], node["op_pad"], node["g"])
    else:  # shape-preserving ops
        y = inputs[0]
    return tuple(y.shape[1:])


# ---------------------------------------------------------------------------------------------- the model
class RandomDag(nn.Module):
    """Interprets a `Program`: one submodule / parameter set per node, ``forward`` runs the nodes in order."""

    def __init__(self, program: Program, seed: int = 0) -> None:
        super().__init__()
        self.program = program
        nd = program.nd
        generator = torch.Generator().manual_seed(seed)
        self.nodes = nn.ModuleDict()
        shapes = [(program.channels, *program.size)] + [tuple(n["shape"]) for n in program.nodes]

        def uniform(shape, low, high):
            return torch.rand(shape, generator=generator) * (high - low) + low

        def constant(name: str, tensor: torch.Tensor, buffer: bool) -> None:
            if buffer:
                self.register_buffer(name, tensor)
            else:
                self.register_parameter(name, nn.Parameter(tensor))

        for index, node in enumerate(program.nodes):
            key = f"n{index}"
            op = node["op"]
            cin = shapes[node["in"][0]][0]
            if op == "conv":
                if node["form"] == "module":
                    self.nodes[key] = CONV[nd][0](cin, node["out"], node["k"], node["s"], node["p"], node["d"],
                                                  node["g"], node["bias"], node["pmode"])
                else:  # functional: F.convNd on registered parameters; computed: weight-norm of them
                    fan_in = cin // node["g"] * math.prod(node["k"])
                    bound = math.sqrt(3.0 / fan_in)
                    constant(f"{key}_weight", uniform((node["out"], cin // node["g"], *node["k"]), -bound, bound),
                             False)
                    if node["bias"]:
                        constant(f"{key}_bias", uniform((node["out"],), -0.2, 0.2), False)
                    if node["form"] == "computed":
                        constant(f"{key}_gain", uniform((node["out"],) + (1,) * (nd + 1), 0.5, 1.5), False)
            elif op == "bn":
                if node["form"] in ("module", "batch_stats"):
                    self.nodes[key] = BATCHNORM[nd](cin, eps=node["eps"], affine=node["affine"],
                                                    track_running_stats=node["form"] == "module")
                else:
                    constant(f"{key}_mean", torch.randn(cin, generator=generator) * 0.3, True)
                    constant(f"{key}_var", uniform((cin,), 0.5, 2.0), True)
                    if node["affine"]:
                        constant(f"{key}_weight", uniform((cin,), 0.5, 1.5), False)
                        constant(f"{key}_bias", torch.randn(cin, generator=generator) * 0.3, False)
            elif op == "pointwise":
                kind = node["kind"]
                if kind in ("mul_c", "mul_c_left", "div_c"):
                    constant(f"{key}_c", uniform((cin,) + (1,) * nd, 0.5, 1.5), node["buffer"])
                elif kind == "add_c":
                    constant(f"{key}_c", torch.randn((cin,) + (1,) * nd, generator=generator) * 0.3,
                             node["buffer"])
                elif kind in ("mul_spatial", "add_spatial"):
                    constant(f"{key}_c", uniform((1, 1, *shapes[node["in"][0]][1:]), 0.5, 1.5), node["buffer"])
                elif kind == "mul_0d":
                    constant(f"{key}_c", uniform((), 0.5, 1.5), node["buffer"])
                elif kind in ("mul_c4", "inplace_add_c"):
                    constant(f"{key}_c", uniform((1, cin) + (1,) * nd, 0.5, 1.5), node["buffer"])
                elif kind in ("mul_last", "add_last"):
                    constant(f"{key}_c", uniform((shapes[node["in"][0]][-1],), 0.5, 1.5), node["buffer"])
            elif op == "avgpool" and node["form"] == "module":
                extra = {"divisor_override": node["div"]} if nd > 1 else {}
                self.nodes[key] = AVGPOOL[nd][0](node["k"], node["s"], node["p"], node["ceil"], node["cip"],
                                                 **extra)
            elif op == "act":
                kind = node["kind"]
                if kind == "relu":
                    self.nodes[key] = nn.ReLU()
                elif kind == "relu_inplace":
                    self.nodes[key] = nn.ReLU(inplace=True)
                elif kind == "maxpool":
                    self.nodes[key] = MAXPOOL[nd](node["k"], node["s"], node["p"], ceil_mode=node["ceil"])
            elif op == "pad" and node["form"] == "module":
                flat = tuple(_flat_pad(node["w"]))
                if node["mode"] == "constant":
                    self.nodes[key] = PAD_MODULES["constant"][nd](flat, node["value"])
                else:
                    self.nodes[key] = PAD_MODULES[node["mode"]][nd](flat)
            elif op == "identity" and node["kind"] in ("dropout", "identity"):
                self.nodes[key] = nn.Dropout(0.5) if node["kind"] == "dropout" else nn.Identity()
            elif op == "se":
                self.nodes[key] = CONV[nd][0](cin, cin, 1)
            elif op == "linear_last":
                self.nodes[key] = nn.Linear(shapes[node["in"][0]][-1], node["out"])
            elif op == "cl_linear":
                self.nodes[key] = nn.Linear(cin, node["out"])
            elif op == "convT":
                self.nodes[key] = TRANSPOSED_MODULES[nd](cin, node["out"], node["k"], node["s"], node["p"],
                                                         node["op_pad"], node["g"], node["bias"])
            elif op == "head":
                layers = [nn.Linear(cin, node["hidden"])]
                if node["bn"]:
                    layers.append(nn.BatchNorm1d(node["hidden"]))
                if node["act"]:
                    layers.append(nn.ReLU())
                layers.append(nn.Linear(node["hidden"], node["classes"]))
                self.nodes[key] = nn.Sequential(*layers)

    def forward(self, x):
        values = [x]
        nd = self.program.nd
        for index, node in enumerate(self.program.nodes):
            values.append(self._run(index, node, [values[i] for i in node["in"]], nd))
        outputs = tuple(values[i] for i in self.program.outputs)
        return outputs[0] if len(outputs) == 1 else outputs

    def _run(self, index: int, node: dict, inputs: list, nd: int):
        key = f"n{index}"
        op = node["op"]
        x = inputs[0]
        if op == "conv":
            if node["form"] == "module":
                return self.nodes[key](x)
            weight = getattr(self, f"{key}_weight")
            if node["form"] == "computed":  # a parameter-only subgraph fxrep evaluates once
                norm = weight.flatten(1).norm(dim=1).reshape(-1, *[1] * (nd + 1))
                weight = getattr(self, f"{key}_gain") * weight / norm
            bias = getattr(self, f"{key}_bias") if node["bias"] else None
            padding = node["p"]
            if node["pmode"] != "zeros":
                x = F.pad(x, _flat_pad([[p, p] for p in padding]), mode=node["pmode"])
                padding = 0
            return CONV[nd][1](x, weight, bias, node["s"], padding, node["d"], node["g"])
        if op == "bn":
            if node["form"] in ("module", "batch_stats"):
                return self.nodes[key](x)
            weight = getattr(self, f"{key}_weight") if node["affine"] else None
            bias = getattr(self, f"{key}_bias") if node["affine"] else None
            return F.batch_norm(x, getattr(self, f"{key}_mean"), getattr(self, f"{key}_var"), weight, bias,
                                False, 0.1, node["eps"])
        if op == "pointwise":
            kind, value = node["kind"], node["value"]
            c = getattr(self, f"{key}_c", None)
            if kind in ("mul_c", "mul_spatial", "mul_0d", "mul_c4", "mul_last"):
                return x * c
            if kind == "add_last":
                return x + c
            if kind == "inplace_mul_s":
                return x.mul_(value)
            if kind == "inplace_add_c":
                return x.add_(c)
            if kind == "mul_c_left":
                return torch.mul(c, x)
            if kind in ("add_c", "add_spatial"):
                return x + c
            if kind == "div_c":
                return x / c
            if kind == "mul_s":
                return x * value
            if kind == "add_s":
                return x + value
            if kind == "sub_s":
                return x - value
            if kind == "rsub_s":
                return value - x
            if kind == "div_s":
                return x / value
            if kind == "neg":
                return -x
            raise ValueError(kind)
        if op == "add":
            kind = node["kind"]
            if kind == "torch.add":
                return torch.add(x, inputs[1])
            if kind == "-":
                return x - inputs[1]
            if kind == "alpha":
                return torch.add(x, inputs[1], alpha=node["alpha"])
            return x + inputs[1]
        if op == "cat":
            return torch.cat(inputs, dim=node.get("dim", 1))
        if op == "reuse":
            return self.nodes[f"n{node['of']}"](x)
        if op == "se":
            pooled = x.mean(dim=tuple(range(2, 2 + nd)), keepdim=True)
            gate = self.nodes[key](pooled)
            return x * (torch.sigmoid(gate) if node["gate"] == "sigmoid" else gate)
        if op == "bcast_add":
            return x + x.mean(dim=tuple(range(2, 2 + nd)), keepdim=True)
        if op == "split_add":
            a, b = x.chunk(2, dim=1)
            return a + b
        if op == "chunk_cat":
            a, b = x.chunk(2, dim=1)
            return torch.cat([b, a], dim=1)
        if op == "slice":
            return x[:, :node["stop"]]
        if op == "linear_last":
            return self.nodes[key](x)
        if op == "cl_linear":
            return self.nodes[key](x.movedim(1, -1)).movedim(-1, 1)
        if op == "convT":
            return self.nodes[key](x)
        if op == "avgpool":
            if node["form"] == "module":
                return self.nodes[key](x)
            extra = (node["div"],) if nd > 1 else ()
            return AVGPOOL[nd][1](x, node["k"], node["s"], node["p"], node["ceil"], node["cip"], *extra)
        if op == "pad":
            if node["form"] == "module":
                return self.nodes[key](x)
            if node["mode"] == "constant":
                return F.pad(x, _flat_pad(node["w"]), mode="constant", value=node["value"])
            return F.pad(x, _flat_pad(node["w"]), mode=node["mode"])
        if op == "act":
            kind = node["kind"]
            if kind in ("relu", "relu_inplace", "maxpool"):
                return self.nodes[key](x)
            if kind == "relu_fn":
                return F.relu(x)
            if kind == "relu_method":
                return x.relu()
            if kind == "gelu":
                return F.gelu(x)
            if kind == "silu":
                return F.silu(x)
            raise ValueError(kind)
        if op == "identity":
            kind = node["kind"]
            if kind in ("dropout", "identity"):
                return self.nodes[key](x)
            return x.clone() if kind == "clone" else x.contiguous()
        if op == "head":
            if node["mean"] == "mean":
                pooled = x.mean(dim=tuple(range(2, 2 + nd)))
            else:
                pooled = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1) if nd == 2 else x.mean(
                    dim=tuple(range(2, 2 + nd)))
            return self.nodes[key](pooled)
        raise ValueError(op)


def build(program: Program, seed: int) -> tuple[nn.Module, torch.Tensor]:
    """The randomized eval-mode model of ``program`` (weights and BN statistics from ``seed``) and an input."""
    model = RandomDag(program, seed)
    randomize_(model, seed)
    model = model.to(DTYPES[program.dtype]).eval()
    generator = torch.Generator().manual_seed(seed + 1)
    x = torch.randn((program.batch, program.channels, *program.size), generator=generator)
    return model, x.to(DTYPES[program.dtype])


# ---------------------------------------------------------------------------------------------- checking
@dataclass
class Outcome:
    """What one optimize() call did. ``status``: exact | documented | equivalence | mismatch | undocumented |
    property. ``bug`` is True for every status that is a defect of fxrep (see `is_bug`)."""

    status: str
    error: str = ""  # exception class, or the property that failed
    reason: str = ""  # short reason, normalised for counting
    detail: str = ""  # full message / traceback
    capture: str = ""
    seconds: float = 0.0
    fired: dict = field(default_factory=dict)  # rule -> times, over all passes (exact outcomes)
    rounding_only: bool = False  # half-precision EquivalenceError that float64 shows is rounding

    @property
    def is_bug(self) -> bool:
        if self.status in ("mismatch", "undocumented", "property"):
            return True
        if self.status == "equivalence":
            return not self.rounding_only
        return self.status == "documented" and self.error == "PassError"


def normalize_reason(message: str) -> str:
    """A message's first line with node names and numbers blanked, so equal causes count together."""
    line = next((ln.strip() for ln in message.strip().splitlines() if ln.strip()), "")
    if line.startswith("fxrep could not capture"):
        line = next((ln.strip() for ln in message.splitlines()[1:] if ln.strip()), line)
    line = re.sub(r"\b[a-z_]+(_\d+)+\b", "<node>", line)
    line = re.sub(r"\d+(\.\d+)?(e-?\d+)?", "N", line)
    return line[:160]


def relative_error(expected: torch.Tensor, actual: torch.Tensor) -> float:
    expected, actual = expected.double(), actual.double()
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    diff = float((actual - expected).abs().max()) if expected.numel() else 0.0
    if math.isnan(diff):
        return float("inf")
    return diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))


def _leaves(out) -> list[torch.Tensor]:
    return list(out) if isinstance(out, tuple | list) else [out]


def output_error(model: nn.Module, gm: nn.Module, inputs: Sequence[torch.Tensor]) -> float:
    worst = 0.0
    with torch.no_grad():
        for x in inputs:
            expected, actual = _leaves(model(x)), _leaves(gm(x))
            if len(expected) != len(actual):
                return float("inf")
            for e, a in zip(expected, actual, strict=True):
                if e.shape != a.shape or e.dtype != a.dtype:
                    return float("inf")
                worst = max(worst, relative_error(e, a))
    return worst


def fresh_inputs(program: Program, seed: int, count: int = 2) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed + 12345)
    shape = (program.batch, program.channels, *program.size)
    return [torch.randn(shape, generator=generator).to(DTYPES[program.dtype]) for _ in range(count)]


def check_program(program: Program, seed: int, capture_method: str = "symbolic_trace", *,
                  idempotence: bool = True) -> Outcome:
    """Optimize the model of ``program`` and check the fuzzing properties; never raises."""
    import time

    start = time.perf_counter()
    outcome = _check(program, seed, capture_method, idempotence)
    outcome.seconds = time.perf_counter() - start
    return outcome


def _check(program: Program, seed: int, capture_method: str, idempotence: bool) -> Outcome:
    model, x = build(program, seed)
    half = program.dtype in LOW_PRECISION
    tolerance = TOLERANCE[program.dtype]
    checks = [x, *fresh_inputs(program, seed)]
    try:
        gm = fxrep.optimize(model, x, capture_method=capture_method)
    except EquivalenceError as error:
        outcome = Outcome("equivalence", "EquivalenceError", f"pass {error.pass_name}", str(error))
        if half:
            outcome.rounding_only = _half_rewrite_is_exact(model, x, capture_method, checks)
        return outcome
    except (CaptureError, InvalidModelError, PassError) as error:
        detail = str(error) + ("\n" + "".join(traceback.format_exception(error.__cause__))
                               if error.__cause__ is not None else "")
        reason = normalize_reason(str(error))
        if isinstance(error, PassError):
            cause = error.__cause__
            reason = f"{error.pass_name}: {type(cause).__name__}: {normalize_reason(str(cause))}"
        return Outcome("documented", type(error).__name__, reason, detail)
    except FxrepError as error:
        return Outcome("documented", type(error).__name__, normalize_reason(str(error)), str(error))
    except Exception as error:  # anything else is a defect: optimize() must only raise FxrepError
        return Outcome("undocumented", type(error).__name__, normalize_reason(str(error)),
                       traceback.format_exc())
    report = gm.fxrep_report
    capture = report.capture
    fired = Counter()
    for summary in report.passes:
        fired.update({rule: n for rule, n in summary.fired.items() if rule != "regions"})
    outcome = _check_optimized(program, model, gm, x, checks, half, tolerance, idempotence)
    outcome.capture, outcome.fired = capture, dict(fired)
    return outcome


def _check_optimized(program, model, gm, x, checks, half, tolerance, idempotence) -> Outcome:
    report = gm.fxrep_report
    capture = report.capture
    try:
        error = output_error(model, gm, checks)
    except Exception as exc:
        return Outcome("mismatch", "optimized module fails to run", normalize_reason(str(exc)),
                       traceback.format_exc(), capture)
    if error > tolerance:
        if not (half and _half_gm_is_exact(model, gm, checks)):
            return Outcome("mismatch", "outputs differ", f"max rel error {error:.3g} > {tolerance:g}",
                           str(report), capture)
    if not report.verification.passed:
        return Outcome("property", "verification not passed", "", str(report), capture)
    for decision in report.decisions:
        if decision.applied and decision.after > decision.before * (1 + RELATIVE_SLACK):
            return Outcome("property", "applied decision costs more",
                           f"{decision.note}", f"{decision}\n{report}", capture)
    grown = conv_growth(program, report.ops_before, report.ops_after)
    if grown > 0:
        return Outcome("property", "conv count grew", f"+{grown} convs", str(report), capture)
    if idempotence:
        try:
            problem = idempotence_problem(gm, x)
        except Exception as exc:
            problem = f"optimizing the optimized module raised {type(exc).__name__}: {exc}"
        if problem is not None:
            return Outcome("property", "not idempotent", normalize_reason(problem), problem, capture)
    return Outcome("exact", capture=capture)


def conv_growth(program: Program, before: Counter, after: Counter) -> int:
    """Convs added by the rewrite, where no conv may be added (0 when a conv may legitimately appear).

    A channel concatenation, an average pool or a pad may each become a conv (``cat(x, bn(x))`` is one
    1x1 conv; an average pool is a depthwise conv), and a conv reading channel slices of one tensor
    (``torch.cat(x.chunk(2, 1)[::-1])``, ``a + b`` of the halves) becomes one conv per slice, which the
    cost model may prefer to the copy of the concatenation; programs with those ops are not checked.
    Any other linear op folds into an existing conv or becomes a multiply / add, never a new conv.
    """
    if set(program.kinds()) & {"cat", "avgpool", "pad", "chunk_cat", "split_add", "slice"}:
        return 0
    return after["conv"] - before["conv"]


def idempotence_problem(gm, x: torch.Tensor) -> str | None:
    """Optimizing the optimized module again must fire nothing and change no op counts."""
    report = gm.fxrep_report
    if not report.converged:
        return None  # the step cap stopped the first run: a second run may legitimately go on
    again = fxrep.optimize(gm, x)
    fired = {p.name: dict(p.fired) for p in again.fxrep_report.passes if sum(p.fired.values())}
    if fired:
        return f"a second optimize() fired {fired}"
    if count_ops(again) != count_ops(gm):
        return f"a second optimize() changed op counts {dict(count_ops(gm))} -> {dict(count_ops(again))}"
    return None


def _half_gm_is_exact(model: nn.Module, gm: nn.Module, checks: list[torch.Tensor]) -> bool:
    """Both in float64: a correct rewrite differs only by the one rounding of the folded weights."""
    import copy

    model64, gm64 = copy.deepcopy(model).double(), copy.deepcopy(gm).double()
    try:
        return output_error(model64, gm64, [c.double() for c in checks]) <= HALF_IN_DOUBLE_TOLERANCE
    except Exception:
        return False


def _half_rewrite_is_exact(model: nn.Module, x: torch.Tensor, capture_method: str,
                           checks: list[torch.Tensor]) -> bool:
    try:
        gm = fxrep.optimize(model, x, capture_method=capture_method, verify=False)
    except Exception:
        return False
    return _half_gm_is_exact(model, gm, checks)


def program_for_seed(seed: int, **kw) -> Program:
    """The sweep's program for ``seed`` (plain seeded sampling)."""
    import random

    return sample_program(RandomChooser(random.Random(seed)), **kw)

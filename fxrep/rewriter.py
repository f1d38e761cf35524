"""`Rewriter`: the one door through which passes change a graph.

It emits ops in the graph's own form (``nn.Conv2d`` modules in a symbolically traced graph, ATen
ops such as ``aten.conv2d`` in an exported one), casts float64 algebra results back to the model's
dtype, registers new weights under readable names next to the code they replace
(``stage1.0.reparam.weight``), copies node metadata (module stack, stack trace, shapes), counts
every rewrite by rule, and on `finish` removes dead code and unused parameters, lints and
recompiles the module and refreshes the recorded shapes.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx import GraphModule, Node

from .algebra import ConvMap
from .graph_facts import facts
from .pass_base import Rewrite, module_path_of, recorded_module_path
from .shapes import propagate_shapes

aten = torch.ops.aten

RENAMES_KEY = "fxrep_renames"
"""``gm.meta[RENAMES_KEY]`` maps the name of every replaced node to the node that took over its value."""

_META_KEYS = ("nn_module_stack", "stack_trace", "source_fn_stack", "from_node", "seq_nr")
_CONV_MODULES = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_ATEN_CONV = {1: aten.conv1d.default, 2: aten.conv2d.default, 3: aten.conv3d.default}


class Rewriter:
    """Emit, replace and clean up on one GraphModule; see the module docstring."""

    def __init__(self, gm: GraphModule) -> None:
        self.gm = gm
        self.graph = gm.graph
        self.level = facts(gm).level
        self.counts: Counter[str] = Counter()
        self.rewrites: list[Rewrite] = []
        self.changed = False
        self.replaced: dict[Node, Node] = {}
        """Every node `replace` rerouted, to the node that took over its value."""

    @property
    def modified(self) -> bool:
        return self.changed or bool(self.counts)

    # ------------------------------------------------------------------ names and constants
    def module_path(self, nodes: Iterable[Node]) -> str:
        """The innermost module path shared by ``nodes`` (from their recorded module stacks)."""
        paths = [path.split(".") for path in map(recorded_module_path, nodes) if path is not None]
        if not paths:
            return ""
        common: list[str] = []
        for parts in zip(*paths, strict=False):
            if len(set(parts)) != 1:
                break
            common.append(parts[0])
        return ".".join(p for p in common if p)

    def fresh_name(self, path: str, name: str) -> str:
        """``path.name`` (or ``path.name_1``, ...) that no attribute of the module uses yet."""
        prefix = f"{path}." if path else ""
        candidate, index = f"{prefix}{name}", 0
        while _has_attribute(self.gm, candidate):
            index += 1
            candidate = f"{prefix}{name}_{index}"
        return candidate

    def constant(self, value: torch.Tensor, qualified_name: str, *, before: Node) -> Node:
        """Register ``value`` as a frozen parameter at ``qualified_name``; return its get_attr node."""
        owner_path, _, attr = qualified_name.rpartition(".")
        owner = _ensure_module(self.gm, owner_path)
        owner.register_parameter(attr, nn.Parameter(value.detach().clone(), requires_grad=False))
        with self.graph.inserting_before(before):
            node = self.graph.get_attr(qualified_name)
        node.meta["val"] = value
        return node

    def tensor_format(self, node: Node) -> tuple[torch.dtype, torch.device]:
        """The dtype and device of the value ``node`` computes: its recorded example value, else the
        parameters and buffers it reads (a called module's, or ``get_attr`` inputs)."""
        value = node.meta.get("val")
        if isinstance(value, torch.Tensor):
            return value.dtype, value.device
        for tensor in self._tensors_read(node):
            return tensor.dtype, tensor.device
        raise ValueError(f"no recorded value or parameters tell the dtype and device of {node.name}: "
                         "pass dtype= and device=")

    def _tensors_read(self, node: Node) -> Iterator[torch.Tensor]:
        if node.op == "call_module":
            module = self.gm.get_submodule(str(node.target))
            yield from module.parameters()
            yield from module.buffers()
        for argument in node.all_input_nodes:
            if argument.op == "get_attr":
                value = _attribute(self.gm, str(argument.target))
                if isinstance(value, torch.Tensor):
                    yield value

    # ------------------------------------------------------------------ emitting ops
    def conv(self, source: Node, conv: ConvMap, *, like: Node, path: str | None = None,
             dtype: torch.dtype | None = None, device: torch.device | None = None,
             padding_mode: str = "zeros") -> Node:
        """Emit ``conv`` applied to ``source`` (a Linear for 0-d maps) before ``like``.

        The new op's parameters are named after ``path`` (default: ``like``'s module) and cast to
        ``dtype`` on ``device`` (default: those of the value ``like`` computes, which the new op takes
        over; see `tensor_format`). ``padding_mode`` other than zeros exists only for module-level
        graphs (an exported graph has the padding as its own op).
        """
        path = module_path_of(like) if path is None else path
        if dtype is None or device is None:
            like_dtype, like_device = self.tensor_format(like)
            dtype = like_dtype if dtype is None else dtype
            device = like_device if device is None else device
        conv = conv.to(dtype)
        if conv.nd == 0:
            return self.linear(source, conv.weight, conv.bias, like=like, path=path, device=device)
        padding = conv.symmetric_padding
        if padding_mode != "zeros" and (padding is None or self.level != "module"):
            raise ValueError(f"padding mode {padding_mode!r} needs symmetric padding in a module-level graph")
        if padding is None:
            common = tuple(min(lo, hi) for lo, hi in conv.padding)
            extra = tuple((lo - c, hi - c) for (lo, hi), c in zip(conv.padding, common, strict=True))
            source = self.pad(source, extra, like=like)
            padding = common
        name = self.fresh_name(path, "reparam")
        weight = conv.weight.to(device)
        bias = None if conv.bias is None else conv.bias.to(device)
        if self.level == "module":
            module = _CONV_MODULES[conv.nd](
                conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=padding,
                dilation=conv.dilation, groups=conv.groups, bias=bias is not None, padding_mode=padding_mode,
                device=device, dtype=dtype,
            )
            _freeze(module, weight, bias)
            self.gm.add_submodule(name, module)
            return self._insert(like, "call_module", name, (source,))
        weight_node = self.constant(weight, f"{name}.weight", before=like)
        bias_node = None if bias is None else self.constant(bias, f"{name}.bias", before=like)
        args = (source, weight_node, bias_node, list(conv.stride), list(padding), list(conv.dilation), conv.groups)
        return self._insert(like, "call_function", _ATEN_CONV[conv.nd], args)

    def conv_transpose(self, source: Node, weight: torch.Tensor, bias: torch.Tensor | None, *, stride: Sequence[int],
                       padding: Sequence[int], output_padding: Sequence[int], groups: int, dilation: Sequence[int],
                       like: Node, path: str | None = None) -> Node:
        """Emit a transposed conv (weight ``(I, O / groups, *kernel)``, in its dtype and on its device) before ``like``.

        Its parameters are named after ``path`` (default: ``like``'s module).
        """
        nd = weight.dim() - 2
        path = module_path_of(like) if path is None else path
        name = self.fresh_name(path, "reparam")
        if self.level == "module":
            module_type = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[nd]
            module = module_type(weight.shape[0], weight.shape[1] * groups, tuple(weight.shape[2:]), stride=stride,
                                 padding=padding, output_padding=output_padding, groups=groups,
                                 bias=bias is not None, dilation=dilation, device=weight.device, dtype=weight.dtype)
            _freeze(module, weight, bias)
            self.gm.add_submodule(name, module)
            return self._insert(like, "call_module", name, (source,))
        target = {1: aten.conv_transpose1d.default, 2: aten.conv_transpose2d.input,
                  3: aten.conv_transpose3d.input}[nd]
        weight_node = self.constant(weight, f"{name}.weight", before=like)
        bias_node = None if bias is None else self.constant(bias, f"{name}.bias", before=like)
        args = (source, weight_node, bias_node, list(stride), list(padding), list(output_padding), groups,
                list(dilation))
        return self._insert(like, "call_function", target, args)

    def linear(self, source: Node, weight: torch.Tensor, bias: torch.Tensor | None, *, like: Node,
               path: str | None = None, device: torch.device | None = None) -> Node:
        """Emit ``source @ weight.T + bias`` before ``like``, in ``weight``'s dtype, on ``device`` (default: ``weight``'s).

        Its parameters are named after ``path`` (default: ``like``'s module).
        """
        path = module_path_of(like) if path is None else path
        device = weight.device if device is None else device
        name = self.fresh_name(path, "reparam")
        weight = weight.to(device)
        bias = None if bias is None else bias.to(device)
        if self.level == "module":
            module = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device=device,
                               dtype=weight.dtype)
            _freeze(module, weight, bias)
            self.gm.add_submodule(name, module)
            return self._insert(like, "call_module", name, (source,))
        weight_node = self.constant(weight, f"{name}.weight", before=like)
        bias_node = None if bias is None else self.constant(bias, f"{name}.bias", before=like)
        return self._insert(like, "call_function", aten.linear.default, (source, weight_node, bias_node))

    def pad(self, source: Node, pads: Sequence[tuple[int, int]], *, like: Node, value: float = 0.0) -> Node:
        """Zero (or ``value``) pad the trailing ``len(pads)`` dims by (low, high) pairs."""
        flat = [p for lo, hi in reversed(pads) for p in (lo, hi)]
        if self.level == "module":
            return self._insert(like, "call_function", F.pad, (source, flat), {"value": value})
        return self._insert(like, "call_function", aten.constant_pad_nd.default, (source, flat, value))

    def reshape(self, source: Node, shape: Sequence[int], *, like: Node) -> Node:
        """``source.reshape(shape)`` (one entry may be -1)."""
        if self.level == "module":
            return self._insert(like, "call_function", torch.reshape, (source, tuple(shape)))
        return self._insert(like, "call_function", aten.reshape.default, (source, list(shape)))

    def reshape_by_axes(self, source: Node, replay: tuple, *, like: Node) -> Node:
        """``flatten(start, end)``, ``unsqueeze(axis)`` or ``squeeze(axes)``: a reshape valid for any size."""
        kind, *args = replay
        module = self.level == "module"
        if kind == "flatten":
            target = torch.flatten if module else aten.flatten.using_ints
            return self._insert(like, "call_function", target, (source, *args))
        if kind == "unsqueeze":
            target = torch.unsqueeze if module else aten.unsqueeze.default
            return self._insert(like, "call_function", target, (source, *args))
        if kind == "squeeze":
            target = torch.squeeze if module else aten.squeeze.dims
            return self._insert(like, "call_function", target, (source, tuple(args[0]) if module else list(args[0])))
        raise ValueError(f"no axes-only reshape {kind!r}")

    def permute(self, source: Node, permutation: Sequence[int], *, like: Node) -> Node:
        """``source.permute(permutation)``: output axis i is input axis ``permutation[i]``."""
        if self.level == "module":
            return self._insert(like, "call_function", torch.permute, (source, tuple(permutation)))
        return self._insert(like, "call_function", aten.permute.default, (source, list(permutation)))

    def avg_pool(self, source: Node, kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int], *,
                 like: Node) -> Node:
        """An average pool with ``count_include_pad=True`` over the trailing ``len(kernel)`` axes."""
        nd = len(kernel)
        if self.level == "module":
            target = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[nd]
        else:
            target = {1: aten.avg_pool1d.default, 2: aten.avg_pool2d.default, 3: aten.avg_pool3d.default}[nd]
        return self._insert(like, "call_function", target, (source, list(kernel), list(stride), list(padding)))

    def mean(self, source: Node, axes: Sequence[int], keepdim: bool, *, like: Node) -> Node:
        """``source.mean(axes, keepdim)``."""
        if self.level == "module":
            return self._insert(like, "call_function", torch.mean, (source, tuple(axes)), {"keepdim": keepdim})
        return self._insert(like, "call_function", aten.mean.dim, (source, list(axes), keepdim))

    def add(self, lhs: Node, rhs: Node | torch.Tensor, *, like: Node, path: str = "") -> Node:
        return self._binary("add", lhs, rhs, like=like, path=path)

    def mul(self, lhs: Node, rhs: Node | torch.Tensor, *, like: Node, path: str = "") -> Node:
        return self._binary("mul", lhs, rhs, like=like, path=path)

    def addcmul(self, shift: torch.Tensor, source: Node, scale: torch.Tensor, *, like: Node, path: str = "") -> Node:
        """``shift + source * scale`` in one op (a per-channel affine map, like an inference BatchNorm)."""
        shift_node = self.constant(shift, self.fresh_name(path, "reparam_shift"), before=like)
        scale_node = self.constant(scale, self.fresh_name(path, "reparam_scale"), before=like)
        target = torch.addcmul if self.level == "module" else aten.addcmul.default
        return self._insert(like, "call_function", target, (shift_node, source, scale_node))

    def _binary(self, op: str, lhs: Node, rhs: Node | torch.Tensor, *, like: Node, path: str) -> Node:
        if isinstance(rhs, torch.Tensor):
            rhs = self.constant(rhs, self.fresh_name(path, "reparam_" + ("scale" if op == "mul" else "shift")),
                                before=like)
        if self.level == "module":
            target = operator.mul if op == "mul" else operator.add
        else:
            target = aten.mul.Tensor if op == "mul" else aten.add.Tensor
        return self._insert(like, "call_function", target, (lhs, rhs))

    def split(self, source: Node, sizes: Sequence[int], dim: int, *, like: Node) -> list[Node]:
        """Split ``source`` into chunks of ``sizes`` along ``dim``; returns one node per chunk."""
        if self.level == "module":
            parts = self._insert(like, "call_function", torch.split, (source, list(sizes)), {"dim": dim})
        else:
            parts = self._insert(like, "call_function", aten.split_with_sizes.default, (source, list(sizes), dim))
        return [self._insert(like, "call_function", operator.getitem, (parts, i)) for i in range(len(sizes))]

    def cat(self, inputs: Sequence[Node], dim: int, *, like: Node) -> Node:
        target = torch.cat if self.level == "module" else aten.cat.default
        return self._insert(like, "call_function", target, (list(inputs), dim))

    def call(self, op: str, target: Any, args: tuple, kwargs: dict | None = None, *, like: Node) -> Node:
        """Emit any node (``op`` is an fx opcode) before ``like``, with ``like``'s metadata."""
        return self._insert(like, op, target, args, kwargs)

    def _insert(self, like: Node, op: str, target: Any, args: tuple, kwargs: dict | None = None) -> Node:
        with self.graph.inserting_before(like):
            node = self.graph.create_node(op, target, args, kwargs or {})
        for key in _META_KEYS:
            if key in like.meta:
                node.meta[key] = like.meta[key]
        return node

    # ------------------------------------------------------------------ replacing and finishing
    def replace(self, old: Node, new: Node, rule: str | None = None) -> None:
        """Route every use of ``old`` to ``new`` (same value); count one firing of ``rule`` if given."""
        for key in ("val", "tensor_meta"):
            if key in old.meta and key not in new.meta:
                new.meta[key] = old.meta[key]
        old.replace_all_uses_with(new, propagate_meta=False)
        self.replaced[old] = new
        self.gm.meta.setdefault(RENAMES_KEY, {})[old.name] = new.name
        self.changed = True
        if rule is not None:
            self.counts[rule] += 1
            self.rewrites.append(Rewrite(old.name, rule, module_path_of(old)))

    def bypass(self, old: Node, new: Node, rule: str | None = None) -> None:
        """`replace` ``old`` by ``new`` and delete ``old`` now, even where dead-code elimination would keep it.

        For an op proved to be the identity at inference (dropout in eval is marked non-deterministic,
        so ``eliminate_dead_code`` would leave it in the graph).
        """
        self.replace(old, new, rule)
        if not old.users:
            self.graph.erase_node(old)

    def erase(self, node: Node, rule: str | None = None) -> None:
        """Delete ``node``, which no other node uses (an assertion proved to hold); count ``rule`` if given."""
        if node.users:
            raise ValueError(f"{node.name} still has users: {', '.join(u.name for u in node.users)}")
        self.graph.erase_node(node)
        self.changed = True
        if rule is not None:
            self.counts[rule] += 1

    def set_module(self, target: str, module: nn.Module, rule: str | None = None) -> None:
        """Make the ``call_module`` nodes of ``target`` call ``module`` (which computes the same); count ``rule``."""
        self.gm.add_submodule(target, module)
        self.changed = True
        if rule is not None:
            self.counts[rule] += 1

    def current(self, node: Node) -> Node:
        """The node holding ``node``'s value now (following every `replace` since this rewriter began)."""
        seen = set()
        while node in self.replaced and node not in seen:
            seen.add(node)
            node = self.replaced[node]
        return node

    def count(self, rule: str, times: int = 1) -> None:
        self.counts[rule] += times

    def finish(self) -> None:
        """Remove dead nodes and unused parameters, lint, recompile, refresh shapes."""
        if not self.modified:
            return
        self.graph.eliminate_dead_code()
        remove_unused_attributes(self.gm)
        self.graph.lint()
        self.gm.recompile()
        propagate_shapes(self.gm)


def final_name(gm: GraphModule, name: str) -> str | None:
    """The node now holding the value node ``name`` held (following replacements), or None if it is gone."""
    renames = gm.meta.get(RENAMES_KEY, {})
    alive = {node.name for node in gm.graph.nodes}
    seen = set()
    while name not in alive:
        if name in seen or name not in renames:
            return None
        seen.add(name)
        name = renames[name]
    return name


def remove_unused_attributes(gm: GraphModule) -> None:
    """Delete parameters, buffers and submodules the graph no longer reads.

    A module that lost some of its tensors or children and is not called by the graph becomes a
    plain ``nn.Module`` holding what is left, so no half-emptied ``nn.Conv2d`` (without ``weight``)
    or custom block (without its branches) remains for a user to stumble over.
    """
    used_attributes = {str(n.target) for n in gm.graph.nodes if n.op == "get_attr"}
    called = {str(n.target) for n in gm.graph.nodes if n.op == "call_module"}
    before = {path: _contents(module) for path, module in gm.named_modules()}

    def in_called_module(path: str) -> bool:
        return any(path.startswith(module + ".") for module in called)

    names = [name for name, _ in gm.named_parameters(remove_duplicate=False)]
    names += [name for name, _ in gm.named_buffers(remove_duplicate=False)]
    for name in names:
        if name in used_attributes or in_called_module(name):
            continue
        owner_path, _, attr = name.rpartition(".")
        owner = gm.get_submodule(owner_path) if owner_path else gm
        if attr in owner._parameters:
            del owner._parameters[attr]
        elif attr in owner._buffers:
            del owner._buffers[attr]
    gm.delete_all_unused_submodules()
    for path, module in list(gm.named_modules()):
        hollowed = path in before and _contents(module) < before[path]
        if path and hollowed and path not in called and type(module) not in _CONTAINERS:
            _replace_with_container(gm, path, module)


_CONTAINERS = (nn.Module, nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _contents(module: nn.Module) -> set[str]:
    return set(module._parameters) | set(module._buffers) | set(module._modules)


def _replace_with_container(gm: GraphModule, path: str, module: nn.Module) -> None:
    container = nn.Module()
    container._modules.update(module._modules)
    container._parameters.update(module._parameters)
    container._buffers.update(module._buffers)
    owner_path, _, attr = path.rpartition(".")
    setattr(gm.get_submodule(owner_path) if owner_path else gm, attr, container)


def _freeze(module: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    module.weight = nn.Parameter(weight.detach().clone(), requires_grad=False)
    if bias is not None:
        module.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)


def _attribute(gm: GraphModule, qualified_name: str) -> Any:
    owner_path, _, attr = qualified_name.rpartition(".")
    owner = gm.get_submodule(owner_path) if owner_path else gm
    return getattr(owner, attr)


def _has_attribute(gm: GraphModule, qualified_name: str) -> bool:
    owner_path, _, attr = qualified_name.rpartition(".")
    try:
        owner = gm.get_submodule(owner_path) if owner_path else gm
    except AttributeError:
        return False
    return hasattr(owner, attr)


def _ensure_module(gm: GraphModule, path: str) -> nn.Module:
    if not path:
        return gm
    try:
        return gm.get_submodule(path)
    except AttributeError:
        gm.add_submodule(path, nn.Module())
        return gm.get_submodule(path)

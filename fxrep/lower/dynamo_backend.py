"""``torch.compile(model, backend="fxrep")``: fxrep's passes on Dynamo's graph, then Inductor or TensorRT.

Since torch 2.5 Dynamo inlines built-in ``nn`` modules, so a module's parameters and buffers reach
a backend as graph inputs (placeholders), not as constants: as given, nothing could fold. The
backend therefore binds every placeholder that Dynamo read from an ``nn.Module`` (a parameter, a
buffer or a plain tensor attribute; Dynamo records where each input came from) to the real tensor
it passes in ``example_inputs``, as a ``get_attr`` constant of a copy of the graph. It then runs
`fxrep.optimize` on that graph (verifying it on the example inputs) and compiles the plain result
with the target, whose compiled function takes only the remaining inputs. This is what Inductor's
``freezing=True`` does with its own graphs.

Frozen weights: the compiled function assumes the tensors it folded do not change. Every call
checks that Dynamo passes the same tensor objects with the same version counters (with C-level
iteration over tuples: a training-form model hands over about a thousand of them, mobileone_s0
1,097, and a Python loop over them cost up to 0.5 ms per call); an in-place
update (``load_state_dict``, ``optimizer.step()``, ``weight.mul_(2)`` under ``no_grad``) or a
different module instance sharing the compiled code makes it fold and compile again, with a
warning, so results stay right but each such change costs a compilation. Gradients do not flow
into folded weights (they do flow into the inputs): this backend is for inference, like freezing.

Options (``torch.compile(..., options={...})`` or keyword arguments of `fxrep_backend`):

- ``target``: "inductor" (default), "tensorrt" (the torch_tensorrt Dynamo backend; needs a GPU
  and torch_tensorrt) or "eager" (run the plain fx graph as is; for debugging and tests).
- ``verify`` (True), ``tolerance`` (None), ``passes`` (None: the default pipeline): as in `fxrep.optimize`.
- ``inductor``: a dict of Inductor config patches (added to those of torch.compile's ``mode``),
  ``{"freezing": True}`` by default: the folded weights are constants anyway, and Inductor's
  freezing prepacks them for its convolution kernels (on the CPU, oneDNN's blocked layout). That
  is what makes the compiled training form as fast as Inductor on the hand-converted model:
  measured on mobileone_s0 (1 thread, batch 1), the graph fxrep hands over compiles to 0.94x
  Inductor(hand) without freezing, but Dynamo's per-call guards and argument passing for the 1,097
  training-form tensors add about 2 ms when the caches are cold (0.4 ms warm), which only the
  prepacked convs win back (1.36x -> 1.01x). Those guards can be dropped with torch.compile's own
  opt-in, ``options={"guard_filter_fn": torch.compiler.skip_guard_on_all_nn_modules_unsafe}``
  (torch.compile takes it before the backend sees the options; unsafe in general, as a changed
  module attribute is not noticed, but this backend assumes frozen weights anyway, and still
  refolds a replaced or updated one): 0.68x Inductor(hand) on the same model.
  ``tensorrt``: a dict of torch_tensorrt options.
- ``strict`` (False): raise when fxrep cannot optimize a graph instead of warning and compiling it
  unfolded.

`last_report` holds the `fxrep.Report` of the most recently compiled graph (None when it could
not be optimized), so callers and tests can see what was folded.
"""

from __future__ import annotations

import operator
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.fx import Graph, GraphModule, Node

from fxrep.lower.errors import LoweringError
from fxrep.ops.inplace import written_arguments

__all__ = ["fxrep_backend", "last_report"]

TARGETS = ("inductor", "tensorrt", "eager")

#: The `fxrep.Report` of the graph this backend compiled last (None if it could not be optimized).
last_report: Any = None

_OPTION_DEFAULTS: dict[str, Any] = {
    "target": "inductor",
    "verify": True,
    "tolerance": None,
    "passes": None,
    "inductor": None,
    "tensorrt": None,
    "strict": False,
    "mode": None,
}

def fxrep_backend(gm: GraphModule, example_inputs: Sequence[Any], **options: Any) -> Callable[..., Any]:
    """A Dynamo backend: bind module state as constants, run fxrep's passes, compile with the target.

    Registered as ``"fxrep"`` through the ``torch_dynamo_backends`` entry point. ``torch.compile``
    passes its ``options`` dict as ``options=`` and its ``mode`` as ``mode=``; both spellings work.
    Raises ValueError for unknown options, LoweringError when the target cannot be used here.
    """
    settings = _settings(options)
    compile_target = _target_compiler(settings)  # fails fast when torch_tensorrt is missing
    return _FoldedGraph(gm, list(example_inputs), settings, compile_target)


_VERSION = operator.attrgetter("_version")


@dataclass(frozen=True)
class _FoldedInputs:
    """The graph inputs folded as constants: positions, tensors, and version counters when folded.

    ``versioned`` are the positions whose tensors have a version counter (inference tensors have
    none, so an in-place change of one cannot be seen). `unchanged` iterates in C (``map`` over
    tuples), not in a Python loop (module docstring).
    """

    positions: tuple[int, ...] = ()
    tensors: tuple[torch.Tensor, ...] = ()
    versioned: tuple[int, ...] = ()
    versions: tuple[int, ...] = ()

    @classmethod
    def of(cls, inputs: Sequence[Any], positions: Sequence[int]) -> _FoldedInputs:
        versioned = tuple(i for i in positions if _version(inputs[i]) is not None)
        return cls(tuple(positions), tuple(inputs[i] for i in positions), versioned,
                   tuple(_version(inputs[i]) for i in versioned))

    def unchanged(self, args: Sequence[Any]) -> bool:
        """Whether ``args`` holds the same folded tensors, none of them changed in place since."""
        take = args.__getitem__
        return (not any(map(operator.is_not, map(take, self.positions), self.tensors))
                and tuple(map(_VERSION, map(take, self.versioned))) == self.versions)


class _FoldedGraph:
    """The compiled graph plus what it folded; refolds when a folded tensor was replaced or updated."""

    def __init__(self, gm: GraphModule, example_inputs: list[Any], settings: dict[str, Any],
                 compile_target: Callable[[GraphModule, list[Any]], Callable[..., Any]]) -> None:
        self._gm = gm
        self._settings = settings
        self._compile_target = compile_target
        self._folded = _FoldedInputs()
        self._kept: tuple[int, ...] = ()
        self._compiled: Callable[..., Any] = gm
        self._fold(example_inputs)

    def __call__(self, *args: Any) -> Any:
        if not self._folded.unchanged(args):
            warnings.warn(
                "fxrep backend: a weight it folded into constants was replaced or changed in place since "
                "compilation; folding and compiling again (weights are assumed frozen after torch.compile)",
                stacklevel=2,
            )
            self._fold(list(args))
        return self._compiled(*map(args.__getitem__, self._kept))

    def _fold(self, inputs: list[Any]) -> None:
        global last_report
        mutated = _mutated_positions(self._gm)
        bound = _bindable_inputs(self._gm, inputs, mutated)
        self._folded = _FoldedInputs.of(inputs, bound)
        self._kept = tuple(i for i in range(len(inputs)) if i not in bound)
        # fxrep runs the graph (shape propagation, verification): it must not update the caller's buffers
        kept_inputs = [inputs[i].clone() if i in mutated else inputs[i] for i in self._kept]
        graph = _bind_constants(self._gm, {i: inputs[i] for i in bound})
        _warn_if_training(self._folded.tensors)
        try:  # fxrep runs the graph: a dynamic size (a SymInt input) at its value now, without a guard
            optimized = _optimize(graph, [_concrete(value) for value in kept_inputs], self._settings)
        except Exception as error:
            from fxrep.errors import FxrepError

            if not isinstance(error, FxrepError) or self._settings["strict"]:
                raise
            warnings.warn(f"fxrep backend: compiling this graph without folding: {error}", stacklevel=3)
            last_report = None
            optimized = graph
        else:
            last_report = optimized.fxrep_report
        for tensor in [*optimized.parameters(), *optimized.buffers()]:
            tensor.requires_grad_(False)
        self._compiled = self._compile_target(optimized, kept_inputs)


def _settings(options: dict[str, Any]) -> dict[str, Any]:
    merged = dict(options)
    nested = merged.pop("options", None) or {}
    if not isinstance(nested, dict):
        raise ValueError(f"options must be a dict, got {type(nested).__name__}")
    merged.update(nested)
    unknown = sorted(set(merged) - set(_OPTION_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown fxrep backend option(s) {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(_OPTION_DEFAULTS))}")
    settings = {**_OPTION_DEFAULTS, **merged}
    if settings["target"] not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {settings['target']!r}")
    return settings


def _target_compiler(settings: dict[str, Any]) -> Callable[[GraphModule, list[Any]], Callable[..., Any]]:
    target = settings["target"]
    if target == "eager":
        return lambda gm, inputs: gm
    if target == "tensorrt":
        backend = _torch_tensorrt_backend()
        trt_options = dict(settings["tensorrt"] or {})
        return lambda gm, inputs: backend(gm, inputs, options=trt_options)

    from torch._inductor.compile_fx import compile_fx

    patches = inductor_patches(settings)
    return lambda gm, inputs: compile_fx(gm, inputs, config_patches=patches)


def inductor_patches(settings: dict[str, Any]) -> dict[str, Any]:
    """Inductor's config patches: freezing (module docstring), then ``mode``'s, then the ``inductor`` option's."""
    patches: dict[str, Any] = {"freezing": True}
    patches.update(torch._inductor.list_mode_options(settings["mode"]) if settings["mode"] else {})
    patches.update(settings["inductor"] or {})
    return patches


def _torch_tensorrt_backend() -> Callable[..., Any]:
    try:
        import torch_tensorrt  # noqa: F401  (importing it registers its Dynamo backends)
    except (ImportError, OSError) as exc:
        raise LoweringError(
            "torch.compile(backend='fxrep', options={'target': 'tensorrt'}) hands the plain graph to "
            f"torch_tensorrt, which does not import here ({type(exc).__name__}: {exc}). Install the build that "
            "matches your torch (pip install torch-tensorrt) on a machine with an NVIDIA GPU, or use the default "
            "target (Inductor); without a GPU, build an engine ahead of time with "
            "fxrep.lower.build_engine(..., runtime='tensorrt_rtx')."
        ) from exc
    from torch._dynamo.backends.registry import lookup_backend

    return lookup_backend("torch_tensorrt")


def _bindable_inputs(gm: GraphModule, inputs: Sequence[Any], mutated: set[int]) -> list[int]:
    """Positions of the graph inputs that Dynamo read from an nn.Module and that the graph does not mutate."""
    placeholders = list(gm.graph.find_nodes(op="placeholder"))
    return [index for index, (node, value) in enumerate(zip(placeholders, inputs, strict=False))
            if index not in mutated and _is_module_state(node, value)]


def _mutated_positions(gm: GraphModule) -> set[int]:
    """Positions of the graph inputs that some op of the graph writes to in place."""
    mutated = _mutated_nodes(gm.graph)
    return {index for index, node in enumerate(gm.graph.find_nodes(op="placeholder")) if node in mutated}


def _is_module_state(node: Node, value: Any) -> bool:
    """Whether a graph input is a parameter, buffer or tensor attribute of an nn.Module (per Dynamo's source)."""
    if not isinstance(value, torch.Tensor) or _is_fake(value):
        return False
    if isinstance(value, nn.Parameter):
        return True
    source = getattr(node, "_dynamo_source", None)
    if source is None:
        source = getattr(node.meta.get("grapharg"), "source", None)
    guard_source = getattr(source, "guard_source", None)
    if callable(guard_source):  # a method in older torch versions, a property in newer ones
        guard_source = guard_source()
    try:
        return bool(guard_source.is_unspecialized_nn_module() or guard_source.is_specialized_nn_module())
    except AttributeError:
        return False


def _mutated_nodes(graph: Graph) -> set[Node]:
    """Nodes that some op of the graph writes to in place (these must stay inputs; `fxrep.ops.inplace`)."""
    mutated: set[Node] = set()
    for node in graph.nodes:
        if node.op in ("call_function", "call_method"):
            mutated.update(written_arguments(node))
    return mutated


def _bind_constants(gm: GraphModule, constants: dict[int, torch.Tensor]) -> GraphModule:
    """A copy of ``gm`` whose placeholders at the given positions read the given tensors as get_attr."""
    graph = Graph()
    copies: dict[Node, Node] = {}
    graph.output(graph.graph_copy(gm.graph, copies))
    bound = GraphModule(gm, graph)
    placeholders = [copies[node] for node in gm.graph.find_nodes(op="placeholder")]
    for index, tensor in constants.items():
        node = placeholders[index]
        name = _attribute_name(bound, node.name)
        bound.register_buffer(name, tensor.detach())
        with graph.inserting_before(node):
            constant = graph.get_attr(name)
        constant.meta.update(node.meta)
        node.replace_all_uses_with(constant)
        graph.erase_node(node)
    bound.recompile()
    return bound


def _attribute_name(gm: GraphModule, base: str) -> str:
    name = base.strip("_") or "constant"
    candidate, suffix = name, 0
    while hasattr(gm, candidate):
        suffix += 1
        candidate = f"{name}_{suffix}"
    return candidate


def _optimize(graph: GraphModule, inputs: list[Any], settings: dict[str, Any]) -> GraphModule:
    from fxrep.optimization import optimize

    # Inductor traces the graph again: it needs neither the lean forward nor a batch fxrep could vary
    return optimize(graph, tuple(inputs), passes=settings["passes"], verify=settings["verify"],
                    tolerance=settings["tolerance"], random_inputs=0, dynamic_batch=False, lean=False)


def _warn_if_training(folded: Sequence[torch.Tensor]) -> None:
    if torch.is_grad_enabled() and any(tensor.requires_grad for tensor in folded):
        warnings.warn(
            "fxrep backend folds parameters into constants: gradients will not reach them. Run the compiled "
            "model under torch.no_grad() or torch.inference_mode() to silence this; train with "
            "backend='inductor'.",
            stacklevel=4,
        )


def _concrete(value: Any) -> Any:
    """A symbolic size that Dynamo passes for a dynamic dimension, as the int it stands for now.

    The compiled target still gets the symbolic value, so it stays dynamic; only fxrep's own runs of
    the graph (shape propagation, verification) need a number.
    """
    if isinstance(value, torch.SymInt):
        from torch.fx.experimental.symbolic_shapes import optimization_hint  # public; adds no guard

        return optimization_hint(value)
    return value


def _version(tensor: Any) -> int | None:
    try:
        return tensor._version
    except (AttributeError, RuntimeError):  # inference tensors have no version counter
        return None


def _is_fake(tensor: torch.Tensor) -> bool:
    from torch._subclasses.fake_tensor import FakeTensor

    return isinstance(tensor, FakeTensor)

"""`LeanCodeGen`: how a finished graph is written as Python, without changing the graph itself.

The graph of an optimized module stays the functional ATen graph the passes produced and
verification checked: every fxrep tool (op views, reports, pictures, a second ``optimize``),
``torch.export`` and the ONNX exporter read it as before. Only its generated ``forward`` differs
from torch.fx's default: each time the module is (re)compiled, this code generator copies the graph
into a scratch graph in which

- every ATen call is spelled through its fast entry point (`fxrep.lean.entry_points`);
- element-wise ops whose input dies at them are written in place (`fxrep.lean.reinplace`);
- the output is returned in its final structure (a tensor, tuple, list or dict) instead of through
  ``pytree.tree_unflatten``, and inputs that are plain positional tensors are taken as they are
  instead of through ``fx_pytree.tree_flatten_spec`` (nested input or output structures keep the
  pytree code of the capture);
- the function starts with the `InputCheck`,

and has torch.fx write the scratch graph's code. The one place torch.fx lets a graph choose how a
node's call is spelled is ``CodeGen._gen_python_code`` (its public hooks, ``gen_fn_def`` and
``generate_output``, cover the signature and the return statement only), so that is the method
overridden here; everything else is torch.fx's own code writer.
"""

from __future__ import annotations

import copy
from typing import Any

from torch.fx import Graph, Node
from torch.fx.graph import CodeGen, PythonCode
from torch.fx.node import map_arg
from torch.utils._pytree import TreeSpec, tree_structure, tree_unflatten

from .entry_points import entry_point
from .input_check import ERROR_FUNCTION, InputCheck
from .reinplace import in_place_plan


class LeanCodeGen(CodeGen):
    """Writes the lean forward of a graph (module docstring).

    ``capture_codegen`` is the code generator the graph had (torch.export's pytree one, or the plain
    one): it still decides how inputs are flattened and outputs rebuilt for tools that run the graph
    node by node (``torch.fx.Interpreter``), and writes the signature and return statement when the
    input or output structure is not plain.
    """

    def __init__(self, capture_codegen: CodeGen, input_check: InputCheck | None) -> None:
        super().__init__()
        self.capture_codegen = capture_codegen
        self.input_check = input_check

    # ---------------------------------------------------------------- running the graph node by node
    def process_inputs(self, *args: Any) -> Any:
        return self.capture_codegen.process_inputs(*args)

    def process_outputs(self, outputs: Any) -> Any:
        return self.capture_codegen.process_outputs(outputs)

    def additional_globals(self) -> list[tuple[str, Any]]:
        extra = [(ERROR_FUNCTION, self.input_check.error)] if self.input_check is not None else []
        return [*self.capture_codegen.additional_globals(), *extra]

    # ---------------------------------------------------------------- writing the code
    def _gen_python_code(self, nodes: Any, root_module: str, namespace: Any, **options: Any) -> PythonCode:
        graph = next(iter(nodes)).graph
        scratch, plain_outputs = lean_graph(graph, self._out_spec())
        plain_inputs = self._plain_inputs(graph)
        scratch.set_codegen(_SignatureWriter(self.capture_codegen, self.input_check, plain_inputs, plain_outputs))
        return scratch.python_code(root_module, **options)

    def _out_spec(self) -> TreeSpec | None:
        info = getattr(self.capture_codegen, "pytree_info", None)
        return getattr(info, "out_spec", None)

    def _plain_inputs(self, graph: Graph) -> bool:
        """Whether the inputs are positional tensors without nesting (no pytree flattening needed)."""
        info = getattr(self.capture_codegen, "pytree_info", None)
        if info is None or info.in_spec is None:
            return True
        count = len(graph.find_nodes(op="placeholder"))
        leaves = tuple(range(count))
        return info.in_spec in (tree_structure((leaves, {})), tree_structure(leaves)) and \
            len(info.orig_args) == count


class _SignatureWriter(CodeGen):
    """The scratch graph's signature, input check and return statement (see `LeanCodeGen`)."""

    def __init__(self, capture_codegen: CodeGen, input_check: InputCheck | None, plain_inputs: bool,
                 plain_outputs: bool) -> None:
        super().__init__()
        self.capture_codegen = capture_codegen
        self.input_check = input_check
        self.plain_inputs = plain_inputs
        self.plain_outputs = plain_outputs

    def gen_fn_def(self, free_vars: list[str], maybe_return_annotation: str, **options: Any) -> str:
        names = [var.split(":")[0].split("=")[0].strip() for var in free_vars]
        if self.plain_inputs:
            definition = super().gen_fn_def(free_vars, maybe_return_annotation, **options)
        else:
            definition = self.capture_codegen.gen_fn_def(free_vars, maybe_return_annotation, **options)
        checks = self.input_check.source(names) if self.input_check is not None else []
        return "\n".join([definition, *checks])

    def generate_output(self, output_args: Any, **options: Any) -> str:
        if self.plain_outputs:
            return super().generate_output(output_args, **options)
        return self.capture_codegen.generate_output(output_args, **options)

    def additional_globals(self) -> list[tuple[str, Any]]:
        extra = [(ERROR_FUNCTION, self.input_check.error)] if self.input_check is not None else []
        return [*self.capture_codegen.additional_globals(), *extra]


def lean_graph(graph: Graph, out_spec: TreeSpec | None = None) -> tuple[Graph, bool]:
    """A copy of ``graph`` spelled the lean way, and whether its output was rebuilt in its final structure.

    Nodes keep their names and meta; the copy is only for writing code (its nodes are never run
    through an Interpreter, so fast targets that are not ATen overloads are fine here).
    """
    plan = in_place_plan(graph)
    scratch = Graph()
    env: dict[Node, Node] = {}
    for node in graph.nodes:
        if node.op == "output":
            value, plain = _output_structure(node.args[0], out_spec)
            scratch.output(map_arg(value, env.__getitem__), type_expr=node.type)
            return scratch, plain
        op, target, args, kwargs = node.op, node.target, tuple(node.args), dict(node.kwargs)
        if node in plan:
            target, args = plan[node].overload, plan[node].arguments()
        entry = entry_point(target) if op == "call_function" else None
        call = entry.call(args, kwargs) if entry is not None else None
        if call is not None:
            op, target, args, kwargs = call.op, call.target, call.args, call.kwargs
        copied = scratch.create_node(op, target, map_arg(args, env.__getitem__), map_arg(kwargs, env.__getitem__),
                                     name=node.name, type_expr=node.type)
        copied.meta = copy.copy(node.meta)
        env[node] = copied
    raise ValueError("the graph has no output node")


def _output_structure(flat: Any, out_spec: TreeSpec | None) -> tuple[Any, bool]:
    """The outputs in the structure the module returns, when plain containers can express it."""
    if out_spec is None:
        return flat, True
    leaves = list(flat) if isinstance(flat, list | tuple) else [flat]
    if out_spec.num_leaves != len(leaves) or not _plain_spec(out_spec):
        return flat, False
    return tree_unflatten(leaves, out_spec), True


def _plain_spec(spec: TreeSpec) -> bool:
    if spec.is_leaf():
        return True
    if spec.type not in (tuple, list, dict):
        return False
    if spec.type is dict and not all(isinstance(key, str) for key in spec.context):
        return False
    return all(_plain_spec(child) for child in spec.children())

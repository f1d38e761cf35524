"""Remove ops that return their input at inference (`fxrep.ops.NoOp`), so readers read the input.

Dropout of any kind in eval mode, ``nn.Identity``, ``alias`` / ``detach``, a ``clone`` or
``contiguous`` that does not change the layout, ``x * 1``, ``x + 0``, a reshape to the same shape,
and the whole-dimension ``slice`` / ``slice_scatter`` pairs that torch.export writes for
``out[:, :, 0:p, :] = v`` under a dynamic batch size. Removing them first keeps them out of the
regions the other passes plan (a whole-dimension ``slice_scatter`` hides DBB's border fills) and
out of the deployed graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch.fx import GraphModule

from fxrep import pass_api as api


@dataclass(frozen=True)
class RemoveNoOps(api.Pass):
    """Route the readers of every inference no-op to its input (see the module docstring)."""

    name: ClassVar[str] = "remove_no_ops"

    def __call__(self, gm: GraphModule) -> api.PassResult:
        result = api.PassResult()
        rewriter = api.Rewriter(gm)
        outputs = {n for n in gm.graph.nodes if n.op == "output"}
        for node in list(gm.graph.nodes):
            no_op = api.NoOp.from_node(node)
            if no_op is None:
                continue
            if any(user in outputs for user in node.users) and no_op.input.op in ("placeholder", "get_attr"):
                continue  # the output would be the caller's input or a parameter itself, not a new tensor
            if not node.users:
                continue  # dead already; the rewriter's clean-up removes it
            rewriter.bypass(node, rewriter.current(no_op.input), f"remove_{no_op.kind}")
        rewriter.finish()
        return result.absorb(rewriter)

"""Planning a region: the materialisation set with the least estimated cost, by dynamic programming.

A plan materialises a set M of members (every exit among them); each member of M is emitted from
the region's entries and the members of M before it (`fxrep.affine.emission`), every other member
is folded into its readers. The cost of a plan is the sum of its emissions' costs:

    minimise   sum_{m in M} cost(emit(value_M(m)))      over   exits <= M <= members

where ``value_M(m)`` depends on M only through the *boundary* of m: the materialised members met
first when walking back from m through virtual ones. The planner walks the region in topological
order and keeps, for every way of deciding the members so far, a *state*: each member still read
later is either materialised or virtual with its boundary. Two partial plans with the same state
have the same future, so only the cheapest survives (dynamic programming over the topological
order; the two cheapest are kept, to report the best rejected alternative). States are exact:
while their number stays at or below ``max_states`` the result is the optimum over all 2^n sets.
Above it, the bounded fallback keeps the ``max_states`` most promising states (estimated cost so
far plus the cost of materialising each virtual live member now), always including the state in
which every live member is materialised, so a plan at least as good as the graph as it is always
survives; the choice then says ``exact=False``.

A member may also be materialised *with a residual*: when its value is a scaled average pool of one
tensor plus a bias (``D * pool(x) + c``, e.g. a BatchNorm before and after a pool), the tensor holds just
``pool(x)`` (one pool op) and its readers fold ``D`` and ``c`` themselves, as a hand-written
``merge_pre_bn`` does (`AffineValue.factored`). Such a member keeps no reader outside the region.

Values are computed once per (member, boundary) with shape-only kernels (`fxrep.algebra.shape_only`),
so comparing plans never composes real weights; the chosen plan is evaluated once more with real
numbers for emission.

Objectives: ``"seconds"`` minimises (estimated seconds, op count), ``"ops"`` minimises
(op count, estimated seconds) (``policy="always"`` / ``force``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from torch.fx import Node

from ..algebra import NotExact
from ..cost import CostModel
from .emission import Emission, materialize
from .evaluate import InfeasiblePlan, RegionEvaluator, evaluate_region
from .ops import NothingToFold
from .plan import PlanChoice, PlanSummary, RegionPlan
from .regions import Region
from .shapes import GraphShapes
from .value import AffineValue

Objective = Literal["seconds", "ops"]
DEFAULT_MAX_STATES = 256
DEFAULT_WORK_BUDGET = 6000
"""Values (member, boundary) one region's search may compute before it narrows to `NARROW_STATES`."""
NARROW_STATES = 16
SCOUT_STATES = 8
"""States of the first, quick search whose plan bounds the exact one."""
MAX_EXPLAINED_CUTS = 64
"""Members per region whose materialisation is explained (each costs one more plan evaluation)."""
KEPT_PER_STATE = 2
RELATIVE_SLACK = 1e-9

_MATERIALIZED = "materialized"


@dataclass(frozen=True)
class _Residual:
    """Materialised as a pool core; readers fold the residual of the value it had with ``boundary``."""

    boundary: frozenset


Status = str | frozenset | _Residual  # _MATERIALIZED, a virtual member's boundary, or a residual core
StateKey = tuple[tuple[Node, Status], ...]


@dataclass(frozen=True)
class _Chain:
    """The members a partial plan materialised, as a linked list (shared between plans)."""

    node: Node
    rest: _Chain | None
    residual: bool = False

    def nodes(self) -> list[Node]:
        return [link.node for link in self.links()]

    def links(self) -> list[_Chain]:
        chain, found = self, []
        while chain is not None:
            found.append(chain)
            chain = chain.rest
        return found


@dataclass(frozen=True)
class _Partial:
    seconds: float
    ops: int
    chosen: _Chain | None


class RegionPlanner:
    """Plans one region (see the module docstring)."""

    def __init__(self, region: Region, cost_model: CostModel, shapes: GraphShapes, *,
                 objective: Objective = "seconds", max_states: int = DEFAULT_MAX_STATES,
                 work_budget: int = DEFAULT_WORK_BUDGET) -> None:
        if max_states < 1:
            raise ValueError("max_states must be at least 1")
        if objective not in ("seconds", "ops"):
            raise ValueError(f"objective must be 'seconds' or 'ops', got {objective!r}")
        self.region = region
        self.cost_model = cost_model
        self.shapes = shapes
        self.objective = objective
        self.max_states = max_states
        self.work_budget = work_budget
        self.computed = 0
        """Values computed so far (memo misses): the search's work."""
        self.evaluator = RegionEvaluator(region, shapes, shape_only=True)
        self.exits = frozenset(region.exits)
        self.position = {node: index for index, node in enumerate(region.nodes)}
        self.last_read = {node: -1 for node in region.nodes}
        for node in region.nodes:
            for source in region.member_reads(node):
                self.last_read[source] = max(self.last_read[source], self.position[node])
        self._values: dict[tuple[Node, frozenset], AffineValue | NotExact] = {}
        self._emissions: dict[tuple[Node, frozenset, bool], Emission | NotExact] = {}
        self._cores: dict[tuple[Node, frozenset], tuple[Emission, AffineValue] | None] = {}
        self._seconds: dict[int, float] = {}

    # ------------------------------------------------------------------ memoised steps
    def value(self, node: Node, boundary: frozenset, virtual_boundaries: Mapping[Node, Status]
              ) -> AffineValue | NotExact:
        """``node``'s value when its virtual inputs have the given boundaries (the reason, if none)."""
        key = (node, boundary)
        if key not in self._values:
            inputs: dict[Node, AffineValue] = {}
            failed = None
            for source, source_status in virtual_boundaries.items():
                if isinstance(source_status, _Residual):
                    value = self._cores[(source, source_status.boundary)][1]
                else:
                    value = self._values[(source, source_status)]
                if isinstance(value, NotExact):
                    failed = value
                    break
                inputs[source] = value
            self.computed += 1
            if failed is not None:
                self._values[key] = failed
            else:
                try:
                    self._values[key] = self.evaluator.apply(node, inputs)
                except NotExact as reason:
                    self._values[key] = reason
        return self._values[key]

    def emission(self, node: Node, boundary: frozenset, value: AffineValue | NotExact, inputs_materialized: bool
                 ) -> Emission | NotExact:
        """What materialising ``node`` with this boundary emits (the reason, if it cannot).

        ``inputs_materialized``: every member the node reads is a tensor of its own (it may stay as it is).
        """
        key = (node, boundary, inputs_materialized)
        if key not in self._emissions:
            try:
                if isinstance(value, NotExact):
                    reason = "" if isinstance(value, NothingToFold) else str(value)
                    self._emissions[key] = materialize(node, None, inputs_materialized, self.shapes, reason)
                else:
                    self._emissions[key] = materialize(node, value, inputs_materialized, self.shapes,
                                                       cost_model=self.cost_model)
            except NotExact as reason:
                self._emissions[key] = reason
        return self._emissions[key]

    def core(self, node: Node, boundary: frozenset, value: AffineValue | NotExact
             ) -> tuple[Emission, AffineValue] | None:
        """Materialising ``node`` with a residual: the core's emission and what readers see (None if not one)."""
        key = (node, boundary)
        if key not in self._cores:
            self._cores[key] = None
            factored = None if isinstance(value, NotExact) or node in self.exits else value.factored()
            if factored is not None:
                core, scale, bias = factored
                try:
                    emission = materialize(node, core, False, self.shapes, cost_model=self.cost_model)
                except NotExact:
                    emission = None
                if emission is not None and any(op.kind == "pool" for op in emission.ops):
                    self._cores[key] = (emission, value.read_through(node, scale, bias))
        return self._cores[key]

    def seconds(self, emission: Emission) -> float:
        """``emission``'s estimated time (memoised: the search asks for it once per transition)."""
        key = id(emission)
        if key not in self._seconds:
            self._seconds[key] = emission.seconds(self.cost_model)
        return self._seconds[key]

    def _reads_materialized(self, node: Node, status: Mapping[Node, Status]) -> bool:
        return all(status[r] == _MATERIALIZED for r in self.region.member_reads(node))

    def _boundary(self, node: Node, status: Mapping[Node, Status]) -> tuple[frozenset, dict[Node, Status]]:
        boundary: set = set()
        virtual: dict[Node, Status] = {}
        for source in self.region.member_inputs(node):
            state = status[source]
            if state == _MATERIALIZED:
                boundary.add(source)
            elif isinstance(state, _Residual):
                boundary.add((source, state))
                virtual[source] = state
            else:
                boundary |= state
                virtual[source] = state
        return frozenset(boundary), virtual

    def _rank(self, partial: _Partial) -> tuple[float, float]:
        if self.objective == "ops":
            return (partial.ops, partial.seconds)
        return (partial.seconds, partial.ops)

    # ------------------------------------------------------------------ the search
    def search(self, max_states: int | None = None, bound: _Partial | None = None
               ) -> tuple[list[_Partial], bool, int]:
        """The cheapest complete plans (best first, at most two), whether exact, and the widest frontier.

        ``bound`` is a complete plan already known: partial plans already dearer than it are dropped
        (exact: costs only grow as a plan is completed). Once the search has computed
        ``work_budget`` values, the remaining steps keep at most ``NARROW_STATES`` states.
        """
        max_states = self.max_states if max_states is None else max_states
        states: dict[StateKey, list[_Partial]] = {(): [_Partial(0.0, 0, None)]}
        exact, widest = True, 1
        for index, node in enumerate(self.region.nodes):
            if self.computed > self.work_budget and max_states > NARROW_STATES:
                max_states, exact = NARROW_STATES, False
            successors: dict[StateKey, list[_Partial]] = {}
            for key, partials in states.items():
                status = dict(key)
                boundary, virtual = self._boundary(node, status)
                value = self.value(node, boundary, virtual)
                options: list[tuple[Status, float, int]] = []
                if not isinstance(value, NotExact) and node not in self.exits:
                    options.append((boundary, 0.0, 0))
                emission = self.emission(node, boundary, value, self._reads_materialized(node, status))
                if not isinstance(emission, NotExact):
                    options.append((_MATERIALIZED, self.seconds(emission), emission.op_count))
                core = self.core(node, boundary, value)
                if core is not None:
                    options.append((_Residual(boundary), self.seconds(core[0]), core[0].op_count))
                for choice, seconds, ops in options:
                    successor = self._successor(status, node, choice, index)
                    for partial in partials:
                        if choice == _MATERIALIZED or isinstance(choice, _Residual):
                            chosen = _Chain(node, partial.chosen, isinstance(choice, _Residual))
                        else:
                            chosen = partial.chosen
                        extended = _Partial(partial.seconds + seconds, partial.ops + ops, chosen)
                        if bound is None or not self._dearer(extended, bound):
                            self._keep(successors, successor, extended)
            if len(successors) > max_states:
                successors = self._prune(successors, max_states)
                exact = False
            widest = max(widest, len(successors))
            states = successors
        (finals,) = states.values()
        return finals, exact, widest

    def _successor(self, status: dict[Node, Status], node: Node, choice: Status, index: int) -> StateKey:
        live = {n: s for n, s in status.items() if self.last_read[n] > index}
        if self.last_read[node] > index:
            live[node] = choice
        return tuple(sorted(live.items(), key=lambda item: self.position[item[0]]))

    def _keep(self, states: dict[StateKey, list[_Partial]], key: StateKey, partial: _Partial) -> None:
        kept = states.setdefault(key, [])
        kept.append(partial)
        if len(kept) > KEPT_PER_STATE:
            kept.sort(key=self._rank)
            del kept[KEPT_PER_STATE:]

    def _dearer(self, partial: _Partial, bound: _Partial) -> bool:
        if self.objective == "ops":
            return partial.ops > bound.ops
        return partial.seconds > bound.seconds * (1 + RELATIVE_SLACK)

    def _prune(self, states: dict[StateKey, list[_Partial]], max_states: int) -> dict[StateKey, list[_Partial]]:
        """The bounded fallback: the most promising states, and always the all-materialised one."""
        def promise(item: tuple[StateKey, list[_Partial]]) -> tuple[float, float]:
            key, partials = item
            best = min(partials, key=self._rank)
            seconds, ops = best.seconds, best.ops
            for node, status in key:
                if status == _MATERIALIZED or isinstance(status, _Residual):
                    continue
                emission = self._emissions.get((node, status, False))
                if isinstance(emission, Emission):
                    seconds += self.seconds(emission)
                    ops += emission.op_count
            return (ops, seconds) if self.objective == "ops" else (seconds, ops)

        ranked = sorted(states.items(), key=promise)
        kept = dict(ranked[:max_states])
        for key, partials in ranked[max_states:]:
            if all(status == _MATERIALIZED for _, status in key):
                kept[key] = partials
        return kept

    # ------------------------------------------------------------------ one fixed set
    def walk(self, materialized: Iterable[Node], residual: Iterable[Node] = ()) -> list[Emission]:
        """The (shape-only) emissions of the plan that materialises ``materialized`` and the exits, those in
        ``residual`` as pool cores.

        Raises `InfeasiblePlan` when some member cannot be computed under that set.
        """
        cores = frozenset(residual)
        chosen = frozenset(materialized) | self.exits | cores
        status: dict[Node, Status] = {}
        emissions = []
        for node in self.region.nodes:
            boundary, virtual = self._boundary(node, status)
            value = self.value(node, boundary, virtual)
            if node not in chosen:
                if isinstance(value, NotExact):
                    raise InfeasiblePlan(node, str(value))
                status[node] = boundary
                continue
            if node in cores:
                core = self.core(node, boundary, value)
                if core is None:
                    raise InfeasiblePlan(node, f"{node.name}'s value is not one scaled pool")
                emissions.append(core[0])
                status[node] = _Residual(boundary)
                continue
            emission = self.emission(node, boundary, value, self._reads_materialized(node, status))
            if isinstance(emission, NotExact):
                raise InfeasiblePlan(node, str(emission))
            emissions.append(emission)
            status[node] = _MATERIALIZED
        return emissions

    def cost_of(self, materialized: Iterable[Node], residual: Iterable[Node] = ()) -> tuple[float, int]:
        """Estimated (seconds, ops) of the plan materialising ``materialized`` and the exits (see `walk`)."""
        emissions = self.walk(materialized, residual)
        return sum(self.seconds(e) for e in emissions), sum(e.op_count for e in emissions)


def plan_region(region: Region, cost_model: CostModel, shapes: GraphShapes, *, objective: Objective = "seconds",
                max_states: int = DEFAULT_MAX_STATES, explain: bool = True) -> PlanChoice:
    """The cheapest exact plan for ``region`` (module docstring), evaluated with real weights.

    ``explain`` also says, for every member the plan materialises besides the exits, why it is not
    folded into its readers (one more plan evaluation each).
    """
    planner = RegionPlanner(region, cost_model, shapes, objective=objective, max_states=max_states)
    scout, _, _ = planner.search(min(SCOUT_STATES, max_states))
    finals, exact, widest = planner.search(bound=min(scout, key=planner._rank))
    finals = sorted(finals + scout, key=planner._rank)
    distinct: dict[frozenset, _Partial] = {}
    for partial in finals:  # the scout may have found the same plan
        links = partial.chosen.links() if partial.chosen else []
        distinct.setdefault(frozenset((link.node, link.residual) for link in links), partial)
    finals = list(distinct.values())[:KEPT_PER_STATE]
    best, residual = _ordered(region, finals[0].chosen)
    plan = _numeric_plan(region, best, residual, cost_model, shapes, planner)
    runner_up = None
    if len(finals) > 1:
        other, other_residual = _ordered(region, finals[1].chosen)
        runner_up = PlanSummary(tuple(n.name + (" (pool core)" if n in other_residual else "") for n in other
                                      if n not in planner.exits), finals[1].seconds, finals[1].ops)
    as_is_seconds = sum(cost_model.node_seconds(n) for n in region.nodes)
    cuts = _explain_cuts(planner, best, residual, finals[0]) if explain and len(region.nodes) > 1 else {}
    return PlanChoice(plan, as_is_seconds, len(region.nodes), runner_up, exact, widest, cuts)


def _ordered(region: Region, chain: _Chain | None) -> tuple[list[Node], frozenset]:
    """The materialised members in region order, and those materialised as pool cores."""
    links = chain.links() if chain is not None else []
    chosen = {link.node for link in links}
    return [n for n in region.nodes if n in chosen], frozenset(link.node for link in links if link.residual)


def _numeric_plan(region: Region, materialized: list[Node], residual: frozenset, cost_model: CostModel,
                  shapes: GraphShapes, planner: RegionPlanner) -> RegionPlan:
    """The plan for ``materialized`` with real weights (the shape-only one when every node stays)."""
    emissions = tuple(planner.walk(materialized, residual))
    if any(not e.keeps for e in emissions):
        chosen = frozenset(materialized)
        evaluation = evaluate_region(region, chosen, shapes, residual=residual, layouts=planner.evaluator.layouts)
        emissions = tuple(
            materialize(n, evaluation.cores[n], False, shapes, cost_model=cost_model) if n in residual else
            materialize(n, evaluation.values.get(n), set(region.member_reads(n)) <= chosen, shapes,
                        evaluation.kept.get(n, ""), cost_model)
            for n in materialized)
    seconds = sum(e.seconds(cost_model) for e in emissions)
    return RegionPlan(region, emissions, seconds, sum(e.op_count for e in emissions), residual)


def _explain_cuts(planner: RegionPlanner, best: list[Node], residual: frozenset, chosen: _Partial
                  ) -> dict[Node, str]:
    """Why each non-exit member of the best plan is materialised: folding it is inexact, or costs more."""
    reasons: dict[Node, str] = {}
    cuts = [n for n in best if n not in planner.exits]
    for node in cuts[MAX_EXPLAINED_CUTS:]:
        reasons[node] = "kept as a tensor of its own by the region's plan"
    for node in cuts[:MAX_EXPLAINED_CUTS]:
        readers = ", ".join(u.name for u in planner.region.nodes if node in planner.region.member_inputs(u))
        try:
            emissions = planner.walk((m for m in best if m is not node), residual - {node})
        except InfeasiblePlan as infeasible:
            reasons[node] = str(infeasible) if infeasible.node is node else \
                f"kept apart from {infeasible.node.name}: {infeasible}"
            continue
        seconds = sum(planner.seconds(e) for e in emissions)
        ops = sum(e.op_count for e in emissions)
        if planner.objective == "ops":
            reason = f"kept apart from {readers}: folding it in would need {ops} ops instead of {chosen.ops}"
        else:
            ratio = seconds / chosen.seconds if chosen.seconds > 0 else float("inf")
            reason = (f"kept apart from {readers}: folding it in would cost {ratio:.2f}x the estimated time of "
                      "the region")
        borders = next((b for e in emissions if (b := separate_borders(e)) is not None), None)
        reasons[node] = reason + (f" ({borders})" if borders else "")
    _explain_sibling_cuts(planner, best, residual, cuts[:MAX_EXPLAINED_CUTS], reasons)
    for node in residual:
        reasons[node] = (f"{node.name} runs as a pool; its per-channel scale and bias are folded into its "
                         "readers")
    return reasons


def _explain_sibling_cuts(planner: RegionPlanner, best: list[Node], residual: frozenset, cuts: list[Node],
                          reasons: dict[Node, str]) -> None:
    """Where folding all the cut inputs of one reader together is inexact, say that instead of the cost.

    Folding one of two parallel branches may be exact but dearer, while folding both is what would
    make one kernel, and that is refused by the algebra (grids that coincide only for some sizes,
    different padding modes): that refusal is the reason worth reading.
    """
    region = planner.region
    for reader in region.nodes:
        siblings = [i for i in region.member_inputs(reader) if i in cuts]
        if len(siblings) < 2:
            continue
        try:
            planner.walk((m for m in best if m not in siblings), residual - set(siblings))
        except InfeasiblePlan as infeasible:
            for node in siblings:
                reasons[node] = f"kept apart from {infeasible.node.name}: {infeasible}"


def separate_borders(emission: Emission) -> str | None:
    """Why a value that reads one tensor through different paddings (zeros, reflect, ...) needs several convs."""
    if emission.value is None:
        return None
    by_node: dict[Node, list[str]] = {}
    for source in emission.value.sources:
        by_node.setdefault(source.node, []).append(source.describe())
    for readers in by_node.values():
        if len(readers) > 1:
            return f"branches see different borders ({'; '.join(readers)}), so they cannot share one kernel"
    return None

"""The errors fxrep raises. Each message names the cause and what to do about it."""

from __future__ import annotations

from collections.abc import Sequence


class FxrepError(Exception):
    """Base class of every error fxrep raises on purpose."""


class InvalidModelError(FxrepError, ValueError):
    """The model or its inputs cannot be optimized as given (wrong type, NaN weights, ...)."""


class CaptureError(FxrepError):
    """No capture method could turn the model into an fx graph."""

    def __init__(self, attempts: Sequence[tuple[str, str]], advice: str) -> None:
        self.attempts = list(attempts)
        lines = ["fxrep could not capture the model as an fx graph."]
        for method, reason in self.attempts:
            lines.append(f"- {method} failed: {reason}")
        lines.append(advice)
        super().__init__("\n".join(lines))


class PassError(FxrepError):
    """A pass raised; the message names it and the passes that ran before it."""

    def __init__(self, pass_name: str, previous: Sequence[str], cause: BaseException) -> None:
        self.pass_name = pass_name
        self.previous = list(previous)
        before = ", ".join(self.previous) if self.previous else "none"
        super().__init__(
            f"pass {pass_name!r} failed with {type(cause).__name__}: {cause}\n"
            f"passes that ran before it (in order): {before}"
        )


class EquivalenceError(FxrepError):
    """The optimized module is not equivalent to the original.

    Either a rewritten region does not reproduce the original's values from the original's own
    inputs (``regions`` lists each failing region, the first also as ``region``: its nodes, module
    path, the passes that wrote it and the rule; ``pass_name`` is the pass that wrote its final
    nodes), or the outputs differ beyond the tolerance for a reason the verifier cannot put down to
    rounding (``pass_name`` "lean" for the final stage), or ``strict=True`` turned a verification
    warning into this error.
    """

    def __init__(self, message: str, *, pass_name: str | None, max_abs: float, max_rel: float,
                 tolerance: float, regions: Sequence[object] = ()) -> None:
        self.pass_name = pass_name
        self.max_abs = max_abs
        self.max_rel = max_rel
        self.tolerance = tolerance
        self.regions = list(regions)
        super().__init__(message)

    @property
    def region(self) -> object | None:
        """The first failing region (an `fxrep.verify.Region`), or None when no region failed."""
        return self.regions[0] if self.regions else None


class InputShapeError(FxrepError, ValueError):
    """An optimized module was called with inputs of a shape (or value) it was not captured for.

    ``expected`` holds the captured shape of each input (dynamic sizes by name, such as ``"batch"``),
    ``got`` the shapes of the call; the message says what to pass to `fxrep.optimize` instead.
    """

    def __init__(self, message: str, *, expected: tuple[object, ...] = (), got: tuple[object, ...] = ()) -> None:
        self.expected = expected
        self.got = got
        super().__init__(message)

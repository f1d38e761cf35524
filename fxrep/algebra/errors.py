"""`NotExact`: raised by the kernel algebra when a rewrite would change the model's outputs.

The reason is written for a user reading the report ("stride (2, 2) does not match (1, 1)"). The
algebra raises it from deep inside its formulas; `fxrep.match.attempt` (or `Match.from_error`) is
where it becomes the `Match.fail(reason)` a pass records as the reason a candidate was refused.
"""

from __future__ import annotations


class NotExact(ValueError):
    """The requested algebraic rewrite is not exact; ``reason`` (also ``str(error)``) says why."""

    @property
    def reason(self) -> str:
        return str(self)

"""`NotExact`: raised by the kernel algebra when a rewrite would change the model's outputs.

The message is the reason, written for a user reading the report ("stride (2, 2) does not match
(1, 1)"); passes catch it and record it as the reason a candidate was refused.
"""

from __future__ import annotations


class NotExact(ValueError):
    """The requested algebraic rewrite is not exact; ``str(error)`` says why."""

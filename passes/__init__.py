"""fxrep's built-in rewrite passes, importable as ``fxrep.passes``.

Every pass here is written against the public API in `fxrep.pass_api` only, the same API custom
passes use. `default_pipeline()` returns a fresh list each call.
"""

from __future__ import annotations

from .collapse_linear_regions import CollapseLinearRegions


def default_pipeline() -> list:
    """A new list of the passes `fxrep.optimize` runs by default, in order."""
    return [CollapseLinearRegions()]


__all__ = ["CollapseLinearRegions", "default_pipeline"]

from __future__ import annotations

import fxrep.models


def test_public_names_resolve() -> None:
    assert len(set(fxrep.models.__all__)) == len(fxrep.models.__all__)
    for name in fxrep.models.__all__:
        assert getattr(fxrep.models, name) is not None

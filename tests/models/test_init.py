"""``fxrep.models`` exports exactly the blocks, nets and helpers its submodules define."""

from __future__ import annotations

import inspect
import types

import fxrep.models


def test_all_is_exactly_the_public_names_imported_from_the_submodules() -> None:
    assert len(set(fxrep.models.__all__)) == len(fxrep.models.__all__)
    imported = {name for name, value in vars(fxrep.models).items()
                if not name.startswith("_") and not isinstance(value, types.ModuleType)
                and getattr(value, "__module__", "").startswith("fxrep.models.")}
    assert set(fxrep.models.__all__) == imported


def test_every_exported_name_is_a_class_or_function_of_a_models_submodule() -> None:
    namespace: dict = {}
    exec("from fxrep.models import *", namespace)
    for name in fxrep.models.__all__:
        value = namespace[name]
        assert inspect.isclass(value) or inspect.isfunction(value), name
        assert value.__module__.startswith("fxrep.models."), (name, value.__module__)
        assert value.__name__ == name, (name, value.__name__)  # exported under its own name, not an alias

"""The three hooks every built-in rule-set package implements alike: its rules.yaml, its providers, its recipes."""

from __future__ import annotations

import importlib
import importlib.resources
from collections.abc import Callable, Sequence
from typing import Any

from kamrules import hookimpl


def package_hooks(package: str, providers: Sequence[Any]) -> tuple[Callable[[], list[Any]], ...]:
    """``register_rulesets``, ``register_facts`` and ``register_defect_recipes`` for the rule-set package
    ``package`` (its ``rules.yaml``, ``providers``, and ``RECIPES`` and ``TRAPS`` (optional) of its
    ``defects`` module, imported when the generator asks). A package's plugin module binds them to those names::

        register_rulesets, register_facts, register_defect_recipes = package_hooks(__package__, PROVIDERS)
    """

    @hookimpl
    def register_rulesets() -> list[Any]:
        return [importlib.resources.files(package) / "rules.yaml"]

    @hookimpl
    def register_facts() -> list[Any]:
        return list(providers)

    @hookimpl
    def register_defect_recipes() -> list[Any]:
        module = importlib.import_module(f"{package}.defects")
        return list(module.RECIPES) + list(getattr(module, "TRAPS", ()))

    return register_rulesets, register_facts, register_defect_recipes

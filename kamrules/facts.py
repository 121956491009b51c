"""Fact providers: SQL that derives named per-account or portfolio facts for an as-of date."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping


@dataclass(frozen=True)
class FactProvider:
    """One SQL query computing named facts.

    ``sql`` is a SELECT run with the named parameter ``:as_of`` (ISO date text;
    records dated after it must be ignored). For ``scope="account"`` it returns
    one row per account with an ``account_id`` column plus one column per name in
    ``facts``; accounts it returns no row for get no value for those facts.
    For ``scope="portfolio"`` it returns rows of portfolio facts; each row
    becomes one portfolio fact set (an optional ``scope_key`` column tells them
    apart, e.g. one row per owner).

    ``requires`` names the tables the facts are derived from: when any of them
    has no rows, rules using these facts are skipped (listed in the summary),
    never fired on missing data.

    ``derive``, if given, is called with the merged fact dict of one account (or
    portfolio row) and returns extra facts computed in Python.
    """

    name: str
    facts: tuple[str, ...]
    sql: str
    requires: tuple[str, ...] = ()
    scope: str = "account"
    derive: Callable[[Mapping], Mapping] | None = None
    derived: tuple[str, ...] = ()  # names of the facts ``derive`` returns
    description: str = ""

    def __post_init__(self) -> None:
        if self.scope not in ("account", "portfolio"):
            raise ValueError(f"fact provider {self.name}: scope must be 'account' or 'portfolio'")

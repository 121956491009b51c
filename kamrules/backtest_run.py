"""A backtest's checks sharing their work across dates: one plan, one set of worker processes (issue 16).

What does not depend on the as-of date is done once: the plugins and rule files are loaded, the rules
compiled, the providers' status and parameters decided, the book cut into parts and the workers forked
(each keeps its part's restricted connection open for every date). Providers with ``multi_date_sql``
compute their facts for every date in one pass per part (:meth:`FactSource.use_dates`); the others run
their ``sql`` per date. Each date is then merged exactly as :func:`kamrules.check.run` merges a check,
so its alerts are those of ``kamrules check --as-of`` that date. A date whose plan would differ from the
first date's (a provider or plugin failing) is checked on its own, the slow and exact way.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from typing import Any

from kamrules.check import CheckRequest, CheckResult, Evaluation, Plan, evaluate, merge, newest_of, on_disk, plan
from kamrules.check_parts import PartTask
from kamrules.facts import drop_dates

LOOKAHEAD = 2  # dates handed to the workers ahead of the one being merged (bounds the results held)

_TASKS: list[PartTask | None] = []  # per date; set before the pool forks, inherited by the workers


def _run(i: int, part: Any) -> Any:
    task = _TASKS[i]
    assert task is not None
    return task(part, lambda n: None)


def _alone(store: Any, request: CheckRequest, pm: Any) -> CheckResult:
    """One date checked on its own (inside the backtest's snapshot: no second one is taken)."""
    with plan(store, request, pm) as p:
        return merge(p, evaluate(p))


def run_dates(
    store: Any, dates: Sequence[str], request: CheckRequest, pm: Any = None, snapshot: bool = True
) -> Iterator[CheckResult]:
    """Yield the :class:`CheckResult` of ``request`` at each of ``dates``, in order. ``snapshot``: hold
    :func:`kamrules.partition.one_snapshot` meanwhile (False: the caller holds one)."""
    from kamrules.partition import BUSY_WAIT, one_snapshot

    dates = list(dates)
    wait = BUSY_WAIT if request.wait is None else request.wait
    with one_snapshot(store.path, wait) if snapshot and on_disk(store) else nullcontext():
        yield from _dates(store, dates, request, pm)


def _dates(store: Any, dates: list[str], request: CheckRequest, pm: Any) -> Iterator[CheckResult]:
    from kamrules.partition import PART_SIZE, Part, default_jobs, plan_parts

    base = plan(store, dataclasses.replace(request, as_of=dates[0]), pm)
    plans: list[Plan | None] = []
    try:
        if base.failures:  # a plugin or provider failed: each date as a check of its own
            base.close()
            for d in dates:
                yield _alone(store, dataclasses.replace(request, as_of=d), pm)
            return
        needed = {f for r in base.rules for f in r.evidence_facts()}
        for d in dates:
            failures: list[tuple[str, str]] = []
            source = base.source if d == dates[0] else base.source.at(d, failures)
            if source is not base.source and source.book_providers:
                source.book_facts(needed)
            plans.append(
                None
                if failures
                else dataclasses.replace(
                    base,
                    request=dataclasses.replace(base.request, as_of=d),
                    source=source,
                    failures=failures if source is not base.source else base.failures,
                    skipped=list(base.skipped),
                )
            )
        if base.account_engine is None:  # portfolio rules only: nothing per part
            for d, p in zip(dates, plans, strict=True):
                yield _alone(store, dataclasses.replace(request, as_of=d), pm) if p is None else _merged(p, [], [])
            return
        jobs = request.jobs or default_jobs()
        parts = (
            plan_parts(store.conn, jobs, request.part_size or PART_SIZE) if on_disk(store) else [Part(0, None, None)]
        )
        opened: dict = {}  # part index -> its Store: in a worker, its own copy
        tasks: list[PartTask | None] = [
            None
            if p is None
            else PartTask(
                store,
                p.source,
                p.compiled,
                p.account_engine,
                p.request.as_of,
                p.request.min_severity,
                p.request.batch_size,
                p.portfolio_engine is not None,
                opened,
                tuple(dates),
            )
            for p in plans
        ]
        try:
            if len(parts) == 1 or jobs <= 1:
                for d, p, task in zip(dates, plans, tasks, strict=True):
                    if p is None or task is None:
                        yield _alone(store, dataclasses.replace(request, as_of=d), pm)
                        continue
                    p.started = time.perf_counter()
                    yield _merged(p, parts, [task(part, lambda n: None) for part in parts])
            else:
                yield from _pooled(store, dates, request, pm, plans, tasks, parts, jobs)
        finally:
            for s in opened.values():  # only in this process (one part): the workers' went with them
                s.close()
            drop_dates(store)
    finally:
        for p in plans:
            if p is not None:
                p.close()
        base.close()


def _merged(p: Plan, parts: list, results: list) -> CheckResult:
    queries = p.source.portfolio_queries() if p.portfolio_engine is not None and parts else {}
    return merge(p, Evaluation(list(parts), results, queries, newest_of(p, p.runnable)))


def _pooled(
    store: Any,
    dates: list[str],
    request: CheckRequest,
    pm: Any,
    plans: list[Plan | None],
    tasks: list[PartTask | None],
    parts: list,
    jobs: int,
) -> Iterator[CheckResult]:
    """The parts of every date in one pool of forked workers, ``LOOKAHEAD`` dates ahead of the merge."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from kamrules.bulkload import collector_paused
    from kamrules.partition import WorkerDied

    global _TASKS
    ctx = multiprocessing.get_context("fork")
    _TASKS = tasks
    futures: dict[int, list] = {}
    try:
        with collector_paused(freeze=True), ProcessPoolExecutor(min(jobs, len(parts)), mp_context=ctx) as pool:

            def submit(i: int) -> None:
                if i < len(dates) and i not in futures and tasks[i] is not None:
                    futures[i] = [pool.submit(_run, i, part) for part in parts]

            for i in range(LOOKAHEAD + 1):
                submit(i)
            for i, (d, p) in enumerate(zip(dates, plans, strict=True)):
                submit(i + LOOKAHEAD)
                if p is None:
                    yield _alone(store, dataclasses.replace(request, as_of=d), pm)
                    continue
                p.started = time.perf_counter()
                queries = p.source.portfolio_queries() if p.portfolio_engine is not None else {}
                newest = newest_of(p, p.runnable)
                results = []
                for f in futures.pop(i):
                    try:
                        results.append(f.result())
                    except Exception as e:  # BrokenProcessPool: a worker was killed or crashed
                        results.append(WorkerDied(f"{type(e).__name__}: {e}"))
                yield merge(p, Evaluation(list(parts), results, queries, newest))
    finally:
        _TASKS = []


__all__ = ["run_dates", "LOOKAHEAD"]

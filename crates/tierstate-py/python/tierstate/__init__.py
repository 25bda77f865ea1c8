"""tierstate for Python: versioned, checksummed state for trading strategies.

``tierstate.open(url)`` returns a :class:`Store`; every call blocks with the GIL released and
has an ``_async`` twin (run on a small thread pool, so an event loop never waits on a disk or
a server). ``tierstate.compat.almanak`` is a drop-in for seed 000's ``StateManager``.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from . import _native
from .errors import (
    AlreadyExistsError,
    BackendError,
    ConflictError,
    IntegrityError,
    InvalidInputError,
    LockedError,
    NotFoundError,
    RollbackError,
    SchemaError,
    TierstateError,
)

State = _native.State
SimVenue = _native.SimVenue
roundtrip = _native.roundtrip
__version__ = _native.__version__

_POOL = object()
"""What :meth:`Store._load_fast` returns for a read that must run on the pool."""

_pool: ThreadPoolExecutor | None = None
_pool_pid = 0
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """The async twins' threads: one pool per process (a forked child makes its own)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="tierstate")
            _pool_pid = os.getpid()
        return _pool


async def _in_pool(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor(), functools.partial(fn, *args, **kwargs))


def _twin(name: str) -> Callable[..., Any]:
    async def call(self: "Store", *args: Any, **kwargs: Any) -> Any:
        return await _in_pool(getattr(self._native, name), *args, **kwargs)

    call.__name__ = f"{name}_async"
    call.__doc__ = f"The async twin of :meth:`Store.{name}`."
    return call


class Store:
    """One tierstate store: states with versions and history, and metrics."""

    def __init__(self, native: _native.Store) -> None:
        self._native = native
        # Reads of an embedded file (tens of microseconds, the GIL released) run on the
        # caller's thread; a PostgreSQL round trip goes to the pool.
        self._inline_reads = native.backend != "postgres"

    def load(self, deployment_id: str) -> State | None:
        """The current state, or None."""
        return self._native.load(deployment_id)

    def _load_fast(self, deployment_id: str) -> Any:
        """A HOT hit, or an embedded read, without a thread hop; ``_POOL`` when the read must
        go to the pool (PostgreSQL)."""
        hit = self._native.load_cached(deployment_id)
        if hit is not None:
            return hit
        if not self._inline_reads:
            return _POOL
        return self._native.load(deployment_id)

    def load_cached(self, deployment_id: str) -> State | None:
        """The state if HOT holds it, with no I/O; None otherwise."""
        return self._native.load_cached(deployment_id)

    def create(self, deployment_id: str, state: dict[str, Any]) -> State:
        """The first version; AlreadyExistsError if there is one."""
        return self._native.create(deployment_id, state)

    def update(self, deployment_id: str, expected: int, state: dict[str, Any]) -> State:
        """Replaces exactly version ``expected``; ConflictError (with both versions) otherwise."""
        return self._native.update(deployment_id, expected, state)

    def overwrite(self, deployment_id: str, state: dict[str, Any]) -> State:
        """A new version whatever is stored (creating the first)."""
        return self._native.overwrite(deployment_id, state)

    def delete(self, deployment_id: str) -> bool:
        """Deletes the state and its history; True if there was one."""
        return self._native.delete(deployment_id)

    def history(self, deployment_id: str, limit: int = 20) -> list[State]:
        """Retained versions, newest first."""
        return self._native.history(deployment_id, limit)

    def load_version(self, deployment_id: str, version: int) -> State | None:
        """One retained version, or None."""
        return self._native.load_version(deployment_id, version)

    def invalidate(self, deployment_id: str | None = None) -> None:
        """Drops a deployment (or all) from HOT; the next load reads WARM."""
        self._native.invalidate(deployment_id)

    def deployments(self) -> list[str]:
        """Every deployment holding a state, in id order."""
        return self._native.deployments()

    def metrics(self, limit: int = 100) -> list[dict[str, Any]]:
        """The most recent operations, newest first."""
        return self._native.metrics(limit)

    def metrics_summary(self) -> dict[str, dict[str, Any]]:
        """Per tier: counts, rates and mean/p50/p99 latency (ms)."""
        return self._native.metrics_summary()

    def clear_metrics(self) -> None:
        """Forgets the recorded operations."""
        self._native.clear_metrics()

    def ledger_append(self, deployment_id: str, entry: dict[str, Any]) -> tuple[str, int]:
        """Appends a ledger entry (LedgerEntry's fields; Decimal amounts, aware ``time``);
        idempotent by its id: ``("appended", seq)`` or ``("duplicate", seq)``."""
        return self._native.ledger_append(deployment_id, entry)

    def ledger_entries(
        self, deployment_id: str, limit: int = 20, since: Any = None, intent_type: str | None = None
    ) -> list[dict[str, Any]]:
        """The newest ledger entries, each with its ``seq``."""
        return self._native.ledger_entries(deployment_id, limit, since, intent_type)

    def ledger_stats(self, deployment_id: str) -> dict[str, Any]:
        """The ledger's running totals."""
        return self._native.ledger_stats(deployment_id)

    def snapshot_save(
        self, deployment_id: str, snapshot: dict[str, Any], upsert: bool = False
    ) -> tuple[str, int | None]:
        """Saves a portfolio snapshot: ``("stored", seq)``, ``("unchanged", None)`` or
        (``upsert``) ``("replaced", seq)``."""
        return self._native.snapshot_save(deployment_id, snapshot, upsert)

    def document(self, deployment_id: str, collection: str, key: str) -> dict[str, Any] | None:
        """A versioned document (any collection and key you name): ``{"value", "version",
        "created_at", "updated_at"}``, checksum verified, or None."""
        return self._native.document(deployment_id, collection, key)

    def document_put(
        self,
        deployment_id: str,
        collection: str,
        key: str,
        value: dict[str, Any],
        expected: int | None = None,
        overwrite: bool = False,
    ) -> dict[str, Any]:
        """Writes a document: the first version (``expected=None``; ``AlreadyExistsError`` if
        there is one), over exactly version ``expected`` (``ConflictError`` otherwise), or
        with ``overwrite=True`` whatever is there. Returns it as stored."""
        return self._native.document_put(deployment_id, collection, key, value, expected, overwrite)

    def document_delete(
        self, deployment_id: str, collection: str, key: str, expected: int | None = None
    ) -> bool:
        """Removes a document and its history (only at ``expected`` if given); whether there
        was one."""
        return self._native.document_delete(deployment_id, collection, key, expected)

    def cleanup_old_snapshots(self, retention_days: int = 7) -> int:
        """Removes every deployment's portfolio snapshots older than ``retention_days`` days
        (their lifetime NAV fold is kept); returns how many went."""
        return self._native.cleanup_old_snapshots(retention_days)

    def snapshot_first(self, deployment_id: str) -> dict[str, Any] | None:
        """The oldest portfolio snapshot, or None."""
        return self._native.snapshot_first(deployment_id)

    def snapshot_at(self, deployment_id: str, time: Any) -> dict[str, Any] | None:
        """The snapshot at or before an aware time, or None."""
        return self._native.snapshot_at(deployment_id, time)

    def snapshots_recent(self, deployment_id: str, n: int) -> list[dict[str, Any]]:
        """The newest ``n`` snapshots, oldest first."""
        return self._native.snapshots_recent(deployment_id, n)

    def metrics_load(self, deployment_id: str) -> tuple[dict[str, Any], int] | None:
        """The portfolio metrics and their version, or None."""
        return self._native.metrics_load(deployment_id)

    def metrics_save(self, deployment_id: str, metrics: dict[str, Any], expected: int | None = None) -> int:
        """Saves the portfolio metrics over ``expected`` (None: the first save)."""
        return self._native.metrics_save(deployment_id, metrics, expected)

    def snapshot_latest(self, deployment_id: str) -> dict[str, Any] | None:
        """The newest portfolio snapshot, or None."""
        return self._native.snapshot_latest(deployment_id)

    def snapshots(self, deployment_id: str, start: Any = None, end: Any = None) -> list[dict[str, Any]]:
        """Snapshots with ``start <= time <= end`` (either open), oldest first."""
        return self._native.snapshots(deployment_id, start, end)

    def strategy_tick(
        self,
        deployment_id: str,
        state: dict[str, Any],
        *,
        expected: int | None,
        time: Any,
        trades: list[dict[str, Any]] | None = None,
        positions: list[dict[str, Any]] | None = None,
        metrics: dict[str, float] | None = None,
    ) -> tuple[int, int, int]:
        """One strategy tick in one transaction: the state over version ``expected`` (None:
        the first tick), the tick's trades, the positions as of now and metric points.
        Returns ``(version, new_trades, replayed_trades)``; a replayed tick writes nothing."""
        return self._native.strategy_tick(
            deployment_id,
            state,
            expected=expected,
            time=time,
            trades=trades,
            positions=positions,
            metrics=metrics,
        )

    def strategy_trades(self, deployment_id: str, from_seq: int = 1, limit: int = 1000) -> list[dict[str, Any]]:
        """The strategy's trades in commit order from the ``from_seq``-th."""
        return self._native.strategy_trades(deployment_id, from_seq, limit)

    def strategy_latest_metric(self, deployment_id: str, name: str) -> tuple[Any, float] | None:
        """A metric's newest ``(time, value)``, or None."""
        return self._native.strategy_latest_metric(deployment_id, name)

    def intent_create(self, deployment_id: str, intent: dict[str, Any]) -> dict[str, Any]:
        """Stores a new order intent; returns it with its ``version`` (the same create again
        returns what is stored)."""
        return self._native.intent_create(deployment_id, intent)

    def intent_update(self, deployment_id: str, intent: dict[str, Any], expected_version: int) -> dict[str, Any]:
        """Replaces an intent over ``expected_version`` (ConflictError if it moved)."""
        return self._native.intent_update(deployment_id, intent, expected_version)

    def intent_delete(self, deployment_id: str, intent_id: str) -> bool:
        """Withdraws an intent (the engine cancels its order); False if there was none."""
        return self._native.intent_delete(deployment_id, intent_id)

    def intents(self, deployment_id: str, symbol: str | None = None) -> list[dict[str, Any]]:
        """The deployment's intents, each with its ``version``."""
        return self._native.intents(deployment_id, symbol)

    def actual_orders(self, deployment_id: str, symbol: str | None = None) -> list[dict[str, Any]]:
        """The orders on the venue as last synced (``version``, ``synced_at``, ``recon``)."""
        return self._native.actual_orders(deployment_id, symbol)

    def reconcile(self, deployment_id: str, venue: "SimVenue", tolerance: Any = None) -> dict[str, Any]:
        """One reconciliation pass of the intents against ``venue``:
        ``{"actions": [(kind, intent_id)], "errors": [(intent_id, message)]}``."""
        return self._native.reconcile(deployment_id, venue, tolerance)

    @property
    def backend(self) -> str:
        """The WARM backend: sqlite, redb, postgres or memory."""
        return self._native.backend

    def close(self) -> None:
        """Releases the store (and its file locks: the same file reopens in this process)."""
        self._native.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def load_async(self, deployment_id: str) -> State | None:
        """The async twin of :meth:`Store.load`: a HOT hit returns at once; a WARM read runs on
        the pool, so the event loop never waits on a disk or a server."""
        hit = self._native.load_cached(deployment_id)
        if hit is not None:
            return hit
        if self._inline_reads:
            # An embedded read takes less time than a hop to a thread does.
            return self._native.load(deployment_id)
        return await _in_pool(self._native.load, deployment_id)

    create_async = _twin("create")
    update_async = _twin("update")
    overwrite_async = _twin("overwrite")
    delete_async = _twin("delete")
    history_async = _twin("history")
    cleanup_old_snapshots_async = _twin("cleanup_old_snapshots")
    document_async = _twin("document")
    document_put_async = _twin("document_put")
    document_delete_async = _twin("document_delete")
    load_version_async = _twin("load_version")
    deployments_async = _twin("deployments")
    close_async = _twin("close")
    ledger_append_async = _twin("ledger_append")
    ledger_entries_async = _twin("ledger_entries")
    ledger_stats_async = _twin("ledger_stats")
    snapshot_save_async = _twin("snapshot_save")
    snapshot_latest_async = _twin("snapshot_latest")
    snapshots_async = _twin("snapshots")
    strategy_tick_async = _twin("strategy_tick")
    strategy_trades_async = _twin("strategy_trades")
    intent_create_async = _twin("intent_create")
    intent_update_async = _twin("intent_update")
    intent_delete_async = _twin("intent_delete")
    intents_async = _twin("intents")
    actual_orders_async = _twin("actual_orders")
    reconcile_async = _twin("reconcile")


def open(url: str, *, hot: bool = True) -> Store:  # noqa: A001 - the library's front door
    """Opens (creating or upgrading as needed) the store at ``url``: ``sqlite:PATH``,
    ``redb:PATH``, ``postgres://USER:PASSWORD@HOST/DB[?schema=S]`` or ``memory:``."""
    return Store(_native.open(url, hot=hot))


async def open_async(url: str, *, hot: bool = True) -> Store:
    """The async twin of :func:`open`."""
    return Store(await _in_pool(_native.open, url, hot=hot))


__all__ = [
    "AlreadyExistsError",
    "BackendError",
    "ConflictError",
    "IntegrityError",
    "InvalidInputError",
    "LockedError",
    "NotFoundError",
    "RollbackError",
    "SchemaError",
    "SimVenue",
    "State",
    "Store",
    "TierstateError",
    "open",
    "open_async",
    "roundtrip",
]

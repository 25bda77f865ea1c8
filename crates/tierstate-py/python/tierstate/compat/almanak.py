"""Seed 000's state manager (almanak ``almanak.framework.state``) on tierstate.

A strategy written against ``from almanak.framework.state import StateManager, ...`` switches
by changing only that import to ``from tierstate.compat.almanak import ...``. Names, signatures
and attributes are the seed's. Where tierstate deliberately differs it says so here and in
docs/port-guide.md: a save without an expected version over an existing state is a
``StateConflictError`` (the seed upserts silently, losing a concurrent write).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum, IntEnum, auto
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

from .. import _POOL, Store, _in_pool
from .. import open as _open
from ..errors import ConflictError, NotFoundError, TierstateError


class StateConflictError(ConflictError):
    """Raised when a compare-and-swap update fails: another writer saved since the read."""

    def __init__(
        self,
        deployment_id: str,
        expected_version: int,
        actual_version: int,
        message: str | None = None,
    ) -> None:
        super().__init__(
            message
            or f"Version conflict for {deployment_id}: expected {expected_version}, actual {actual_version}",
            deployment_id=deployment_id,
            expected=expected_version,
            actual=actual_version,
        )
        self.expected_version = expected_version
        self.actual_version = actual_version


class StateNotFoundError(NotFoundError):
    """Raised when state is not found in any tier."""

    def __init__(self, deployment_id: str, message: str | None = None) -> None:
        super().__init__(
            message or f"State not found for deployment {deployment_id}",
            deployment_id=deployment_id,
        )


class StateTier(IntEnum):
    """Storage tier for state data, fastest first."""

    HOT = 1
    WARM = 2


class WarmBackendType(Enum):
    """Which WARM backend: PostgreSQL (production) or SQLite (local)."""

    POSTGRESQL = auto()
    SQLITE = auto()


@dataclass
class PostgresConfig:
    """PostgreSQL connection settings."""

    host: str = "localhost"
    port: int = 5432
    database: str = "almanak"
    user: str = "postgres"
    password: str = ""
    pool_min_size: int = 2
    pool_max_size: int = 10
    schema: str | None = None

    def url(self) -> str:
        """The tierstate URL of these settings."""
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        url = f"postgres://{auth}@{self.host}:{self.port}/{quote(self.database, safe='')}"
        return url + (f"?schema={self.schema}" if self.schema else "")


def _default_db_path() -> str:
    return str(Path.cwd() / "almanak_state.db")


@dataclass
class SQLiteConfigLight:
    """SQLite settings: ``db_path`` (``":memory:"`` for a database that lives in memory)."""

    db_path: str = field(default_factory=_default_db_path)
    wal_mode: bool = True


@dataclass
class SQLiteConfig(SQLiteConfigLight):
    """SQLite settings for a store built directly (tierstate always runs WAL, durably)."""

    busy_timeout_ms: int = 10_000


def _sqlite_url(db_path: str) -> str:
    """``:memory:`` as an in-process store; a path (parents created; an empty file, as
    ``tempfile.mkstemp`` leaves, opens as a new database) as SQLite."""
    if db_path == ":memory:":
        return "memory:"
    p = Path(db_path).expanduser()
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.exists() and p.stat().st_size == 0:
        p.unlink()
    return f"sqlite:{p}"


@dataclass
class StateManagerConfig:
    """Configuration for :class:`StateManager`, as the seed's."""

    enable_hot: bool = True
    enable_warm: bool = True
    warm_backend: WarmBackendType = WarmBackendType.POSTGRESQL
    hot_cache_ttl_seconds: int = 0
    hot_cache_max_size: int = 1000
    database_url: str | None = None
    postgres_config: PostgresConfig = field(default_factory=PostgresConfig)
    sqlite_config: SQLiteConfigLight = field(default_factory=SQLiteConfigLight)
    metrics_callback: Callable[["TierMetrics"], None] | None = None
    load_state_on_startup: bool = True

    def url(self) -> str:
        """The tierstate URL the configuration names."""
        if not self.enable_warm:
            return "memory:"
        if self.database_url:
            url = self.database_url
            return "postgres://" + url.split("://", 1)[1] if url.startswith("postgresql://") else url
        if self.warm_backend == WarmBackendType.SQLITE:
            return _sqlite_url(self.sqlite_config.db_path)
        return self.postgres_config.url()


def _seed_checksum(state: dict[str, Any]) -> str:
    """The seed's checksum: SHA-256 of ``json.dumps(state, sort_keys=True, default=str)``."""
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()


class StateData:
    """A strategy's state and its version, as the seed's ``StateData``. ``checksum`` is the
    seed's (SHA-256 of ``json.dumps(state, sort_keys=True, default=str)``); for a loaded state
    it is computed, over the state as stored, the first time it is read."""

    def __init__(
        self,
        deployment_id: str = "",
        version: int = 0,
        state: dict[str, Any] | None = None,
        schema_version: int = 1,
        checksum: str = "",
        created_at: datetime | None = None,
        loaded_from: StateTier | None = None,
        *,
        strategy_id: str | None = None,
    ) -> None:
        # `strategy_id` is the seed's older spelling of `deployment_id`.
        self.deployment_id = deployment_id or (strategy_id or "")
        self.version = version
        self.state = {} if state is None else state
        self.schema_version = schema_version
        self._checksum: str | None = checksum or _seed_checksum(self.state)
        self._stored: Any = None
        self._created_at: datetime | None = created_at or datetime.now(UTC)
        self.loaded_from = loaded_from

    @property
    def checksum(self) -> str:
        """The seed's checksum of the state."""
        if self._checksum is None:
            self._checksum = _seed_checksum(self._stored.state)
        return self._checksum

    @checksum.setter
    def checksum(self, value: str) -> None:
        self._checksum = value

    @property
    def created_at(self) -> datetime:
        """When this version was written (UTC)."""
        if self._created_at is None:
            self._created_at = self._stored.updated_at
        return self._created_at

    @created_at.setter
    def created_at(self, value: datetime) -> None:
        self._created_at = value

    @property
    def strategy_id(self) -> str:
        """The seed's older name for ``deployment_id``."""
        return self.deployment_id

    def _calculate_checksum(self) -> str:
        return _seed_checksum(self.state or {})

    def verify_checksum(self) -> bool:
        """Whether ``checksum`` matches ``state`` (the seed's algorithm)."""
        return self.checksum == self._calculate_checksum()

    def to_dict(self) -> dict[str, Any]:
        """The seed's serialization."""
        return {
            "deployment_id": self.deployment_id,
            "version": self.version,
            "state": self.state,
            "schema_version": self.schema_version,
            "checksum": self.checksum,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "loaded_from": self.loaded_from.name if self.loaded_from else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StateData":
        """Reads :meth:`to_dict`'s form (``strategy_id`` accepted for ``deployment_id``)."""
        created = data.get("created_at")
        loaded = data.get("loaded_from")
        return cls(
            deployment_id=data.get("deployment_id") or data.get("strategy_id") or "",
            version=int(data.get("version", 0)),
            state=dict(data.get("state") or {}),
            schema_version=int(data.get("schema_version", 1)),
            checksum=data.get("checksum", ""),
            created_at=datetime.fromisoformat(created) if created else None,
            loaded_from=StateTier[loaded] if loaded else None,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StateData):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return (
            f"StateData(deployment_id={self.deployment_id!r}, version={self.version}, "
            f"schema_version={self.schema_version}, loaded_from={self.loaded_from})"
        )

    @classmethod
    def _of(cls, s: Any) -> "StateData":
        d = cls.__new__(cls)
        d.deployment_id = s.deployment_id
        d.version = s.version
        d.state = s.state
        d.schema_version = s.schema_version
        d._checksum = None
        d._stored = s
        d._created_at = None
        d.loaded_from = StateTier.HOT if s.loaded_from == "HOT" else StateTier.WARM
        return d


@dataclass
class TierMetrics:
    """One tier operation, as the seed records it."""

    tier: StateTier
    operation: str
    latency_ms: float
    success: bool
    error: str | None = None
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))


class StateManager:
    """Tiered state (HOT in-process, WARM SQLite or PostgreSQL) with compare-and-swap saves,
    as the seed's, on tierstate: durable on return, checksummed, exact under contention."""

    def __init__(self, config: StateManagerConfig | None = None, warm_backend: Any = None) -> None:
        self.config = config or StateManagerConfig()
        self._given = warm_backend
        self._store: Store | None = None

    # ----- lifecycle -----

    async def initialize(self) -> None:
        """Opens the store (creating or upgrading it); with ``load_state_on_startup``, fills
        HOT from WARM."""
        if self._store is not None:
            return
        if isinstance(self._given, SQLiteStore):
            url = _sqlite_url(self._given.config.db_path)
        elif isinstance(self._given, Store):
            self._store = self._given
            return
        else:
            url = self.config.url()
        self._store = await _in_pool(_open, url, hot=self.config.enable_hot)
        if self.config.load_state_on_startup and self.config.enable_hot:
            for d in await _in_pool(self._store.deployments):
                await _in_pool(self._store.load, d)

    async def close(self) -> None:
        """Closes the store, releasing its file."""
        if self._store is not None:
            await _in_pool(self._store.close)
            self._store = None

    @property
    def is_initialized(self) -> bool:
        """Whether :meth:`initialize` has run."""
        return self._store is not None

    @property
    def warm_backend_type(self) -> WarmBackendType | None:
        """SQLITE or POSTGRESQL, or None without a WARM tier."""
        if not self.config.enable_warm:
            return None
        if self._store is not None:
            return WarmBackendType.POSTGRESQL if self._store.backend == "postgres" else WarmBackendType.SQLITE
        return self.config.warm_backend

    @property
    def warm_backend(self) -> Store | None:
        """The tierstate store underneath (None before :meth:`initialize`)."""
        return self._store

    async def _ready(self) -> Store:
        if self._store is None:
            await self.initialize()
        assert self._store is not None
        return self._store

    # ----- states -----

    async def load_state(self, deployment_id: str) -> StateData:
        """The state from the fastest tier; :class:`StateNotFoundError` if there is none. A
        HOT hit, or a read of an embedded file, returns at once; a PostgreSQL read runs on a
        thread, not on the event loop."""
        store = self._store or await self._ready()
        s = store._load_fast(deployment_id)
        if s is _POOL:
            s = await _in_pool(store.load, deployment_id)
        if self.config.metrics_callback is not None:
            self._callback()
        if s is None:
            raise StateNotFoundError(deployment_id)
        return StateData._of(s)

    async def save_state(self, state: StateData, expected_version: int | None = None) -> StateData:
        """Saves ``state``: over ``expected_version`` (by default ``state.version - 1`` when
        ``state.version > 1``), or as the first version. Returns the stored state with its new
        version. Unlike the seed, a first save over an existing state is a
        :class:`StateConflictError`, never a silent overwrite."""
        store = await self._ready()
        if expected_version is None and state.version > 1:
            expected_version = state.version - 1
        try:
            if expected_version is None:
                s = await _in_pool(store.create, state.deployment_id, state.state or {})
            else:
                s = await _in_pool(store.update, state.deployment_id, expected_version, state.state or {})
        except ConflictError as e:
            raise StateConflictError(
                state.deployment_id, expected_version or 0, e.actual if e.actual is not None else 0, str(e)
            ) from e
        except TierstateError as e:
            if type(e).__name__ == "AlreadyExistsError":
                raise StateConflictError(state.deployment_id, 0, getattr(e, "actual", 0) or 0, str(e)) from e
            raise
        finally:
            self._callback()
        return StateData._of(s)

    async def delete_state(self, deployment_id: str) -> bool:
        """Deletes the state and its history from every tier; True if there was one."""
        store = await self._ready()
        return await _in_pool(store.delete, deployment_id)

    def invalidate_hot_cache(self, deployment_id: str | None = None) -> None:
        """Drops one deployment (or all) from HOT."""
        if self._store is not None:
            self._store.invalidate(deployment_id)

    # ----- metrics -----

    def get_metrics(self, limit: int = 100) -> list[TierMetrics]:
        """Recent tier operations, newest first."""
        if self._store is None:
            return []
        return [_tier_metric(m) for m in self._store.metrics(limit)]

    def get_metrics_summary(self) -> dict[str, Any]:
        """Per tier: operations, successes, success rate and average, max and min latency of
        the successful ones (ms), as the seed's; plus p50 and p99."""
        out: dict[str, Any] = {}
        if self._store is None:
            return out
        records = [_tier_metric(m) for m in self._store.metrics(1_000_000)]
        native = self._store.metrics_summary()
        for tier in StateTier:
            mine = [m for m in records if m.tier == tier]
            if not mine:
                continue
            ok = [m.latency_ms for m in mine if m.success]
            out[tier.name] = {
                "total_operations": len(mine),
                "successful_operations": len(ok),
                "success_rate": len(ok) / len(mine),
                "avg_latency_ms": sum(ok) / len(ok) if ok else 0,
                "max_latency_ms": max(ok, default=0),
                "min_latency_ms": min(ok, default=0),
                "p50_latency_ms": native.get(tier.name, {}).get("p50_ms"),
                "p99_latency_ms": native.get(tier.name, {}).get("p99_ms"),
            }
        return out

    def clear_metrics(self) -> None:
        """Forgets the recorded operations."""
        if self._store is not None:
            self._store.clear_metrics()

    def _callback(self) -> None:
        cb = self.config.metrics_callback
        if cb is not None and self._store is not None:
            for m in self._store.metrics(1):
                cb(_tier_metric(m))


def _tier_metric(m: dict[str, Any]) -> TierMetrics:
    outcome = m["outcome"]
    return TierMetrics(
        tier=StateTier[m["tier"]],
        operation=m["op"],
        latency_ms=m["latency_us"] / 1000.0,
        success=outcome in ("ok", "hit", "miss", "notfound"),
        error=None if outcome in ("ok", "hit", "miss", "notfound") else outcome,
    )


class SQLiteStore:
    """The seed's store level: one SQLite file, with its own ``initialize``, ``get``,
    ``save(state, expected_version)``, ``delete``, listing and ``close``."""

    def __init__(self, config: SQLiteConfig | SQLiteConfigLight | None = None) -> None:
        self.config = config or SQLiteConfig()
        self._store: Store | None = None

    async def initialize(self) -> None:
        """Opens (creating) the file."""
        if self._store is None:
            self._store = await _in_pool(_open, _sqlite_url(self.config.db_path), hot=False)

    async def _ready(self) -> Store:
        await self.initialize()
        assert self._store is not None
        return self._store

    async def get(self, deployment_id: str) -> StateData | None:
        """The stored state, or None."""
        s = await _in_pool((await self._ready()).load, deployment_id)
        return None if s is None else StateData._of(s)

    async def save(self, state: StateData, expected_version: int | None = None) -> bool:
        """Saves over ``expected_version`` (None: the first save). True on success."""
        store = await self._ready()
        try:
            if expected_version is None:
                await _in_pool(store.create, state.deployment_id, state.state or {})
            else:
                await _in_pool(store.update, state.deployment_id, expected_version, state.state or {})
        except ConflictError as e:
            raise StateConflictError(state.deployment_id, expected_version or 0, e.actual or 0, str(e)) from e
        except TierstateError as e:
            if type(e).__name__ == "AlreadyExistsError":
                raise StateConflictError(state.deployment_id, 0, getattr(e, "actual", 0) or 0, str(e)) from e
            raise
        return True

    async def delete(self, deployment_id: str) -> bool:
        """Deletes the state and its history; True if there was one."""
        return await _in_pool((await self._ready()).delete, deployment_id)

    async def list_deployments(self) -> list[str]:
        """Every deployment holding a state."""
        return await _in_pool((await self._ready()).deployments)

    list_strategies = list_deployments

    async def get_version_history(self, deployment_id: str, limit: int = 10) -> list[StateData]:
        """Retained versions, newest first."""
        return [StateData._of(s) for s in await _in_pool((await self._ready()).history, deployment_id, limit)]

    async def close(self) -> None:
        """Closes the file."""
        if self._store is not None:
            await _in_pool(self._store.close)
            self._store = None


__all__ = [
    "PostgresConfig",
    "SQLiteConfig",
    "SQLiteConfigLight",
    "SQLiteStore",
    "StateConflictError",
    "StateData",
    "StateManager",
    "StateManagerConfig",
    "StateNotFoundError",
    "StateTier",
    "TierMetrics",
    "WarmBackendType",
]


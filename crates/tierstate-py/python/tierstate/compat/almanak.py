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
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum, IntEnum, auto
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import quote

from .. import _POOL, Store, _in_pool
from .. import open as _open
from ..errors import AlreadyExistsError, ConflictError, NotFoundError


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


class ValueConfidence(Enum):
    """How far a portfolio value can be trusted, as the seed's."""

    HIGH = "HIGH"
    ESTIMATED = "ESTIMATED"
    STALE = "STALE"
    UNAVAILABLE = "UNAVAILABLE"


# The seed's four words on tierstate's scale, and back.
_CONFIDENCE_TO = {"HIGH": "high", "ESTIMATED": "medium", "STALE": "low", "UNAVAILABLE": "unavailable"}
_CONFIDENCE_FROM = {v: ValueConfidence(k) for k, v in _CONFIDENCE_TO.items()}


@dataclass
class PortfolioSnapshot:
    """The portfolio at one instant, as the seed's (``Decimal`` money)."""

    timestamp: datetime
    deployment_id: str
    total_value_usd: Decimal
    available_cash_usd: Decimal
    value_confidence: ValueConfidence | None = None
    error: str | None = None
    positions: list[Any] = field(default_factory=list)
    wallet_balances: list[Any] = field(default_factory=list)
    token_prices: dict[str, dict] = field(default_factory=dict)
    deployed_capital_usd: Decimal = Decimal("0")
    wallet_total_value_usd: Decimal = Decimal("0")
    chain: str = ""
    iteration_number: int = 0
    snapshot_metadata: dict[str, Any] = field(default_factory=dict)
    cycle_id: str = ""
    execution_mode: str = ""

    def _record(self) -> dict[str, Any]:
        """tierstate's snapshot record: the seed's other fields kept in ``extra``."""
        def plain(v: Any) -> Any:
            if hasattr(v, "to_dict"):
                return v.to_dict()
            if hasattr(v, "__dataclass_fields__"):
                import dataclasses

                return dataclasses.asdict(v)
            return v

        extra: dict[str, Any] = {
            "deployed_capital_usd": self.deployed_capital_usd,
            "wallet_total_value_usd": self.wallet_total_value_usd,
            "iteration_number": self.iteration_number,
        }
        for k, v in [
            ("error", self.error),
            ("chain", self.chain),
            ("token_prices", self.token_prices),
            ("wallet_balances", [plain(b) for b in self.wallet_balances]),
            ("snapshot_metadata", self.snapshot_metadata),
        ]:
            if v:
                extra[k] = v
        if not self.execution_mode:
            extra["execution_mode"] = ""
        conf = self.value_confidence.value if self.value_confidence else "HIGH"
        return {
            "time": self.timestamp,
            "total_value": self.total_value_usd,
            "available_cash": self.available_cash_usd,
            "value_confidence": _CONFIDENCE_TO[conf],
            "positions": [],
            "legacy_positions": [plain(p) for p in self.positions] if self.positions else None,
            "cycle_id": self.cycle_id or None,
            "execution_mode": (self.execution_mode or "live").lower(),
            "flows": None,
            "extra": extra,
        }

    @classmethod
    def _of(cls, deployment_id: str, r: dict[str, Any]) -> "PortfolioSnapshot":
        extra = r.get("extra") or {}
        cash = r["available_cash"]
        return cls(
            timestamp=r["time"],
            deployment_id=deployment_id,
            total_value_usd=r["total_value"],
            available_cash_usd=cash if isinstance(cash, Decimal) else Decimal("0"),
            value_confidence=_CONFIDENCE_FROM.get(r["value_confidence"]),
            error=extra.get("error"),
            positions=list(r.get("legacy_positions") or []),
            wallet_balances=list(extra.get("wallet_balances") or []),
            token_prices=dict(extra.get("token_prices") or {}),
            deployed_capital_usd=Decimal(str(extra.get("deployed_capital_usd", "0"))),
            wallet_total_value_usd=Decimal(str(extra.get("wallet_total_value_usd", "0"))),
            chain=extra.get("chain", ""),
            iteration_number=int(extra.get("iteration_number", 0)),
            snapshot_metadata=dict(extra.get("snapshot_metadata") or {}),
            cycle_id=r.get("cycle_id") or "",
            execution_mode=extra.get("execution_mode", r["execution_mode"]),
        )


@dataclass
class PortfolioMetrics:
    """A deployment's PnL baseline, as the seed's (``None`` total value: unmeasured)."""

    deployment_id: str
    timestamp: datetime
    total_value_usd: Decimal | None
    initial_value_usd: Decimal
    deposits_usd: Decimal | None = Decimal("0")
    withdrawals_usd: Decimal | None = Decimal("0")
    gas_spent_usd: Decimal = Decimal("0")
    positions_json: str = "[]"
    cycle_id: str | None = None
    execution_mode: str = ""
    is_complete: bool = True

    def _record(self, initial_time: datetime) -> dict[str, Any]:
        return {
            "initial_value": self.initial_value_usd,
            "initial_time": initial_time,
            "deposits": self.deposits_usd or Decimal("0"),
            "withdrawals": self.withdrawals_usd or Decimal("0"),
            "gas_spent": self.gas_spent_usd,
            "last_total_value": "unmeasured" if self.total_value_usd is None else self.total_value_usd,
            "positions": json.loads(self.positions_json or "[]"),
            "cycle_id": self.cycle_id,
            "execution_mode": (self.execution_mode or "live").lower(),
            "updated_at": self.timestamp,
        }

    @classmethod
    def _of(cls, deployment_id: str, r: dict[str, Any]) -> "PortfolioMetrics":
        total = r["last_total_value"]
        return cls(
            deployment_id=deployment_id,
            timestamp=r["updated_at"],
            total_value_usd=None if total == "unmeasured" else total,
            initial_value_usd=r["initial_value"],
            deposits_usd=r["deposits"],
            withdrawals_usd=r["withdrawals"],
            gas_spent_usd=r["gas_spent"],
            positions_json=json.dumps(r["positions"]),
            cycle_id=r.get("cycle_id"),
            execution_mode=r["execution_mode"],
        )


def _text_decimal(v: str) -> Decimal | None:
    return Decimal(v) if v not in ("", None) else None


def _json_text(v: str) -> Any:
    return json.loads(v) if v else None


@dataclass
class LedgerEntry:
    """One action on a chain or venue, as the seed's ``LedgerEntry`` (amounts as decimal
    text; tierstate stores them as exact decimals)."""

    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    cycle_id: str = ""
    deployment_id: str = ""
    execution_mode: str = ""
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))
    intent_type: str = ""
    token_in: str = ""
    amount_in: str = ""
    token_out: str = ""
    amount_out: str = ""
    effective_price: str = ""
    slippage_bps: float | None = None
    gas_used: int = 0
    gas_usd: str = ""
    tx_hash: str = ""
    chain: str = ""
    protocol: str = ""
    success: bool = True
    error: str = ""
    extracted_data_json: str = ""
    price_inputs_json: str = ""
    pre_state_json: str = ""
    post_state_json: str = ""

    def _record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "cycle_id": self.cycle_id or None,
            "deployment_id": self.deployment_id,
            "execution_mode": (self.execution_mode or "live").lower(),
            "time": self.timestamp,
            "intent_type": self.intent_type,
            "token_in": self.token_in or None,
            "amount_in": _text_decimal(self.amount_in),
            "token_out": self.token_out or None,
            "amount_out": _text_decimal(self.amount_out),
            "effective_price": _text_decimal(self.effective_price),
            # The seed keeps slippage as a float: its shortest text, exactly.
            "slippage_bps": None if self.slippage_bps is None else Decimal(repr(float(self.slippage_bps))),
            "gas_used": self.gas_used,
            "gas_usd": _text_decimal(self.gas_usd),
            "tx_hash": self.tx_hash or None,
            "chain": self.chain or None,
            "protocol": self.protocol or None,
            "success": self.success,
            "error": self.error or None,
            "retry_of": None,
            "extracted_data": _json_text(self.extracted_data_json),
            "price_inputs": _json_text(self.price_inputs_json),
            "pre_state": _json_text(self.pre_state_json),
            "post_state": _json_text(self.post_state_json),
        }

    @classmethod
    def _of(cls, r: dict[str, Any]) -> "LedgerEntry":
        text = lambda v: "" if v is None else str(v)  # noqa: E731
        js = lambda v: "" if v is None else json.dumps(v)  # noqa: E731
        return cls(
            id=r["id"],
            cycle_id=r.get("cycle_id") or "",
            deployment_id=r["deployment_id"],
            execution_mode=r["execution_mode"],
            timestamp=r["time"],
            intent_type=r["intent_type"],
            token_in=text(r.get("token_in")),
            amount_in=text(r.get("amount_in")),
            token_out=text(r.get("token_out")),
            amount_out=text(r.get("amount_out")),
            effective_price=text(r.get("effective_price")),
            slippage_bps=None if r.get("slippage_bps") is None else float(r["slippage_bps"]),
            gas_used=r.get("gas_used") or 0,
            gas_usd=text(r.get("gas_usd")),
            tx_hash=text(r.get("tx_hash")),
            chain=text(r.get("chain")),
            protocol=text(r.get("protocol")),
            success=r["success"],
            error=text(r.get("error")),
            extracted_data_json=js(r.get("extracted_data")),
            price_inputs_json=js(r.get("price_inputs")),
            pre_state_json=js(r.get("pre_state")),
            post_state_json=js(r.get("post_state")),
        )


@dataclass
class TierMetrics:
    """One tier operation, as the seed records it."""

    tier: StateTier
    operation: str
    latency_ms: float
    success: bool
    error: str | None = None
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class MigrationStateRow:
    """A migration-state row, as the seed's ``get_migration_state`` returns it (``notes``
    parsed)."""

    deployment_id: str
    primitive: str
    cutover_key: str
    position_registry_backfill_complete: bool
    backfill_started_at: str | None
    backfill_completed_at: str | None
    backfill_source_table: str
    backfill_reader_version: int
    rows_synthesized: int
    rows_skipped_already_present: int
    notes: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    updated_at: str = ""


#: The collection migration-state rows are kept in (one document per primitive and cutover
#: key, in the deployment's records).
_MIGRATION_STATE = "migration_state"


def _migration_key(primitive: str, cutover_key: str) -> str:
    # The parts are joined with a character neither can hold unescaped.
    return quote(primitive, safe="") + "/" + quote(cutover_key, safe="")


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
            s = await _cas(store, state, expected_version)
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

    # ----- portfolio -----

    async def save_portfolio_snapshot(self, snapshot: PortfolioSnapshot) -> int:
        """Saves a snapshot (the same one again changes nothing; another at the same time
        replaces it, as the seed's upsert does). Returns its write sequence number."""
        store = await self._ready()
        kind, seq = await _in_pool(store.snapshot_save, snapshot.deployment_id, snapshot._record(), True)
        if seq is None:
            stored = await _in_pool(store.snapshot_at, snapshot.deployment_id, snapshot.timestamp)
            return 0 if stored is None else 1
        return seq

    async def get_latest_snapshot(self, deployment_id: str) -> PortfolioSnapshot | None:
        """The newest snapshot, or None."""
        r = await _in_pool((await self._ready()).snapshot_latest, deployment_id)
        return None if r is None else PortfolioSnapshot._of(deployment_id, r)

    async def get_first_snapshot(self, deployment_id: str) -> PortfolioSnapshot | None:
        """The oldest snapshot, or None."""
        r = await _in_pool((await self._ready()).snapshot_first, deployment_id)
        return None if r is None else PortfolioSnapshot._of(deployment_id, r)

    async def get_recent_snapshots(self, deployment_id: str, limit: int = 168) -> list[PortfolioSnapshot]:
        """The newest ``limit`` snapshots, newest first (as the seed returns them)."""
        rows = await _in_pool((await self._ready()).snapshots_recent, deployment_id, limit)
        return [PortfolioSnapshot._of(deployment_id, r) for r in reversed(rows)]

    async def get_snapshots_since(
        self, deployment_id: str, since: datetime, limit: int = 168
    ) -> list[PortfolioSnapshot]:
        """Snapshots at or after ``since``, oldest first, at most ``limit``."""
        rows = await _in_pool((await self._ready()).snapshots, deployment_id, since, None)
        return [PortfolioSnapshot._of(deployment_id, r) for r in rows[:limit]]

    async def get_snapshots_in_window(
        self,
        deployment_id: str,
        from_ts: datetime | None,
        to_ts: datetime | None,
        scan_cap: int = 200_000,
    ) -> tuple[list[PortfolioSnapshot], bool]:
        """Snapshots with ``from_ts <= time <= to_ts`` (either open), oldest first, and whether
        ``scan_cap`` cut the list."""
        rows = await _in_pool((await self._ready()).snapshots, deployment_id, from_ts, to_ts)
        snaps = [PortfolioSnapshot._of(deployment_id, r) for r in rows[:scan_cap]]
        return snaps, len(rows) > scan_cap

    async def get_snapshot_at(self, deployment_id: str, timestamp: datetime) -> PortfolioSnapshot | None:
        """The snapshot at or before ``timestamp``, or None."""
        r = await _in_pool((await self._ready()).snapshot_at, deployment_id, timestamp)
        return None if r is None else PortfolioSnapshot._of(deployment_id, r)

    async def get_nav_series(
        self,
        deployment_id: str,
        *,
        since: tuple[datetime, int] | None = None,
        scan_cap: int = 200_000,
    ) -> tuple[
        list[tuple[datetime, str | None, str | None, int, str | None, ValueConfidence | None]],
        bool,
    ]:
        """The NAV components of every snapshot, oldest first, and whether ``scan_cap`` cut
        them: ``(time, total value text, available cash text, id, positions JSON text,
        confidence)`` per snapshot. The id is the snapshot's time in microseconds (a
        deployment holds one snapshot per time). Without ``since``, the newest ``scan_cap``
        are kept; with ``since=(time, id)``, only snapshots after that cursor, the oldest
        ``scan_cap`` of them. Unlike the seed, a damaged store raises instead of returning
        ``([], False)``."""
        if scan_cap <= 0:
            raise ValueError(f"scan_cap must be positive, got {scan_cap}")
        start = since[0] if since is not None else None
        rows = await _in_pool((await self._ready()).snapshots, deployment_id, start, None)

        def ident(r: dict[str, Any]) -> int:
            return (r["time"] - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)

        if since is not None:
            cursor = (since[0], since[1])
            rows = [r for r in rows if (r["time"], ident(r)) > cursor]
            cut, rows = len(rows) > scan_cap, rows[:scan_cap]
        else:
            cut, rows = len(rows) > scan_cap, rows[-scan_cap:]

        def text(v: Any) -> str | None:
            # An unmeasured amount is None, never "0": the caller tells empty from zero.
            return str(v) if isinstance(v, Decimal) else None

        out = []
        for r in rows:
            s = PortfolioSnapshot._of(deployment_id, r)
            positions = json.dumps(s.positions, default=str) if s.positions else None
            out.append(
                (
                    r["time"],
                    text(r["total_value"]),
                    text(r["available_cash"]),
                    ident(r),
                    positions,
                    s.value_confidence,
                )
            )
        return out, cut

    async def cleanup_old_snapshots(self, retention_days: int = 7) -> int:
        """Removes portfolio snapshots older than ``retention_days`` days (every deployment's,
        as the seed's does); returns how many went. Each deployment keeps its lifetime NAV
        fold, so its high-water mark and drawdown survive the cleanup."""
        return await _in_pool((await self._ready()).cleanup_old_snapshots, retention_days)

    async def upsert_migration_state(self, *, deployment_id: str, primitive: str, cutover_key: str) -> None:
        """Creates the migration-state row at its baseline (backfill not complete) unless it
        exists: idempotent, as the seed's."""
        now = datetime.now(UTC).isoformat()
        row = {
            "deployment_id": deployment_id,
            "primitive": primitive,
            "cutover_key": cutover_key,
            "position_registry_backfill_complete": False,
            "backfill_started_at": None,
            "backfill_completed_at": None,
            "backfill_source_table": "position_events",
            "backfill_reader_version": 1,
            "rows_synthesized": 0,
            "rows_skipped_already_present": 0,
            "notes": {},
            "created_at": now,
            "updated_at": now,
        }
        store = await self._ready()
        key = _migration_key(primitive, cutover_key)
        try:
            await _in_pool(store.document_put, deployment_id, _MIGRATION_STATE, key, row)
        except AlreadyExistsError:
            pass

    async def get_migration_state(
        self, *, deployment_id: str, primitive: str, cutover_key: str
    ) -> MigrationStateRow | None:
        """The migration-state row, or None when it has not been created."""
        store = await self._ready()
        key = _migration_key(primitive, cutover_key)
        doc = await _in_pool(store.document, deployment_id, _MIGRATION_STATE, key)
        return None if doc is None else MigrationStateRow(**doc["value"])

    async def update_migration_state(
        self,
        *,
        deployment_id: str,
        primitive: str,
        cutover_key: str,
        backfill_started_at: str | None = None,
        rows_synthesized: int | None = None,
        rows_skipped_already_present: int | None = None,
    ) -> None:
        """Sets the given fields of an existing row (the others are kept), over the version
        read: a concurrent update is re-read and applied again, never lost. Unlike the seed
        (whose UPDATE matches nothing), a row never created raises ``StateNotFoundError``."""
        await self._change_migration_state(
            deployment_id,
            primitive,
            cutover_key,
            backfill_started_at=backfill_started_at,
            rows_synthesized=rows_synthesized,
            rows_skipped_already_present=rows_skipped_already_present,
        )

    async def mark_backfill_complete(
        self,
        *,
        deployment_id: str,
        primitive: str,
        cutover_key: str,
        rows_synthesized: int,
        rows_skipped_already_present: int,
        backfill_completed_at: str,
    ) -> None:
        """Marks the row's backfill complete with its counts and completion time."""
        await self._change_migration_state(
            deployment_id,
            primitive,
            cutover_key,
            position_registry_backfill_complete=True,
            rows_synthesized=rows_synthesized,
            rows_skipped_already_present=rows_skipped_already_present,
            backfill_completed_at=backfill_completed_at,
        )

    async def _change_migration_state(
        self, deployment_id: str, primitive: str, cutover_key: str, **fields: Any
    ) -> None:
        store = await self._ready()
        key = _migration_key(primitive, cutover_key)

        async def attempt() -> None:
            doc = await _in_pool(store.document, deployment_id, _MIGRATION_STATE, key)
            if doc is None:
                raise StateNotFoundError(
                    deployment_id, f"{deployment_id}: no migration state {primitive}/{cutover_key}"
                )
            row = dict(doc["value"])
            row.update({k: v for k, v in fields.items() if v is not None})
            row["updated_at"] = datetime.now(UTC).isoformat()
            await _in_pool(store.document_put, deployment_id, _MIGRATION_STATE, key, row, doc["version"])

        await _until_saved(deployment_id, "migration state", attempt)

    async def save_portfolio_metrics(self, metrics: PortfolioMetrics) -> bool:
        """Saves the metrics (over what is stored: a lost race is retried, never lost)."""
        store = await self._ready()

        async def attempt() -> None:
            got = await _in_pool(store.metrics_load, metrics.deployment_id)
            initial = got[0]["initial_time"] if got else metrics.timestamp
            expected = got[1] if got else None
            await _in_pool(store.metrics_save, metrics.deployment_id, metrics._record(initial), expected)

        await _until_saved(metrics.deployment_id, "portfolio metrics", attempt)
        return True

    async def get_portfolio_metrics(self, deployment_id: str) -> PortfolioMetrics | None:
        """The stored metrics, or None."""
        got = await _in_pool((await self._ready()).metrics_load, deployment_id)
        return None if got is None else PortfolioMetrics._of(deployment_id, got[0])

    # ----- ledger -----

    async def save_ledger_entry(self, entry: LedgerEntry) -> None:
        """Records an entry; the same entry again changes nothing, another with its id is an
        error (an entry is never overwritten)."""
        store = await self._ready()
        await _in_pool(store.ledger_append, entry.deployment_id, entry._record())

    async def get_ledger_entries(
        self,
        deployment_id: str,
        since: datetime | None = None,
        intent_type: str | None = None,
        limit: int = 100,
        before: datetime | None = None,
    ) -> list[LedgerEntry]:
        """The newest entries first, optionally since a time, before a time, of one intent
        type."""
        store = await self._ready()
        want = limit if before is None else limit * 4 + 100
        while True:
            rows = await _in_pool(store.ledger_entries, deployment_id, want, since, intent_type)
            kept = [r for r in rows if before is None or r["time"] < before]
            if len(kept) >= limit or len(rows) < want:
                return [LedgerEntry._of(r) for r in kept[:limit]]
            want *= 4

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


async def _until_saved(deployment_id: str, what: str, attempt: Callable[[], Awaitable[None]]) -> None:
    """Runs ``attempt`` (a read, then a compare-and-swap over what it read) until it lands: a
    lost race (another writer saved meanwhile) reads again, up to 16 times in all."""
    for _ in range(16):
        try:
            await attempt()
            return
        except (ConflictError, AlreadyExistsError):
            continue
    raise StateConflictError(deployment_id, 0, 0, f"{what}: too many concurrent saves")


async def _cas(store: Store, state: StateData, expected_version: int | None) -> Any:
    """The seed's save on the store: over ``expected_version``, or the first version (None).
    Either losing race is the seed's :class:`StateConflictError`, with both versions."""
    try:
        if expected_version is None:
            return await _in_pool(store.create, state.deployment_id, state.state or {})
        return await _in_pool(store.update, state.deployment_id, expected_version, state.state or {})
    except ConflictError as e:
        actual = e.actual if e.actual is not None else 0
        raise StateConflictError(state.deployment_id, expected_version or 0, actual, str(e)) from e
    except AlreadyExistsError as e:
        raise StateConflictError(state.deployment_id, 0, e.actual or 0, str(e)) from e


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
        await _cas(await self._ready(), state, expected_version)
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
    "LedgerEntry",
    "PortfolioMetrics",
    "PortfolioSnapshot",
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
    "ValueConfidence",
    "WarmBackendType",
]


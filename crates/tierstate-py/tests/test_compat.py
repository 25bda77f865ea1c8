"""Seed 000's StateManager API on tierstate (`tierstate.compat.almanak`), on every backend."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tierstate import ConflictError, NotFoundError
from tierstate.compat.almanak import (
    PostgresConfig,
    SQLiteConfig,
    SQLiteConfigLight,
    SQLiteStore,
    StateConflictError,
    StateData,
    StateManager,
    StateManagerConfig,
    StateNotFoundError,
    StateTier,
    TierMetrics,
    WarmBackendType,
)

from conftest import url_for

ROOT = Path(__file__).resolve().parents[3]


def config_for(backend: str, tmp_path) -> StateManagerConfig:
    if backend == "postgres":
        return StateManagerConfig(database_url=url_for("postgres", tmp_path))
    if backend == "redb":
        return StateManagerConfig(database_url=url_for("redb", tmp_path))
    return StateManagerConfig(
        warm_backend=WarmBackendType.SQLITE,
        sqlite_config=SQLiteConfigLight(db_path=str(tmp_path / "state.db")),
    )


@pytest.fixture(params=["sqlite", "redb", "postgres"])
def config(request, tmp_path):
    return config_for(request.param, tmp_path)


def test_the_seeds_usage_example_runs(config):
    async def main():
        manager = StateManager(config)
        await manager.initialize()
        state = StateData(deployment_id="strat-1", version=1, state={"key": "value"})
        saved = await manager.save_state(state)
        assert saved.version == 1 and saved.verify_checksum()
        loaded = await manager.load_state("strat-1")
        assert loaded.state == {"key": "value"} and loaded.loaded_from == StateTier.HOT
        loaded.state["key"] = "new_value"
        again = await manager.save_state(loaded, expected_version=loaded.version)
        assert again.version == 2
        # The seed's own rule: version N with no expected version saves over N - 1.
        again.version = 3
        again.state["key"] = "third"
        assert (await manager.save_state(again)).version == 3
        with pytest.raises(StateConflictError) as e:
            await manager.save_state(loaded, expected_version=1)
        assert (e.value.deployment_id, e.value.expected_version, e.value.actual_version) == (
            "strat-1",
            1,
            3,
        )
        assert isinstance(e.value, ConflictError)
        # Deliberately different: a first save over an existing state is a conflict.
        with pytest.raises(StateConflictError):
            await manager.save_state(StateData(deployment_id="strat-1", version=1, state={}))
        manager.invalidate_hot_cache("strat-1")
        assert (await manager.load_state("strat-1")).loaded_from == StateTier.WARM
        manager.invalidate_hot_cache()
        with pytest.raises(StateNotFoundError) as nf:
            await manager.load_state("nobody")
        assert isinstance(nf.value, LookupError) and isinstance(nf.value, NotFoundError)
        assert await manager.delete_state("strat-1") is True
        with pytest.raises(StateNotFoundError):
            await manager.load_state("strat-1")
        metrics = manager.get_metrics(5)
        assert metrics and all(isinstance(m, TierMetrics) for m in metrics)
        summary = manager.get_metrics_summary()
        assert {"total_operations", "success_rate", "avg_latency_ms"} <= set(summary["WARM"])
        manager.clear_metrics()
        assert manager.get_metrics() == []
        await manager.close()

    asyncio.run(main())


def test_state_data_as_the_seed_has_it():
    s = StateData(strategy_id="old-name", version=2, state={"b": 1, "a": [1.5, "x"]})
    assert s.deployment_id == "old-name" and s.strategy_id == "old-name"
    assert s.verify_checksum()
    d = s.to_dict()
    back = StateData.from_dict(d)
    assert back.state == s.state and back.checksum == s.checksum and back.version == 2
    back.state["b"] = 2
    assert not back.verify_checksum()
    assert StateData.from_dict({"strategy_id": "x", "version": 1, "state": {}}).deployment_id == "x"


def test_database_paths_as_the_seed_accepts_them(tmp_path):
    async def one(path: str) -> int:
        m = StateManager(
            StateManagerConfig(warm_backend=WarmBackendType.SQLITE, sqlite_config=SQLiteConfigLight(db_path=path))
        )
        await m.initialize()
        s = await m.save_state(StateData(deployment_id="d", version=1, state={"n": 1}))
        await m.close()
        return s.version

    assert asyncio.run(one(":memory:")) == 1
    fd, empty = tempfile.mkstemp(dir=tmp_path, suffix=".db")
    os.close(fd)
    assert asyncio.run(one(empty)) == 1, "an empty file opens as a new database"
    deep = tmp_path / "a" / "b" / "c.db"
    assert asyncio.run(one(str(deep))) == 1 and deep.exists()


def test_the_store_level(tmp_path):
    async def main():
        store = SQLiteStore(SQLiteConfig(db_path=str(tmp_path / "s.db")))
        await store.initialize()
        assert await store.get("a") is None
        assert await store.save(StateData(deployment_id="a", version=1, state={"n": 1}))
        assert await store.save(StateData(deployment_id="a", version=2, state={"n": 2}), expected_version=1)
        with pytest.raises(StateConflictError):
            await store.save(StateData(deployment_id="a", version=2, state={"n": 3}), expected_version=1)
        assert (await store.get("a")).state == {"n": 2}
        assert await store.list_deployments() == ["a"]
        assert [s.version for s in await store.get_version_history("a")] == [2, 1]
        assert await store.delete("a")
        await store.close()
        m = StateManager(StateManagerConfig(warm_backend=WarmBackendType.SQLITE), warm_backend=SQLiteStore(
            SQLiteConfig(db_path=str(tmp_path / "s.db"))))
        await m.initialize()
        assert m.warm_backend_type == WarmBackendType.SQLITE
        await m.close()

    asyncio.run(main())


def test_postgres_settings_become_a_url():
    assert PostgresConfig(host="db", password="p@ss", database="x").url() == "postgres://postgres:p%40ss@db:5432/x"


def test_a_seed_000_strategy_runs_by_changing_only_its_import(tmp_path):
    example = ROOT / "examples" / "python" / "seed000_strategy.py"
    text = example.read_text()
    assert "from tierstate.compat.almanak import" in text
    r = subprocess.run(
        [sys.executable, str(example), str(tmp_path / "strategy.db")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "ticks: 20, version: 21" in r.stdout, r.stdout


def test_portfolio_snapshots_and_metrics_as_the_seed_has_them(config):
    from datetime import datetime, timedelta, timezone
    from decimal import Decimal

    from tierstate.compat.almanak import PortfolioMetrics, PortfolioSnapshot, ValueConfidence

    t0 = datetime(2026, 11, 1, 10, tzinfo=timezone.utc)

    def snap(i: int, **kw) -> PortfolioSnapshot:
        return PortfolioSnapshot(
            timestamp=t0 + timedelta(hours=i),
            deployment_id="strat-1",
            total_value_usd=Decimal("1000.000000000000000001") + i,
            available_cash_usd=Decimal("400.5"),
            **kw,
        )

    async def main():
        m = StateManager(config)
        await m.initialize()
        first = snap(
            0,
            value_confidence=ValueConfidence.ESTIMATED,
            positions=[{"symbol": "ETH", "value_usd": "599.5"}],
            token_prices={"arbitrum:0xeth": {"price_usd": "2398"}},
            deployed_capital_usd=Decimal("599.5"),
            chain="arbitrum",
            iteration_number=3,
            cycle_id="c1",
        )
        assert await m.save_portfolio_snapshot(first) >= 1
        for i in range(1, 4):
            await m.save_portfolio_snapshot(snap(i, execution_mode="paper"))
        back = await m.get_first_snapshot("strat-1")
        assert back == first, (back, first)
        latest = await m.get_latest_snapshot("strat-1")
        assert latest.total_value_usd == Decimal("1003.000000000000000001")
        assert latest.execution_mode == "paper"
        recent = await m.get_recent_snapshots("strat-1", limit=2)
        assert [s.timestamp for s in recent] == [t0 + timedelta(hours=3), t0 + timedelta(hours=2)]
        since = await m.get_snapshots_since("strat-1", t0 + timedelta(hours=2))
        assert len(since) == 2
        window, cut = await m.get_snapshots_in_window("strat-1", None, t0 + timedelta(hours=2), scan_cap=2)
        assert (len(window), cut) == (2, True)
        at = await m.get_snapshot_at("strat-1", t0 + timedelta(hours=1, minutes=30))
        assert at.timestamp == t0 + timedelta(hours=1)
        # The seed's save replaces a snapshot at the same time.
        await m.save_portfolio_snapshot(snap(3, execution_mode="paper", chain="base"))
        assert (await m.get_latest_snapshot("strat-1")).chain == "base"

        assert await m.get_portfolio_metrics("strat-1") is None
        pm = PortfolioMetrics(
            deployment_id="strat-1",
            timestamp=t0,
            total_value_usd=None,
            initial_value_usd=Decimal("1000"),
            deposits_usd=Decimal("50"),
            gas_spent_usd=Decimal("1.25"),
            execution_mode="paper",
        )
        assert await m.save_portfolio_metrics(pm)
        got = await m.get_portfolio_metrics("strat-1")
        assert (got.total_value_usd, got.deposits_usd, got.gas_spent_usd) == (None, Decimal("50"), Decimal("1.25"))
        pm.total_value_usd = Decimal("1010.5")
        assert await m.save_portfolio_metrics(pm)
        assert (await m.get_portfolio_metrics("strat-1")).total_value_usd == Decimal("1010.5")
        await m.close()

    asyncio.run(main())


def test_nav_series_and_snapshot_cleanup_as_the_seed_has_them(config):
    from datetime import datetime, timedelta, timezone
    from decimal import Decimal

    from tierstate.compat.almanak import PortfolioSnapshot, ValueConfidence

    now = datetime.now(timezone.utc).replace(microsecond=0)
    # Ten snapshots an hour apart, the oldest 20 days ago, then six in the last six hours.
    times = [now - timedelta(days=20) + timedelta(hours=i) for i in range(10)]
    times += [now - timedelta(hours=6 - i) for i in range(6)]

    async def main():
        m = StateManager(config)
        await m.initialize()
        for i, t in enumerate(times):
            await m.save_portfolio_snapshot(
                PortfolioSnapshot(
                    timestamp=t,
                    deployment_id="strat-1",
                    total_value_usd=Decimal("1000.10") + i,
                    available_cash_usd=Decimal("250.50"),
                    value_confidence=ValueConfidence.HIGH if i % 2 else ValueConfidence.ESTIMATED,
                )
            )
        rows, cut = await m.get_nav_series("strat-1")
        assert (len(rows), cut) == (16, False)
        assert [r[0] for r in rows] == times, "oldest first"
        assert rows[3][1:3] == ("1003.10", "250.50"), "raw text, scale kept"
        assert rows[0][5] == ValueConfidence.ESTIMATED and rows[1][5] == ValueConfidence.HIGH
        ids = [r[3] for r in rows]
        assert ids == sorted(ids) and len(set(ids)) == 16
        # The newest scan_cap without a cursor; the oldest scan_cap after one, and no gap.
        newest, cut = await m.get_nav_series("strat-1", scan_cap=4)
        assert (newest, cut) == (rows[-4:], True)
        after, cut = await m.get_nav_series("strat-1", since=(rows[5][0], rows[5][3]), scan_cap=4)
        assert (after, cut) == (rows[6:10], True)
        rest, cut = await m.get_nav_series("strat-1", since=(after[-1][0], after[-1][3]))
        assert (rest, cut) == (rows[10:], False)
        with pytest.raises(ValueError):
            await m.get_nav_series("strat-1", scan_cap=0)
        # Cleanup removes the ten older than a week and keeps the lifetime fold.
        assert await m.cleanup_old_snapshots(retention_days=7) == 10
        rows, _ = await m.get_nav_series("strat-1")
        assert [r[0] for r in rows] == times[10:]
        assert await m.cleanup_old_snapshots(retention_days=7) == 0
        await m.close()

    asyncio.run(main())


def test_migration_state_as_the_seed_has_it(config):
    from tierstate.compat.almanak import MigrationStateRow, StateNotFoundError

    async def main():
        m = StateManager(config)
        await m.initialize()
        ids = dict(deployment_id="strat-1", primitive="univ3/lp", cutover_key="2026&q4")
        assert await m.get_migration_state(**ids) is None
        await m.upsert_migration_state(**ids)
        first = await m.get_migration_state(**ids)
        assert isinstance(first, MigrationStateRow)
        assert (first.position_registry_backfill_complete, first.rows_synthesized) == (False, 0)
        assert (first.backfill_source_table, first.backfill_reader_version, first.notes) == ("position_events", 1, {})
        # Idempotent: a second upsert changes nothing.
        await m.upsert_migration_state(**ids)
        assert await m.get_migration_state(**ids) == first
        await m.update_migration_state(**ids, backfill_started_at="2026-12-07T10:00:00+00:00", rows_synthesized=5)
        got = await m.get_migration_state(**ids)
        assert (got.backfill_started_at, got.rows_synthesized, got.rows_skipped_already_present) == (
            "2026-12-07T10:00:00+00:00",
            5,
            0,
        )
        # Concurrent updates of different fields are both kept.
        await asyncio.gather(
            m.update_migration_state(**ids, rows_synthesized=7),
            m.update_migration_state(**ids, rows_skipped_already_present=3),
        )
        got = await m.get_migration_state(**ids)
        assert (got.rows_synthesized, got.rows_skipped_already_present) == (7, 3)
        await m.mark_backfill_complete(
            **ids, rows_synthesized=9, rows_skipped_already_present=4, backfill_completed_at="2026-12-07T11:00:00+00:00"
        )
        done = await m.get_migration_state(**ids)
        assert done.position_registry_backfill_complete and done.rows_synthesized == 9
        assert done.backfill_completed_at == "2026-12-07T11:00:00+00:00"
        assert done.backfill_started_at == "2026-12-07T10:00:00+00:00", "kept"
        # Another primitive is another row; a row never created is not updated silently.
        other = dict(ids, primitive="univ3")
        assert await m.get_migration_state(**other) is None
        with pytest.raises(StateNotFoundError):
            await m.update_migration_state(**other, rows_synthesized=1)
        await m.close()

    asyncio.run(main())


def test_the_ledger_as_the_seed_has_it(config):
    from datetime import datetime, timedelta, timezone

    from tierstate.compat.almanak import LedgerEntry

    t0 = datetime(2026, 11, 1, 10, tzinfo=timezone.utc)

    def entry(i: int) -> LedgerEntry:
        return LedgerEntry(
            id=f"tx-{i}",
            cycle_id=f"c{i}",
            deployment_id="strat-1",
            execution_mode="paper",
            timestamp=t0 + timedelta(minutes=i),
            intent_type="SWAP" if i % 2 else "LP_OPEN",
            token_in="USDC",
            amount_in="599.500000000000000001",
            token_out="ETH",
            amount_out="0.25",
            effective_price="2398",
            slippage_bps=-1.5,
            gas_used=120000,
            gas_usd="0.42",
            extracted_data_json='{"fee": "0.3"}',
        )

    async def main():
        m = StateManager(config)
        await m.initialize()
        for i in range(6):
            await m.save_ledger_entry(entry(i))
        await m.save_ledger_entry(entry(0))  # the same again: nothing changes
        newest = await m.get_ledger_entries("strat-1", limit=3)
        assert [e.id for e in newest] == ["tx-5", "tx-4", "tx-3"]
        assert newest[0] == entry(5), (newest[0], entry(5))
        swaps = await m.get_ledger_entries("strat-1", intent_type="SWAP")
        assert [e.id for e in swaps] == ["tx-5", "tx-3", "tx-1"]
        since = await m.get_ledger_entries("strat-1", since=t0 + timedelta(minutes=4))
        assert [e.id for e in since] == ["tx-5", "tx-4"]
        before = await m.get_ledger_entries("strat-1", before=t0 + timedelta(minutes=2), limit=5)
        assert [e.id for e in before] == ["tx-1", "tx-0"]
        await m.close()

    asyncio.run(main())

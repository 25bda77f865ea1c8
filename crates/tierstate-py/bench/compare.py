"""The same operations through tierstate's drop-in (`tierstate.compat.almanak`) and through
almanak 2.29.2's `almanak.framework.state`, in one run, on SQLite: p50 per operation and the
ratio. Run by `cargo xtask bench-python` (which installs both into a venv under target/).

    python compare.py [--quick]
"""

from __future__ import annotations

import asyncio
import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

QUICK = "--quick" in sys.argv


def n(full: int) -> int:
    return max(full // 5, 10) if QUICK else full


def state_of(size: int, salt: int) -> dict:
    filler = "x" * max(size - 64, 0)
    return {"n": 0, "salt": salt, "pad": filler}


async def p50(ops: int, fn) -> float:
    lat = []
    for i in range(ops):
        t = time.perf_counter_ns()
        await fn(i)
        lat.append(time.perf_counter_ns() - t)
    return statistics.median(lat) / 1000.0  # µs


async def run(mod_name: str, root: Path) -> dict[str, object]:
    m = importlib.import_module(mod_name)
    out: dict[str, object] = {}

    def manager(path: Path, startup: bool = False):
        cfg = m.StateManagerConfig(
            warm_backend=m.WarmBackendType.SQLITE,
            sqlite_config=m.SQLiteConfigLight(db_path=str(path)),
            load_state_on_startup=startup,
        )
        return m.StateManager(cfg)

    mgr = manager(root / "a.db")
    await mgr.initialize()

    async def cas_series(dep: str, size: int, ops: int) -> float:
        await mgr.save_state(m.StateData(deployment_id=dep, version=1, state=state_of(size, 0)))
        cur = await mgr.load_state(dep)

        async def one(i: int) -> None:
            nonlocal cur
            st = state_of(size, i + 1)
            cur = await mgr.save_state(
                m.StateData(deployment_id=dep, version=cur.version + 1, state=st),
                expected_version=cur.version,
            )

        return await p50(ops, one)

    out["CAS 1 KiB (durable)"] = await cas_series("cas1k", 1024, n(300))
    out["CAS 64 KiB (durable)"] = await cas_series("cas64k", 64 * 1024, n(100))

    await mgr.save_state(m.StateData(deployment_id="hot", version=1, state=state_of(1024, 0)))
    await mgr.load_state("hot")

    async def hot(_: int) -> None:
        await mgr.load_state("hot")

    out["HOT load 1 KiB"] = await p50(n(20_000), hot)

    async def warm(_: int) -> None:
        mgr.invalidate_hot_cache("hot")
        await mgr.load_state("hot")

    out["WARM load 1 KiB"] = await p50(n(2_000), warm)

    # 8 tasks x 200 increments of one counter, each a read and a compare-and-swap, retried on
    # conflict: the count must be exact.
    await mgr.save_state(m.StateData(deployment_id="ctr", version=1, state={"n": 0}))
    per = n(200)

    async def worker() -> None:
        for _ in range(per):
            while True:
                s = await mgr.load_state("ctr")
                nxt = dict(s.state)
                nxt["n"] = nxt["n"] + 1
                try:
                    await mgr.save_state(
                        m.StateData(deployment_id="ctr", version=s.version + 1, state=nxt),
                        expected_version=s.version,
                    )
                    break
                except m.StateConflictError:
                    await asyncio.sleep(0)

    t = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(8)))
    took = time.perf_counter() - t
    mgr.invalidate_hot_cache("ctr")
    final = (await mgr.load_state("ctr")).state["n"]
    out["8 x increments: count (want)"] = f"{final} ({8 * per})"
    out["8 x increments: seconds"] = round(took, 3)

    # A strategy tick as a seed-000 strategy writes it: the state (CAS), a portfolio snapshot and
    # three ledger entries, one call each (the seed's metrics row needs baseline provenance).
    from datetime import datetime, timedelta, timezone
    from decimal import Decimal

    if mod_name.startswith("almanak"):
        # The seed keeps its records beside the state package.
        from almanak.framework.observability.ledger import LedgerEntry
        from almanak.framework.portfolio.models import PortfolioSnapshot
    else:
        LedgerEntry, PortfolioSnapshot = m.LedgerEntry, m.PortfolioSnapshot

    t0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
    await mgr.save_state(m.StateData(deployment_id="tick", version=1, state=state_of(1024, 0)))
    tick_state = await mgr.load_state("tick")

    async def tick(i: int) -> None:
        nonlocal tick_state
        at = t0 + timedelta(seconds=i)
        tick_state = await mgr.save_state(
            m.StateData(deployment_id="tick", version=tick_state.version + 1, state=state_of(1024, i)),
            expected_version=tick_state.version,
        )
        await mgr.save_portfolio_snapshot(
            PortfolioSnapshot(
                timestamp=at,
                deployment_id="tick",
                total_value_usd=Decimal("100000.25") + i,
                available_cash_usd=Decimal("40000.5"),
            )
        )
        for j in range(3):
            await mgr.save_ledger_entry(
                LedgerEntry(
                    id=f"tx-{i}-{j}",
                    cycle_id=f"c{i}",
                    deployment_id="tick",
                    execution_mode="paper",
                    timestamp=at,
                    intent_type="SWAP",
                    token_in="USDC",
                    amount_in="250.5",
                    token_out="ETH",
                    amount_out="0.1",
                    effective_price="2505",
                )
            )

    out["strategy tick: state, snapshot, 3 ledger entries (5 calls)"] = await p50(n(200), tick)
    await mgr.close()

    # Startup: a manager over 1,000 states, loading them into HOT.
    many = manager(root / "many.db")
    await many.initialize()
    for i in range(n(1000)):
        await many.save_state(m.StateData(deployment_id=f"d{i:04}", version=1, state=state_of(1024, i)))
    await many.close()
    t = time.perf_counter()
    again = manager(root / "many.db", startup=True)
    await again.initialize()
    out[f"startup with {n(1000)} states (ms)"] = round((time.perf_counter() - t) * 1000, 1)
    await again.close()
    return out


def main() -> None:
    results = {}
    for name, mod in [("tierstate", "tierstate.compat.almanak"), ("almanak", "almanak.framework.state")]:
        try:
            importlib.import_module(mod)
        except ImportError as e:
            print(f"{name}: skipped ({e})")
            continue
        with tempfile.TemporaryDirectory() as d:
            results[name] = asyncio.run(run(mod, Path(d)))
    rows = list(next(iter(results.values())).keys()) if results else []
    print(f"| operation | tierstate | almanak 2.29.2 | almanak / tierstate |")
    print("|---|---|---|---|")
    for r in rows:
        ours = results.get("tierstate", {}).get(r)
        theirs = results.get("almanak", {}).get(r)
        ratio = (
            f"{theirs / ours:.1f}x"
            if isinstance(ours, (int, float)) and isinstance(theirs, (int, float)) and ours
            else "-"
        )
        unit = " µs" if ("CAS" in r or "load" in r or "tick" in r) else ""
        fmt = lambda v: f"{v:.1f}{unit}" if isinstance(v, float) else str(v)  # noqa: E731
        print(f"| {r} | {fmt(ours)} | {fmt(theirs)} | {ratio} |")
    try:
        import tierstate

        with tempfile.TemporaryDirectory() as d:
            s = tierstate.open(f"sqlite:{d}/h.db")
            s.create("h", state_of(1024, 0))
            s.load("h")
            ops = n(200_000)
            t = time.perf_counter_ns()
            for _ in range(ops):
                s.load("h")
            py = (time.perf_counter_ns() - t) / ops
            rust = s._native._bench_hot_hits("h", ops)
            print(f"\nHOT hit through Python {py:.0f} ns, the same hit in Rust {rust:.0f} ns: {py / rust:.1f}x")
            # The tick as tierstate's own API writes it: one transaction (state, 3 trades, 20
            # positions, 4 metrics).
            from datetime import datetime, timedelta, timezone
            from decimal import Decimal

            t0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
            positions = [
                {"id": f"p{k}", "chain": "sim", "type": "token", "token": "ETH", "amount": Decimal("1.5"),
                 "value_usd": Decimal("3750"), "created_at": t0, "updated_at": t0, "metadata": {}}
                for k in range(20)
            ]
            lat = []
            v = None
            for i in range(n(300)):
                trades = [
                    {"trade_id": f"t{i}-{j}", "time": t0 + timedelta(seconds=i), "symbol": "ETH-USD",
                     "side": "buy", "price": Decimal("2500.5"), "size": Decimal("0.1"), "fee": Decimal("0.01")}
                    for j in range(3)
                ]
                t = time.perf_counter_ns()
                v = s.strategy_tick(
                    "tick", state_of(1024, i), expected=v, time=t0 + timedelta(seconds=i),
                    trades=trades, positions=positions,
                    metrics={"nav": 1e5 + i, "dd": 0.01, "pos": 1.5, "mid": 2500.5},
                )[0]
                lat.append(time.perf_counter_ns() - t)
            print(f"strategy tick through the native API, one transaction (state, 3 trades, 20 positions, "
                  f"4 metrics): p50 {statistics.median(lat) / 1000:.0f} µs")
            s.close()
    except AttributeError:
        pass


if __name__ == "__main__":
    main()

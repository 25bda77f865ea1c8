"""The strategy tick and the orders domain through the native API, on every backend: one
tick in one transaction (replayed exactly), intents beside the venue's orders, and the
reconciliation engine against the simulated venue."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

import tierstate

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def trade(n: int, side: str = "buy") -> dict:
    return {
        "trade_id": f"t{n}",
        "time": T0 + timedelta(seconds=n),
        "symbol": "ETH-USD",
        "side": side,
        "price": Decimal("2500.25"),
        "size": Decimal("0.10"),
        "fee": Decimal("0.0125"),
        "position_id": None,
    }


def position(amount: str) -> dict:
    return {
        "id": "eth",
        "chain": "sim",
        "type": "token",
        "protocol": None,
        "token": "ETH",
        "amount": Decimal(amount),
        "value_usd": Decimal(amount) * 2500,
        "created_at": T0,
        "updated_at": T0,
        "metadata": {},
    }


def intent(intent_id: str, price: str, side: str = "buy") -> dict:
    return {
        "intent_id": intent_id,
        "deployment_id": "bot",
        "spec": {
            "symbol": "ETH-USD",
            "side": side,
            "kind": "limit",
            "price": Decimal(price),
            "size": Decimal("0.25"),
            "tif": "gtc",
        },
        "oco_group": None,
        "revision": 1,
        "status": "active",
        "updated_at": T0,
    }


def test_a_tick_commits_state_trades_positions_and_metrics_once(url):
    with tierstate.open(url) as s:
        v, new, replayed = s.strategy_tick(
            "bot",
            {"tick": 1},
            expected=None,
            time=T0,
            trades=[trade(1), trade(2, "sell")],
            positions=[position("0.50")],
            metrics={"nav": 100_000.5, "inventory": 0.5},
        )
        assert (v, new, replayed) == (1, 2, 0)
        assert s.load("bot").state == {"tick": 1}
        got = s.strategy_trades("bot")
        assert [t["trade_id"] for t in got] == ["t1", "t2"]
        assert got[0]["price"] == Decimal("2500.25") and isinstance(got[0]["fee"], Decimal)
        assert got[0]["time"] == T0 + timedelta(seconds=1)
        when, value = s.strategy_latest_metric("bot", "nav")
        assert (when, value) == (T0, 100_000.5)
        assert s.strategy_latest_metric("bot", "never") is None
        # The next tick follows version 1; a stale one is a conflict and writes nothing.
        assert s.strategy_tick("bot", {"tick": 2}, expected=1, time=T0 + timedelta(seconds=5))[0] == 2
        with pytest.raises(tierstate.ConflictError):
            s.strategy_tick("bot", {"tick": 3}, expected=1, time=T0, trades=[trade(3)])
        assert len(s.strategy_trades("bot")) == 2
        # A float where money goes is refused by its path, before anything is written.
        bad = trade(4)
        bad["price"] = 2500.25
        with pytest.raises(tierstate.InvalidInputError, match="price"):
            s.strategy_tick("bot", {"tick": 3}, expected=2, time=T0, trades=[bad])
        with pytest.raises(tierstate.InvalidInputError, match="finite"):
            s.strategy_tick("bot", {"tick": 3}, expected=2, time=T0, metrics={"x": float("nan")})
        assert s.load("bot").version == 2


def test_intents_reconcile_against_the_simulated_venue(url, tmp_path):
    venue = tierstate.SimVenue(str(tmp_path / "venue.json"))
    with tierstate.open(url) as s:
        bid = s.intent_create("bot", intent("q-bid", "2499.50"))
        assert bid["version"] == 1 and bid["spec"]["price"] == Decimal("2499.50")
        assert s.intent_create("bot", intent("q-bid", "2499.50"))["version"] == 1, "a retry"
        s.intent_create("bot", intent("q-ask", "2501.00", "sell"))
        assert [i["intent_id"] for i in s.intents("bot")] == ["q-ask", "q-bid"]
        # The engine places both, exactly once each.
        placed = s.reconcile("bot", venue)
        assert sorted(placed["actions"]) == [("place", "q-ask"), ("place", "q-bid")], placed
        assert placed["errors"] == []
        assert len(venue.client_orders()) == 2
        assert {o["intent_id"] for o in s.actual_orders("bot")} == {"q-ask", "q-bid"}
        # A market maker sells into the bid: the fill is synced, the intent is done.
        venue.maker("ETH-USD", "sell", Decimal("2499.50"), Decimal("0.25"))
        synced = s.reconcile("bot", venue)
        assert ("sync", "q-bid") in synced["actions"], synced
        filled = {o["intent_id"]: o for o in s.actual_orders("bot")}["q-bid"]
        assert filled["status"] == "filled"
        assert sum(f["size"] for f in filled["fills"]) == Decimal("0.25")
        # Moving the ask beyond the tolerance modifies it; withdrawing it cancels it.
        ask = {i["intent_id"]: i for i in s.intents("bot")}["q-ask"]
        moved = {k: v for k, v in ask.items() if k != "version"}
        moved["spec"] = dict(moved["spec"], price=Decimal("2510.00"))
        moved["revision"] = ask["revision"] + 1
        s.intent_update("bot", moved, ask["version"])
        with pytest.raises(tierstate.ConflictError):
            s.intent_update("bot", moved, ask["version"])
        assert ("modify", "q-ask") in s.reconcile("bot", venue, Decimal("0.5"))["actions"]
        assert s.intent_delete("bot", "q-ask") is True
        assert ("cancel", "q-ask") in s.reconcile("bot", venue)["actions"]
        assert s.intent_delete("bot", "nobody") is False
        assert s.reconcile("bot", venue)["actions"] == [], "settled"
        assert len(venue.client_orders()) == 2, "never placed twice"


def test_async_twins_of_the_trading_calls(tmp_path):
    async def main():
        s = await tierstate.open_async(f"sqlite:{tmp_path / 'a.db'}")
        v = await s.strategy_tick_async("bot", {"n": 1}, expected=None, time=T0, trades=[trade(1)])
        assert v == (1, 1, 0)
        await s.intent_create_async("bot", intent("a", "100"))
        assert [i["intent_id"] for i in await s.intents_async("bot")] == ["a"]
        s.close()

    asyncio.run(main())

"""The native API on every backend: states, versions, errors with attributes, exact values
across the boundary, async twins, and process safety (exit with calls in flight, fork,
close and reopen)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

import tierstate
from tierstate import (
    AlreadyExistsError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    TierstateError,
)


def test_states_have_versions_history_and_compare_and_swap(url):
    with tierstate.open(url) as s:
        assert s.load("a") is None
        v1 = s.create("a", {"cash": Decimal("1000.000000000000000000000001"), "n": 1})
        assert (v1.deployment_id, v1.version, v1.schema_version) == ("a", 1, 1)
        assert v1.state == {"cash": "1000.000000000000000000000001", "n": 1}
        assert len(v1.checksum) == 64
        assert v1.updated_at.tzinfo is not None
        v2 = s.update("a", 1, {"n": 2})
        assert v2.version == 2
        loaded = s.load("a")
        assert (loaded.version, loaded.state, loaded.loaded_from) == (2, {"n": 2}, "HOT")
        s.invalidate("a")
        assert s.load("a").loaded_from == "WARM"
        assert [h.version for h in s.history("a")] == [2, 1]
        assert s.load_version("a", 1).state["n"] == 1
        assert s.overwrite("a", {"n": 3}).version == 3
        assert s.deployments() == ["a"]
        assert s.delete("a") is True
        assert s.delete("a") is False
        assert s.load("a") is None


def test_errors_carry_what_happened(url):
    with tierstate.open(url) as s:
        s.create("a", {"n": 1})
        with pytest.raises(ConflictError) as e:
            s.update("a", 7, {"n": 2})
        assert (e.value.deployment_id, e.value.expected, e.value.actual) == ("a", 7, 1)
        with pytest.raises(ConflictError) as e:
            s.update("nobody", 1, {"n": 2})
        assert e.value.actual is None
        with pytest.raises(AlreadyExistsError) as e:
            s.create("a", {"n": 9})
        assert e.value.actual == 1
        assert issubclass(NotFoundError, LookupError)
        with pytest.raises(InvalidInputError) as e:
            s.create("", {"n": 1})
        assert isinstance(e.value, ValueError) and isinstance(e.value, TierstateError)
        assert s.load("a").state == {"n": 1}, "nothing changed"


@pytest.mark.parametrize(
    "bad, path",
    [
        ({"a": {1, 2}}, "$.a"),
        ({"a": [1, {"b": float("nan")}]}, "$.a[1].b"),
        ({"a": {1: "x"}}, "$.a"),
        ({"big": 2**70}, "$.big"),
        ({"t": datetime(2026, 1, 1)}, "$.t"),
        ({"d": Decimal("NaN")}, "$.d"),
        ({"o": object()}, "$.o"),
    ],
)
def test_unsupported_values_are_refused_by_path(tmp_path, bad, path):
    with tierstate.open(f"sqlite:{tmp_path / 't.db'}") as s:
        with pytest.raises(InvalidInputError) as e:
            s.create("a", bad)
        assert f"{path}:" in str(e.value), str(e.value)
        assert s.load("a") is None


def test_decimals_are_exact_and_floats_refused():
    assert tierstate.roundtrip(Decimal("0.1000000000000000000000000001")) == Decimal(
        "0.1000000000000000000000000001"
    )
    assert str(tierstate.roundtrip(Decimal("-12.500"))) == "-12.500", "scale kept"
    with pytest.raises(InvalidInputError, match="float"):
        tierstate.roundtrip(0.1)
    with pytest.raises(InvalidInputError, match="refused rather than rounded"):
        tierstate.roundtrip(Decimal("1.00000000000000000000000000001"))
    with pytest.raises(InvalidInputError):
        tierstate.roundtrip(Decimal("Infinity"))


def test_datetimes_of_any_offset_are_utc_and_naive_ones_refused():
    t = datetime(2026, 3, 1, 12, 30, 0, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    back = tierstate.roundtrip(t)
    assert back == t and back.utcoffset() == timedelta(0)
    with pytest.raises(InvalidInputError, match="naive"):
        tierstate.roundtrip(datetime(2026, 3, 1))


try:
    from hypothesis import example, given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - the venv pins it
    given = None

if given is not None:
    json_values = st.recursive(
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**63), max_value=2**64 - 1)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text()
        | st.decimals(allow_nan=False, allow_infinity=False, places=8, min_value=-(10**12), max_value=10**12),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=20,
    )

    def same(given, back):
        """Equal, with floats bit for bit and a Decimal as text of the same value and scale
        (keys come back sorted, as the canonical form stores them)."""
        if isinstance(given, Decimal):
            assert isinstance(back, str)
            assert Decimal(back) == given and Decimal(back).as_tuple().exponent == given.as_tuple().exponent
        elif isinstance(given, float):
            assert isinstance(back, float) and back.hex() == given.hex()
        elif isinstance(given, list):
            assert isinstance(back, list) and len(back) == len(given)
            for g, b in zip(given, back):
                same(g, b)
        elif isinstance(given, dict):
            assert isinstance(back, dict) and sorted(back) == sorted(given)
            for k in given:
                same(given[k], back[k])
        else:
            assert type(back) is type(given) and back == given

    @settings(max_examples=300, deadline=None, print_blob=True)
    @given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
    def test_dicts_round_trip_exactly(state):
        same(state, tierstate.roundtrip(state))

    @settings(max_examples=300, deadline=None, print_blob=True)
    @given(st.decimals(allow_nan=False, allow_infinity=False))
    @example(Decimal("3.928609941559578409670E-8"))  # scale 29: the trailing zero is dropped
    def test_decimals_round_trip_or_are_refused(d):
        try:
            back = tierstate.roundtrip(d)
        except InvalidInputError:
            return  # more digits than a Decimal holds: refused, never rounded
        assert back == d, "the value is exact"
        # The scale is kept too, except trailing zeros beyond what a Decimal holds (28 digits,
        # scale 28): only those may be dropped.
        t, b = d.as_tuple(), back.as_tuple()
        if d != 0 and len(t.digits) <= 28 and -t.exponent <= 28:
            assert b.exponent == t.exponent, (d, back)
        assert b.exponent >= t.exponent or d == 0, (d, back)


def test_async_twins_count_exactly_under_contention(url):
    async def main():
        s = await tierstate.open_async(url)
        await s.create_async("c", {"n": 0})

        async def worker():
            for _ in range(25):
                while True:
                    cur = await s.load_async("c")
                    try:
                        await s.update_async("c", cur.version, {"n": cur.state["n"] + 1})
                        break
                    except ConflictError:
                        continue

        await asyncio.gather(*(worker() for _ in range(8)))
        final = await s.load_async("c")
        await s.close_async()
        return final

    final = asyncio.run(main())
    assert final.state["n"] == 200 and final.version == 201


def test_close_releases_the_file_so_it_reopens_in_this_process(tmp_path):
    for url in (f"sqlite:{tmp_path / 'x.db'}", f"redb:{tmp_path / 'x.redb'}"):
        s = tierstate.open(url)
        s.create("a", {"n": 1})
        s.close()
        again = tierstate.open(url)
        assert again.load("a").state == {"n": 1}
        again.close()


def test_metrics_are_recorded_per_tier(tmp_path):
    with tierstate.open(f"sqlite:{tmp_path / 't.db'}") as s:
        s.create("a", {"n": 1})
        s.load("a")
        s.load("a")
        recent = s.metrics(10)
        assert any(m["tier"] == "WARM" and m["outcome"] == "ok" for m in recent), recent
        summary = s.metrics_summary()
        # Every HOT hit is counted (one in 64 is also timed into the recent list).
        assert summary["HOT"]["hits"] == 2 and summary["WARM"]["ok"] >= 1, summary
        s.clear_metrics()
        assert s.metrics(10) == []


EXIT_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys, tierstate
    url = sys.argv[1]
    async def main():
        s = await tierstate.open_async(url)
        await s.create_async("x", {"n": 0})
        tasks = [asyncio.ensure_future(s.overwrite_async("x", {"n": i})) for i in range(200)]
        await asyncio.sleep(0.005)
        sys.exit(0)  # leave with writes in flight
    asyncio.run(main())
    """
)


def test_exit_with_calls_in_flight_neither_crashes_nor_hangs(tmp_path):
    for i in range(8):
        url = f"sqlite:{tmp_path / f'e{i}.db'}"
        r = subprocess.run(
            [sys.executable, "-c", EXIT_SCRIPT, url], capture_output=True, text=True, timeout=60
        )
        assert r.returncode == 0, r.stderr
        assert "panicked" not in r.stderr and "Fatal" not in r.stderr, r.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_is_refused_with_the_remedy(tmp_path):
    s = tierstate.open(f"sqlite:{tmp_path / 't.db'}")
    s.create("a", {"n": 1})
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            s.load("a")
            os.write(w, b"loaded")
        except TierstateError as e:
            os.write(w, str(e).encode())
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    said = os.read(r, 4096).decode()
    assert "spawn" in said, said
    assert s.load("a").version == 1, "the parent goes on"
    s.close()


def entry(i: int, amount: str) -> dict:
    return {
        "id": f"tx-{i}",
        "deployment_id": "mm-1",
        "execution_mode": "paper",
        "time": datetime(2026, 11, 1, 10, i, tzinfo=timezone.utc),
        "intent_type": "SWAP",
        "token_in": "USDC",
        "amount_in": Decimal(amount),
        "gas_usd": Decimal("0.42"),
        "success": True,
    }


def test_the_ledger_is_exact_and_idempotent(url):
    with tierstate.open(url) as s:
        assert s.ledger_append("mm-1", entry(1, "599.500000000000000001")) == ("appended", 1)
        assert s.ledger_append("mm-1", entry(1, "599.500000000000000001")) == ("duplicate", 1)
        with pytest.raises(AlreadyExistsError):
            s.ledger_append("mm-1", entry(1, "1"))  # the same id with other content
        s.ledger_append("mm-1", entry(2, "0.1"))
        newest = s.ledger_entries("mm-1")
        assert [e["id"] for e in newest] == ["tx-2", "tx-1"]
        assert newest[1]["amount_in"] == Decimal("599.500000000000000001")
        assert newest[1]["time"] == datetime(2026, 11, 1, 10, 1, tzinfo=timezone.utc)
        stats = s.ledger_stats("mm-1")
        assert (stats["count"], stats["gas_usd"]) == (2, Decimal("0.84"))
        assert stats["volume"]["USDC"] == Decimal("599.600000000000000001")
        with pytest.raises(InvalidInputError):
            s.ledger_append("mm-1", {**entry(3, "1"), "amount_in": 0.1})  # a float
        with pytest.raises(InvalidInputError, match="unknown field"):
            s.ledger_append("mm-1", {**entry(3, "1"), "colour": "red"})


def test_documents_are_versioned_and_checked(url):
    with tierstate.open(url) as s:
        assert s.document("d-1", "notes", "a/b c") is None
        first = s.document_put("d-1", "notes", "a/b c", {"n": 1, "price": Decimal("2500.10")})
        # A free-form value keeps a Decimal as its exact text, as a state does.
        assert first["version"] == 1 and first["value"] == {"n": 1, "price": "2500.10"}
        with pytest.raises(tierstate.AlreadyExistsError):
            s.document_put("d-1", "notes", "a/b c", {"n": 2})
        second = s.document_put("d-1", "notes", "a/b c", {"n": 2}, expected=1)
        assert second["version"] == 2 and second["created_at"] == first["created_at"]
        with pytest.raises(tierstate.ConflictError) as e:
            s.document_put("d-1", "notes", "a/b c", {"n": 3}, expected=1)
        assert (e.value.expected, e.value.actual) == (1, 2)
        assert s.document_put("d-1", "notes", "a/b c", {"n": 4}, overwrite=True)["version"] == 3
        assert s.document("d-1", "notes", "a/b c")["value"] == {"n": 4}
        with pytest.raises(tierstate.InvalidInputError):
            s.document_put("d-1", "bad collection!", "k", {"n": 1})
        with pytest.raises(tierstate.InvalidInputError):
            s.document_put("d-1", "notes", "k", {"x": float("nan")})
        assert s.document("d-1", "notes", "k") is None, "bad input changes nothing"
        assert not s.document_delete("d-1", "notes", "missing")
        assert s.document_delete("d-1", "notes", "a/b c", expected=3)
        assert s.document("d-1", "notes", "a/b c") is None

        async def twins():
            d = await s.document_put_async("d-1", "notes", "x", {"n": 1})
            assert (await s.document_async("d-1", "notes", "x"))["version"] == d["version"]
            assert await s.document_delete_async("d-1", "notes", "x")

        asyncio.run(twins())


def test_portfolio_snapshots_round_trip_exactly(url):
    with tierstate.open(url) as s:
        t = datetime(2026, 11, 1, 10, tzinfo=timezone.utc)
        snap = {
            "time": t,
            "total_value": Decimal("100000.000000000000000001"),
            "available_cash": Decimal("400.5"),
            "value_confidence": "high",
            "positions": [],
            "cycle_id": "c1",
            "execution_mode": "paper",
            "flows": None,
        }
        assert s.snapshot_save("mm-1", snap)[0] == "stored"
        assert s.snapshot_save("mm-1", snap) == ("unchanged", None)
        with pytest.raises(AlreadyExistsError):
            s.snapshot_save("mm-1", {**snap, "total_value": Decimal("1")})
        assert s.snapshot_save("mm-1", {**snap, "total_value": Decimal("1")}, upsert=True)[0] == "replaced"
        later = {**snap, "time": t + timedelta(hours=1), "available_cash": "unmeasured"}
        s.snapshot_save("mm-1", later)
        latest = s.snapshot_latest("mm-1")
        assert latest["time"] == t + timedelta(hours=1) and latest["available_cash"] == "unmeasured"
        window = s.snapshots("mm-1", start=t, end=t)
        assert [w["total_value"] for w in window] == [Decimal("1")]
        assert len(s.snapshots("mm-1")) == 2

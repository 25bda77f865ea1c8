"""`tierstate export --format parquet` read back by DuckDB and polars: every row and value the
CSV export holds, decimals exact (typed DECIMAL(38, s), never a float), times in UTC."""

import csv
import datetime
import os
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

CLI = os.environ.get("TIERSTATE_CLI")

pytestmark = pytest.mark.skipif(
    not CLI or not Path(CLI).exists(),
    reason="TIERSTATE_CLI (the tierstate binary built with --features parquet) is not set: "
    "cargo xtask test sets it",
)


def run(*args):
    out = subprocess.run([CLI, *args], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    db = f"sqlite:{d / 'demo.db'}"
    run("demo", "--db", db, "--ticks", "40", "--chart", str(d / "nav.svg"))
    run("--db", db, "export", "mm-demo", str(d / "csv"))
    run("--db", db, "export", "mm-demo", str(d / "pq"), "--format", "parquet")
    return d


def csv_rows(d, name):
    with open(d / "csv" / f"{name}.csv", newline="") as f:
        return list(csv.DictReader(f))


def same(got, want):
    """A value read from Parquet equals the CSV cell it was written from, exactly."""
    if want == "":
        return got is None
    if isinstance(got, Decimal):
        return got == Decimal(want)
    if isinstance(got, datetime.datetime):
        assert got.utcoffset() == datetime.timedelta(0)
        return got == datetime.datetime.fromisoformat(want.replace("Z", "+00:00"))
    if isinstance(got, int):
        return got == int(want)
    return got == want


@pytest.mark.parametrize("name", ["trades", "positions", "metrics", "nav", "ledger"])
def test_duckdb_reads_every_value_exactly(exports, name):
    duckdb = pytest.importorskip("duckdb", reason="duckdb is not installed (xtask pins it)")
    rel = duckdb.sql(f"SELECT * FROM read_parquet('{exports / 'pq' / (name + '.parquet')}')")
    types = dict(zip(rel.columns, [str(t) for t in rel.types]))
    assert not any(t in ("FLOAT", "DOUBLE") for t in types.values()), types
    got = rel.fetchall()
    want = csv_rows(exports, name)
    assert len(got) == len(want) > 0
    for row, w in zip(got, want):
        for col, value in zip(rel.columns, row):
            assert same(value, w[col]), (name, col, value, w[col])


def test_polars_reads_decimals_as_decimals(exports):
    pl = pytest.importorskip("polars", reason="polars is not installed (xtask pins it)")
    df = pl.read_parquet(exports / "pq" / "trades.parquet")
    assert isinstance(df.schema["price"], pl.Decimal), df.schema
    assert df.schema["time"] == pl.Datetime("us", "UTC"), df.schema
    want = csv_rows(exports, "trades")
    assert [Decimal(w["price"]) for w in want] == df["price"].to_list()
    assert [Decimal(w["fee"]) for w in want] == df["fee"].to_list()

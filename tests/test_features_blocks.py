"""Customer features in blocks of customers: the same rows as the whole population's, and the
Parquet file the ``features`` command streams them into."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from barberpro_ml.cli.main import app
from barberpro_ml.data import SimulationConfig, simulate
from barberpro_ml.errors import InputError
from barberpro_ml.features import (
    customer_blocks,
    customer_feature_blocks,
    customer_features,
    feature_arrow_schema,
    provider_review_totals,
)
from strategies import as_of_for, marketplace_data

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def simulated() -> Any:
    return simulate(SimulationConfig(n_customers=600, seed=5))


@SETTINGS
@given(st.data())
def test_blocks_concatenated_equal_the_whole_features(draw: st.DataObject) -> None:
    """Any block size (1, one that does not divide the population, more than the population)
    gives every customer the row the whole computation gives, with the same dtypes and
    categories; blocks hold ``block_customers`` customers each, in id order."""
    data = draw.draw(marketplace_data())
    as_of = draw.draw(as_of_for(data))
    whole = customer_features(data, as_of)
    size = draw.draw(st.integers(1, len(whole) + 3) if len(whole) else st.integers(1, 3))
    blocks = list(customer_feature_blocks(data, as_of, block_customers=size))
    # a population that fits one block (none signed up included) is one block
    assert [len(b) for b in blocks] == ([min(size, len(whole) - s)
                                         for s in range(0, len(whole), size)] or [0])
    pd.testing.assert_frame_equal(pd.concat(blocks), whole, check_exact=True)


def test_blocks_on_a_simulated_marketplace(simulated: Any) -> None:
    """A realistic population, a block size that does not divide it, and two windows: equal
    to the whole computation; the review totals can be given (as Spark does) or computed."""
    as_of = simulated.observation_end - pd.Timedelta(days=30)
    windows = (14, 60)
    whole = customer_features(simulated, as_of, windows=windows)
    assert len(whole) % 97 != 0
    blocked = pd.concat(customer_feature_blocks(simulated, as_of, block_customers=97,
                                                windows=windows))
    pd.testing.assert_frame_equal(blocked, whole, check_exact=True)
    given_totals = pd.concat(customer_feature_blocks(
        simulated, as_of, block_customers=250, windows=windows,
        provider_reviews=provider_review_totals(simulated.reviews, as_of)))
    pd.testing.assert_frame_equal(given_totals, whole, check_exact=True)
    # without the population's review totals a block would rate barbers from its own reviews
    first = next(customer_blocks(simulated, as_of, 97))
    alone = customer_features(first, as_of, windows=windows)
    assert not alone["main_provider_rating"].equals(
        whole.loc[alone.index, "main_provider_rating"])


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_block_size_must_be_a_positive_integer(simulated: Any, bad: Any) -> None:
    with pytest.raises(InputError, match="block_customers must be a positive integer"):
        next(customer_feature_blocks(simulated, simulated.observation_end,
                                     block_customers=bad))


def test_arrow_schema_holds_every_block_and_reads_back_as_the_features(
        simulated: Any, tmp_path: Path) -> None:
    """The declared schema holds every block (even one lacking a category, or with a column
    all NaN); the streamed file, read back with pandas, equals ``customer_features`` (index,
    dtypes, categories) once the service id is a categorical again."""
    from barberpro_ml.jobs.score import write_parquet_blocks

    as_of = simulated.observation_end
    whole = customer_features(simulated, as_of)
    schema = feature_arrow_schema()
    assert schema.names == ["customer_id", *whole.columns]
    path = tmp_path / "features.parquet"
    blocks = list(customer_feature_blocks(simulated, as_of, block_customers=3))
    assert any(b["gap_std_days"].isna().all() for b in blocks)
    assert write_parquet_blocks(blocks, schema, path) == len(whole)
    assert pq.ParquetFile(path).metadata.num_row_groups == len(blocks)
    read = pd.read_parquet(path)
    assert str(read["main_service"].dtype) == "Int64"
    pd.testing.assert_frame_equal(read.astype({"main_service": whole["main_service"].dtype}),
                                  whole, check_exact=True)


def test_features_command_streams_one_parquet_file(simulated: Any, tmp_path: Path) -> None:
    data_dir = simulated.save(tmp_path / "events")
    as_of = simulated.observation_end - pd.Timedelta(days=60)
    out = tmp_path / "out" / "features.parquet"
    result = CliRunner().invoke(app, [
        "features", "--data", str(data_dir), "--as-of", f"{as_of:%Y-%m-%d %H:%M:%S}",
        "--block-customers", "128", "--out", str(out)])
    assert result.exit_code == 0, result.output
    expected = customer_features(simulated, as_of)
    assert f"wrote {len(expected):,} customers' features" in result.output
    assert pq.ParquetFile(out).metadata.num_row_groups == -(-len(expected) // 128)
    read = pd.read_parquet(out).astype({"main_service": expected["main_service"].dtype})
    pd.testing.assert_frame_equal(read, expected, check_exact=True)
    assert not list(out.parent.glob("*.partial"))


def test_features_command_refuses_bad_input_before_work(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["features", "--data", str(tmp_path / "nothing"),
                                  "--as-of", "2024-06-30", "--out", str(tmp_path / "f.parquet")])
    assert missing.exit_code == 2 and "no event tables at" in missing.output
    folder = runner.invoke(app, ["features", "--data", str(tmp_path), "--as-of", "2024-06-30",
                                 "--out", str(tmp_path)])
    assert folder.exit_code == 2 and "is a directory" in folder.output
    zero = runner.invoke(app, ["features", "--as-of", "2024-06-30", "--block-customers", "0",
                               "--out", str(tmp_path / "f.parquet")])
    assert zero.exit_code == 2


def test_features_command_refuses_dates_outside_the_data(simulated: Any,
                                                         tmp_path: Path) -> None:
    data_dir = simulated.save(tmp_path / "events")
    out = tmp_path / "f.parquet"
    runner = CliRunner()
    late = runner.invoke(app, ["features", "--data", str(data_dir), "--as-of", "2031-01-01",
                               "--out", str(out)])
    assert late.exit_code == 2 and "after the data's last event" in late.output
    early = runner.invoke(app, ["features", "--data", str(data_dir), "--as-of", "2000-01-01",
                                "--out", str(out)])
    assert early.exit_code == 2 and "no customer had signed up yet" in early.output
    assert "Traceback" not in late.output + early.output and not out.exists()


def test_blocks_hold_only_their_customers_events(simulated: Any) -> None:
    """Each block's bookings, reviews and interventions are exactly its customers' rows, in
    the data's order; every signed-up customer is in one block."""
    as_of = simulated.observation_end
    seen = []
    for block in customer_blocks(simulated, as_of, 211):
        ids = block.customers["customer_id"].to_numpy()
        assert np.all(np.diff(ids) > 0)
        seen.append(ids)
        for name in ("bookings", "reviews", "interventions"):
            table = getattr(simulated, name)
            own = table.loc[table["customer_id"].isin(ids)]
            pd.testing.assert_frame_equal(getattr(block, name), own)
    signed = simulated.customers.loc[simulated.customers["signup_at"] <= as_of, "customer_id"]
    assert np.array_equal(np.concatenate(seen), np.sort(signed.to_numpy()))


@SETTINGS
@given(st.data())
def test_internal_blocks_of_customer_features_change_nothing(draw: st.DataObject) -> None:
    """``customer_features`` on a population of more than twice its working block goes
    through blocks of customers; with any working block size the frame is the one-pass
    frame, exactly."""
    import barberpro_ml.features.customer as customer_module

    data = draw.draw(marketplace_data())
    as_of = draw.draw(as_of_for(data))
    with pytest.MonkeyPatch.context() as m:
        m.setattr(customer_module, "WORKING_BLOCK_CUSTOMERS", 10**12)
        one_pass = customer_features(data, as_of)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(customer_module, "WORKING_BLOCK_CUSTOMERS", draw.draw(st.integers(1, 3)))
        blocked = customer_features(data, as_of)
    pd.testing.assert_frame_equal(blocked, one_pass, check_exact=True)


def test_internal_blocks_on_a_simulated_marketplace(simulated: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import barberpro_ml.features.customer as customer_module

    as_of = simulated.observation_end - pd.Timedelta(days=45)
    one_pass = customer_features(simulated, as_of)
    assert len(one_pass) <= 2 * customer_module.WORKING_BLOCK_CUSTOMERS  # one pass above
    monkeypatch.setattr(customer_module, "WORKING_BLOCK_CUSTOMERS", 41)
    pd.testing.assert_frame_equal(customer_features(simulated, as_of), one_pass,
                                  check_exact=True)


def test_id_coder_lookup_table_starts_at_the_smallest_id() -> None:
    """A block of consecutive ids far from 0 is coded by a lookup table too; ids outside
    it, on either side, are refused with examples."""
    from barberpro_ml.features._common import IdCoder

    coder = IdCoder.from_ids(np.arange(1_000_000, 1_000_050))
    assert coder._lut is not None and len(coder._lut) == 50
    assert coder.encode([1_000_049, 1_000_000, 1_000_007]).tolist() == [49, 0, 7]
    for bad in ([999_999], [1_000_050], [-5, 1_000_001]):
        with pytest.raises(InputError, match=r"1 event\(s\) refer to a customer unknown"):
            coder.encode(bad, "customer")
    sparse = IdCoder.from_ids([3, 10**9])  # not compact: binary search, same codes
    assert sparse._lut is None and sparse.encode([10**9, 3]).tolist() == [1, 0]

"""The price table: documented defaults, batch at half price, TAM_PRICES overrides and its errors."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from tam.domain.model import InvalidInput, Usage
from tam.domain.pricing import PriceTable
from tam.settings import Settings


def test_sonnet_5_5_usage_costs_the_published_rates() -> None:
    table = PriceTable("claude-sonnet-5-5")
    usage = Usage.of(
        claude_input_tokens=1_000_000,
        claude_output_tokens=1_000_000,
        claude_cache_write_tokens=1_000_000,
        claude_cache_read_tokens=1_000_000,
    )
    assert table.cost(usage) == pytest.approx(2.0 + 10.0 + 2.5 + 0.2)


def test_batch_tokens_cost_half_of_the_same_tokens_online() -> None:
    table = PriceTable("claude-sonnet-5-5")
    online = Usage.of(claude_input_tokens=12_345, claude_output_tokens=678, claude_cache_read_tokens=9_000)
    batch = Usage({k.replace("claude_", "claude_batch_"): v for k, v in online.counts.items()})
    assert table.cost(batch) == pytest.approx(table.cost(online) / 2)
    assert table.cost(batch) > 0


def test_dated_ids_take_their_family_price_and_unknown_models_the_costliest() -> None:
    assert PriceTable("claude-sonnet-4-5-20250929").model_price().input == 3.0
    assert PriceTable("claude-opus-5-5").model_price().output == 20.0  # not Opus 5's $25
    unknown = PriceTable("claude-mystery-9").model_price()
    known = PriceTable("claude-sonnet-5-5").model_price()
    assert unknown.output >= known.output  # a budget never treats an unknown model as cheap


def test_provider_units_cost_nothing_until_priced() -> None:
    usage = Usage.of(prospeo_credits=10, brightdata_records=100, discolike_records=50)
    assert PriceTable("claude-sonnet-5-5").cost(usage) == 0
    priced = PriceTable.parse("claude-sonnet-5-5", {"prospeo": 0.01, "brightdata": 0.002, "discolike": 0.004})
    assert priced.cost(usage) == pytest.approx(0.1 + 0.2 + 0.2)


def test_tam_prices_overrides_a_model_and_fills_cache_rates_from_the_multipliers() -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        tam_claude_model="claude-sonnet-5-5",
        tam_prices=json.dumps({"claude-sonnet-5-5": {"input": 4, "output": 20}}),
    )
    price = settings.prices().model_price()
    assert (price.input, price.output, price.cache_write, price.cache_read) == (4, 20, 5.0, pytest.approx(0.4))


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("{not json", "not JSON"),
        ('{"claude-sonnet-5-5": {"input": 2}}', "input and output"),
        ('{"prospeo": -1}', "TAM_PRICES.prospeo"),
        ('{"claude-sonnet-5-5": {"input": 2, "output": 10, "cached": 1}}', "unknown field"),
        ('{"prospeo": "cheap"}', "TAM_PRICES.prospeo"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_bad_tam_prices_is_a_configuration_error(raw: str, fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        Settings(_env_file=None, tam_prices=raw)  # type: ignore[call-arg]


def test_parse_rejects_a_number_for_a_model() -> None:
    with pytest.raises(InvalidInput, match="claude-x"):
        PriceTable.parse("claude-x", {"claude-x": 3})


def test_a_qualify_that_may_batch_gets_a_day_unless_its_time_limit_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from tam.domain.model import JobType

    assert Settings(_env_file=None).time_limit(JobType.QUALIFY) == 25 * 3600  # type: ignore[call-arg]
    assert Settings(_env_file=None, tam_qualify_mode="online").time_limit(JobType.QUALIFY) == 600  # type: ignore[call-arg]
    assert Settings(_env_file=None).time_limit(JobType.FIND_CONTACTS) == 1800  # type: ignore[call-arg]
    monkeypatch.setenv("TAM_QUALIFY_TIME_LIMIT", "900")
    assert Settings(_env_file=None).time_limit(JobType.QUALIFY) == 900  # type: ignore[call-arg]

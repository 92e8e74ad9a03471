from datetime import timedelta

import pytest

from orchestrator.language.spec import format_duration, parse_duration, parse_percent


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("15m", 900),
        ("12h", 43200),
        ("7d", 604800),
        ("2w", 1209600),
        ("1d12h", 129600),
        ("0s", 0),
    ],
)
def test_durations_parse_every_unit_and_combinations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["", "12", "12x", "h", "1h1d", "1.5h", 12, True, None, "-1h"])
def test_durations_without_a_valid_unit_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize("text", ["30s", "15m", "1d12h", "2w3d", "1w"])
def test_format_duration_round_trips(text: str) -> None:
    assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize(
    ("value", "fraction"), [("5%", 0.05), (0.05, 0.05), ("0%", 0.0), ("12.5%", 0.125)]
)
def test_percents_accept_sign_or_fraction(value: object, fraction: float) -> None:
    assert parse_percent(value) == pytest.approx(fraction)


@pytest.mark.parametrize("bad", [5, "5", "100%", "-1%", True, "x%"])
def test_ambiguous_or_out_of_range_percents_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_percent(bad)

"""The one back-off (sutradhar._backoff): growth, cap, jitter bounds, bad settings."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sutradhar._backoff import Backoff


def test_grows_by_the_multiplier_and_stops_at_the_cap():
    b = Backoff(initial=timedelta(seconds=1), maximum=timedelta(seconds=10), jitter=0)
    assert [b.seconds(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert b.delay(3) == timedelta(seconds=4)


def test_attempt_zero_or_negative_waits_like_the_first():
    b = Backoff(initial=timedelta(seconds=1), maximum=timedelta(seconds=10), jitter=0)
    assert b.seconds(0) == b.seconds(-5) == 1


def test_a_huge_attempt_number_is_the_cap_not_an_overflow():
    b = Backoff(initial=timedelta(milliseconds=1), maximum=timedelta(seconds=30), multiplier=3, jitter=0)
    assert b.seconds(100_000) == 30


def test_jitter_takes_off_at_most_its_fraction():
    b = Backoff(initial=timedelta(seconds=2), maximum=timedelta(seconds=60), jitter=0.2)
    assert b.seconds(1, rand=lambda: 0.0) == 2
    assert b.seconds(1, rand=lambda: 0.999999) == pytest.approx(1.6, abs=1e-5)
    assert b.seconds(2, rand=lambda: 0.5) == pytest.approx(3.6)


def test_full_jitter_is_uniform_below_the_nominal_delay():
    b = Backoff(initial=timedelta(milliseconds=10), maximum=timedelta(seconds=1), jitter=1)
    assert b.seconds(3, rand=lambda: 0.25) == pytest.approx(0.03)
    assert b.nominal(3) == pytest.approx(0.04)


def test_default_jitter_spreads_delays():
    b = Backoff(initial=timedelta(seconds=1), maximum=timedelta(seconds=1))
    seen = {round(b.seconds(1), 6) for _ in range(50)}
    assert len(seen) > 10
    assert all(0.8 <= s <= 1.0 for s in seen)


def test_a_constant_backoff_with_multiplier_one():
    b = Backoff(initial=timedelta(seconds=5), maximum=timedelta(seconds=5), multiplier=1, jitter=0)
    assert b.seconds(1) == b.seconds(50) == 5


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"initial": timedelta(seconds=-1)}, "initial must not be negative"),
        ({"initial": timedelta(seconds=5), "maximum": timedelta(seconds=1)}, "must not be shorter"),
        ({"multiplier": 0.5}, "multiplier must be at least 1"),
        ({"jitter": 1.5}, "jitter must be within"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(kwargs, words):
    with pytest.raises(ValueError, match=words):
        Backoff(**kwargs)

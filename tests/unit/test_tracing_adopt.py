"""`_tracing.adopt` and `active`: an application's tracer provider installed after a client was
made is taken at the next look, at most once every `LOOK_EVERY` seconds (an injected clock and
provider lookup; the real global provider is tested in test_tracing_app_provider.py)."""

from __future__ import annotations

from typing import Any

import pytest

from sutradhar import _tracing


class _Looks:
    """`installed_provider` as a program sees it: none until `provider` is set; counts the looks."""

    def __init__(self) -> None:
        self.provider: Any = None
        self.count = 0

    def __call__(self) -> Any:
        self.count += 1
        return self.provider


@pytest.fixture
def looks(monkeypatch: pytest.MonkeyPatch) -> tuple[_Looks, list[float]]:
    found, now = _Looks(), [100.0]
    monkeypatch.setattr(_tracing, "_state", None)
    monkeypatch.setattr(_tracing, "_looking", False)
    monkeypatch.setattr(_tracing, "_next_look", 0.0)
    monkeypatch.setattr(_tracing, "_clock", lambda: now[0])
    monkeypatch.setattr(_tracing, "installed_provider", found)
    return found, now


def test_a_provider_installed_after_adopt_is_taken_at_the_next_look(looks: tuple[_Looks, list[float]]) -> None:
    found, now = looks
    assert _tracing.adopt() is False and found.count == 1
    found.provider = provider = object()
    assert _tracing.active() is None  # not a second yet: no look
    now[0] += _tracing.LOOK_EVERY - 0.01
    assert _tracing.active() is None and found.count == 1
    now[0] += 0.02
    state = _tracing.active()
    assert state is not None and state.provider is provider and not state.owned and found.count == 2
    now[0] += 10 * _tracing.LOOK_EVERY
    assert _tracing.active() is state and found.count == 2  # on: no more looks


def test_while_none_is_installed_it_looks_once_per_interval(looks: tuple[_Looks, list[float]]) -> None:
    found, now = looks
    assert _tracing.adopt() is False
    for _ in range(40):  # 5 intervals of calls every 1/8 of one (exact in binary)
        now[0] += _tracing.LOOK_EVERY / 8
        assert _tracing.active() is None
    assert found.count == 1 + 5


def test_without_adopt_active_never_looks(looks: tuple[_Looks, list[float]]) -> None:
    found, now = looks
    found.provider = object()
    now[0] += 10 * _tracing.LOOK_EVERY
    assert _tracing.active() is None and found.count == 0

"""The event loop choice of the router and of agents (sutradhar._event_loop)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from sutradhar import _event_loop as eventloop
from sutradhar._errors import InvalidArgument


def _loop_module(choice: str) -> tuple[str, str]:
    factory, name = eventloop.loop_factory(choice)
    loop = factory()
    try:
        return type(loop).__module__, name
    finally:
        loop.close()


def test_auto_prefers_uvloop_when_installed() -> None:
    module, name = _loop_module("auto")
    assert name == "uvloop" and module.startswith("uvloop")


def test_asyncio_forces_the_standard_loop() -> None:
    module, name = _loop_module("asyncio")
    assert name == "asyncio" and module.startswith("asyncio")


def test_without_uvloop_auto_falls_back_and_uvloop_says_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes `import uvloop` raise ImportError
    factory, name = eventloop.loop_factory("auto")
    assert name == "asyncio" and factory is asyncio.new_event_loop
    with pytest.raises(InvalidArgument, match=r"pip install 'sutradhar\[uvloop\]'.*--event-loop asyncio"):
        eventloop.loop_factory("uvloop")


def test_unknown_choice_names_the_choices() -> None:
    with pytest.raises(InvalidArgument, match="auto, uvloop, asyncio"):
        eventloop.loop_factory("trio")

"""The services' logging setup (services/common/logs.py)."""

from __future__ import annotations

import logging

import pytest

from sutradhar.services.common.logs import CHATTY, configure_logging


@pytest.fixture(autouse=True)
def _restore_levels():
    before = {name: logging.getLogger(name).level for name in CHATTY}
    yield
    for name, level in before.items():
        logging.getLogger(name).setLevel(level)


def test_request_logging_libraries_speak_at_warning_unless_debugging() -> None:
    configure_logging("info")
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING  # one line per probe otherwise
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    configure_logging("DEBUG")
    assert logging.getLogger("httpx").isEnabledFor(logging.DEBUG)


def test_an_unknown_level_is_one_line_naming_the_choices() -> None:
    with pytest.raises(SystemExit, match="--log-level 'loud' is not one of DEBUG, INFO, WARNING"):
        configure_logging("loud")

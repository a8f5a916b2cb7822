"""The SDK's gRPC hosting helpers (sutradhar._hosting) on bad input: status
details bounded under gRPC's metadata limit, undecodable request bytes turned
into INVALID_ARGUMENT, and a capped reconnect back-off."""

from __future__ import annotations

from datetime import timedelta

from sutradhar._errors import InvalidArgument
from sutradhar._hosting import reconnect_options
from sutradhar._middleware import MAX_STATUS_DETAILS_BYTES, status_details, tolerant_deserializer
from sutradhar.v1 import registry_pb2

# -- status details -----------------------------------------------------------


def test_status_details_stay_under_grpcs_metadata_limit() -> None:
    # An error message quoting a 10k-character id used to exceed gRPC's 8 KiB
    # metadata limit: the client saw RESOURCE_EXHAUSTED "Stream removed".
    for text in ("a" * 10_000, "é" * 10_000, "\U0001f600" * 5_000):
        details = status_details(f"id: {text!r} is not valid")
        assert len(details.encode()) <= MAX_STATUS_DETAILS_BYTES
        assert details.startswith("id: '")
        assert "characters cut" in details
    assert status_details("short message") == "short message"


# -- undecodable requests -----------------------------------------------------


def test_tolerant_deserializer_turns_bad_bytes_into_invalid_argument() -> None:
    parse = tolerant_deserializer(registry_pb2.GetAgentRequest.FromString)
    assert parse(registry_pb2.GetAgentRequest(id="x").SerializeToString()).id == "x"
    for raw in (b"\x12\x03a\xffb", b"\xff\xff\xff"):  # bad UTF-8 in a string field; corrupt wire format
        bad = parse(raw)
        assert isinstance(bad.error, InvalidArgument)
        assert "sutradhar.v1.GetAgentRequest" in bad.error.message
    assert tolerant_deserializer(None) is None


# -- reconnecting -------------------------------------------------------------


def test_reconnect_options_cap_grpcs_back_off() -> None:
    assert dict(reconnect_options()) == {
        "grpc.initial_reconnect_backoff_ms": 200,
        "grpc.max_reconnect_backoff_ms": 1000,
    }
    opts = dict(reconnect_options(initial=timedelta(milliseconds=100), connect_timeout=timedelta(milliseconds=150)))
    assert opts["grpc.initial_reconnect_backoff_ms"] == 100 and opts["grpc.min_reconnect_backoff_ms"] == 150

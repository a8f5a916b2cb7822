"""Audit of the error surface, without network: bad input found while fuzzing
the running mesh must become INVALID_ARGUMENT naming the field, never
INTERNAL/UNKNOWN, a crash or a traceback."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest
from google.protobuf import duration_pb2, struct_pb2

from sutradhar._errors import FailedPrecondition, InvalidArgument
from sutradhar._hosting import MAX_STATUS_DETAILS_BYTES, reconnect_options, status_details, tolerant_deserializer
from sutradhar._values import from_struct, from_value
from sutradhar.cli import main as cli_main
from sutradhar.cli.manifests import load_manifests, parse_manifests
from sutradhar.services.common import validation
from sutradhar.services.registry.agent_validation import validate_agent
from sutradhar.services.router import wire
from sutradhar.services.router.engine import Engine
from sutradhar.services.router.view import View
from sutradhar.v1 import agent_pb2, registry_pb2, router_pb2

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


# -- validation ---------------------------------------------------------------


def test_absurd_ttl_is_invalid_argument_not_overflow() -> None:
    for seconds in (2**62, 315_576_000_000):
        ttl = duration_pb2.Duration(seconds=seconds)
        with pytest.raises(InvalidArgument) as info:
            validation.resolve_ttl(ttl)
        assert info.value.field == "ttl"
    assert validation.resolve_ttl(duration_pb2.Duration(seconds=30)) == timedelta(seconds=30)


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_non_finite_config_numbers_are_refused(number: float) -> None:
    agent = registry_pb2.Agent(id="a", type="echo", version="1.0.0", runtime="process")
    agent.config.fields["x"].number_value = number
    with pytest.raises(InvalidArgument) as info:
        validate_agent(agent)
    assert info.value.field == "agent.config"
    assert "NaN" in info.value.message or "Infinity" in info.value.message


# -- values -------------------------------------------------------------------


def test_from_value_survives_non_finite_numbers() -> None:
    value = struct_pb2.Value()
    value.struct_value.fields["x"].number_value = math.nan
    value.struct_value.fields["y"].list_value.values.add().number_value = math.inf
    value.struct_value.fields["z"].string_value = "ok"
    plain = from_value(value)
    assert math.isnan(plain["x"]) and plain["y"] == [math.inf] and plain["z"] == "ok"
    struct = struct_pb2.Struct()
    struct.fields["n"].number_value = -math.inf
    assert from_struct(struct) == {"n": -math.inf}


# -- router -------------------------------------------------------------------


def _engine() -> Engine:
    view = View()
    agent = registry_pb2.Agent(id="echo", namespace="default", type="echo", version="1.0.0")
    view.replace([agent], [])
    return Engine(view, max_message_bytes=64 * 1024, rng=random.Random(0))


def _route(selector: router_pb2.Selector, options: router_pb2.RouteOptions | None = None) -> wire.RouteRequest:
    req = router_pb2.RouterServiceExecuteRequest(
        task=agent_pb2.Task(id="t", type="echo"), selector=selector, options=options
    )
    return wire.split_route_request(req.SerializeToString())


@pytest.mark.parametrize(
    ("selector", "field"),
    [
        (router_pb2.Selector(agent_type="echo", namespace="a/b"), "selector.namespace"),
        (router_pb2.Selector(agent_type="echo", namespace="*"), "selector.namespace"),
        (router_pb2.Selector(agent_type="../x"), "selector.agent_type"),
        (router_pb2.Selector(agent_type="e" * 10_000), "selector.agent_type"),
        (router_pb2.Selector(agent_id="A/B"), "selector.agent_id"),
        (router_pb2.Selector(agent_type="echo", capabilities=["a b"]), "selector.capabilities"),
    ],
)
async def test_malformed_selector_is_invalid_argument(selector: router_pb2.Selector, field: str) -> None:
    # These were FAILED_PRECONDITION ("no agent of type '../x' is registered").
    with pytest.raises(InvalidArgument) as info:
        await _engine().execute(_route(selector), 5.0)
    assert info.value.message.startswith(f"{field}:")


async def test_bad_options_are_refused_before_selection() -> None:
    # With no live instance these answered UNAVAILABLE, and a negative timeout
    # was ignored whenever the caller also set a gRPC deadline.
    engine = _engine()
    sel = router_pb2.Selector(agent_type="echo")
    with pytest.raises(InvalidArgument, match=r"options\.strategy"):
        await engine.execute(_route(sel, router_pb2.RouteOptions(strategy="bogus")), 5.0)
    with pytest.raises(InvalidArgument, match=r"options\.max_attempts"):
        await engine.execute(_route(sel, router_pb2.RouteOptions(max_attempts=-1)), 5.0)
    negative = router_pb2.RouteOptions()
    negative.timeout.seconds = -5
    for deadline in (5.0, None):
        with pytest.raises(InvalidArgument, match=r"options\.timeout"):
            await engine.execute(_route(sel, negative), deadline)
    with pytest.raises(FailedPrecondition):  # a well-formed request for an unknown type
        await engine.execute(_route(router_pb2.Selector(agent_type="other")), 5.0)


# -- CLI ----------------------------------------------------------------------


@pytest.mark.parametrize("payload", ["NaN", '{"x": Infinity}', "[-Infinity]"])
def test_exec_refuses_non_json_numbers(payload: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main.main(["--router", "127.0.0.1:1", "exec", "echo", "--task", "t", "--payload", payload])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: --payload:") and "INVALID_ARGUMENT" in err
    assert "Traceback" not in err


def test_manifest_that_is_not_utf8_is_refused(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"\xff\xfe garbage")
    with pytest.raises(InvalidArgument, match="not UTF-8"):
        load_manifests(path)


def test_yaml_errors_fit_on_one_line() -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_manifests("not: [valid", source="m.yaml")
    assert "\n" not in info.value.message
    assert info.value.message.startswith("m.yaml is not valid YAML")
    assert "line 1" in info.value.message


def test_unexpected_cli_errors_print_one_line(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    def boom(args: object) -> int:
        raise ValueError("something odd")

    parser = cli_main.build_parser()
    args = parser.parse_args(["stats"])
    args.func = boom
    monkeypatch.setattr(cli_main, "build_parser", lambda: _Fixed(parser, args))
    assert cli_main.main(["stats"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unexpected ValueError: something odd")
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 2 and "SUTRADHAR_DEBUG" in err  # the error and a hint


class _Fixed:
    """A parser stand-in whose parse_args returns prepared args."""

    def __init__(self, parser: object, args: object) -> None:
        self.parser, self.args = parser, args

    def parse_args(self, argv: object) -> object:
        return self.args


def test_reconnect_options_cap_grpcs_back_off() -> None:
    assert dict(reconnect_options()) == {
        "grpc.initial_reconnect_backoff_ms": 200,
        "grpc.max_reconnect_backoff_ms": 1000,
    }
    opts = dict(reconnect_options(initial=timedelta(milliseconds=100), connect_timeout=timedelta(milliseconds=150)))
    assert opts["grpc.initial_reconnect_backoff_ms"] == 100 and opts["grpc.min_reconnect_backoff_ms"] == 150


@pytest.mark.parametrize("address", ["bad:address:x", "999.1.1.1:99999", "localhost", ":50051", "host:0", "::1:80"])
def test_cli_names_a_malformed_service_address(address: str, capsys: pytest.CaptureFixture[str]) -> None:
    # Before: UNAVAILABLE "errors resolving ..." with the hint "is the mesh running?".
    assert cli_main.main(["--registry", address, "agents", "list"]) == 1
    err = capsys.readouterr().err
    assert "is not a host:port address" in err and "INVALID_ARGUMENT" in err
    assert "is the mesh running" not in err


@pytest.mark.parametrize("address", ["127.0.0.1:50051", "localhost:1", "[::1]:50051", "dns:///localhost:1", "unix:/x"])
def test_cli_accepts_well_formed_addresses(address: str) -> None:
    from sutradhar.cli._rpc import check_address

    check_address(address)


def test_detached_up_reports_the_childs_error_with_its_code(tmp_path) -> None:
    # Before: "the mesh failed to start (exit code 1); ... ends with:" and three
    # raw log lines, the child's code nested inside "(FAILED_PRECONDITION) (UNAVAILABLE)"
    # and the hint "is the mesh running? start it with `sutradhar up`".
    from sutradhar._errors import Unavailable
    from sutradhar.cli.up import _failure_from_log

    log = (
        "Starting the Sutradhar mesh (state in /s)\n"
        "Mesh stopped; nothing left running.\n"
        "error: port 50051 for registry on 127.0.0.1 is already in use; choose another port (FAILED_PRECONDITION)\n"
    )
    err = _failure_from_log(log, tmp_path / "up.log", 1)
    assert isinstance(err, FailedPrecondition)
    assert err.message.startswith("port 50051 for registry") and "\n" not in err.message
    plain = _failure_from_log("Traceback (most recent call last):\nboom\n", tmp_path / "up.log", 2)
    assert isinstance(plain, Unavailable) and "exit code 2" in plain.message and "\n" not in plain.message


@pytest.mark.parametrize("flags", [["--etcd-port", "99999"], ["--router-port", "0"], ["--health-port", "x"]])
def test_up_refuses_impossible_ports(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli_main.main(["up", "--detach", *flags])
    assert info.value.code == 2
    assert "is not a TCP port" in capsys.readouterr().err


def test_up_names_an_unusable_state_dir(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli_main.main(["up", "--detach", "--state-dir", str(blocker / "state")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot use {blocker / 'state'} as the state directory")
    assert "FAILED_PRECONDITION" in err and "unexpected" not in err


_SPEC = "type: echo, version: 1.0.0, runtime: process"


@pytest.mark.parametrize("where", [f"metadata: {{name: x1, labels: [a]}}\nspec: {{{_SPEC}}}",
                                   f"metadata: {{name: x1}}\nspec: {{{_SPEC}, labels: x}}"])
def test_manifest_labels_that_are_not_a_mapping_are_named(where: str) -> None:
    # Before: TypeError "'list' object is not a mapping" (a traceback from the CLI).
    from sutradhar.cli.manifests import agent_from_manifest

    (manifest,) = parse_manifests(f"apiVersion: sutradhar/v1\nkind: Agent\n{where}\n", source="m.yaml")
    with pytest.raises(InvalidArgument, match=r"labels must be a mapping"):
        agent_from_manifest(manifest)

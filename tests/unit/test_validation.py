"""Agent and instance input: services/registry/agent_validation and services/common/validation."""

from __future__ import annotations

import copy
import math
from datetime import timedelta
from decimal import Decimal

import pytest
from google.protobuf import duration_pb2, json_format

from sutradhar._errors import InvalidArgument
from sutradhar.services.common import validation as v
from sutradhar.services.registry.agent_validation import validate_agent
from sutradhar.v1 import registry_pb2

BASE = {
    "id": "echo",
    "namespace": "default",
    "type": "echo",
    "version": "1.4.0",
    "runtime": "process",
    "capabilities": ["answer", "hint"],
    "config": {"command": ["python", "-m", "echo"], "env": {"A": "1"}, "workdir": "/tmp", "port_env": "PORT"},
    "labels": {"tier": "gold", "sutradhar.io/team": "core"},
    "resources": {"cpu": "500m", "memory": "256Mi"},
    "description": "echoes",
    "probes": {"readiness": {"kind": "grpc", "period": "1s", "timeout": "0.5s", "failureThreshold": 2},
               "liveness": {"kind": "tcp", "successThreshold": 1}},
    "routing": {"strategy": "least-loaded", "weight": 50,
                "retry": {"maxAttempts": 3, "retryableStatusCodes": ["UNAVAILABLE", "RESOURCE_EXHAUSTED"]}},
}


def agent(**changes) -> registry_pb2.Agent:
    data = copy.deepcopy(BASE)
    for path, value in changes.items():
        node = data
        parts = path.split("__")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if value is DELETE:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
    return json_format.ParseDict(data, registry_pb2.Agent())


DELETE = object()


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"namespace": ""},
        {"version": "2.0.0-rc.1+build.7"},
        {"capabilities": []},
        {"labels": {}},
        {"resources": {}},
        {"resources": {"cpu": "2", "memory": "1Gi"}},
        {"resources": {"cpu": "0.5", "memory": "1000000000"}},
        {"resources": {"cpu": "64", "memory": "1Ti"}},
        {"resources": {"cpu": "1m", "memory": "4Mi"}},
        {"config": {}},  # process agent started outside the mesh (SDK serve())
        {"config": {"command": "python echo.py", "args": ["--x"]}},
        {"runtime": "container", "config": {"image": "echo:1.0", "port": 8080, "env": {"X": "y"}, "command": "run"}},
        {"runtime": "http", "config": {"urls": ["http://127.0.0.1:8080", "https://example.com/agent"]}},
        {"runtime": "http", "config": {"url": "http://127.0.0.1:9000"}},
        {"runtime": "in-process", "config": {"class": "examples.echo:EchoAgent", "kwargs": {"n": 1}}},
        {"runtime": "in-process", "config": {"class": "a:B.C"}},
        {"probes": {}},
        {"probes": {"readiness": {"period": "0.1s", "timeout": "60s", "httpPath": "/healthz", "kind": "http"}}},
        {"probes": {"liveness": {"successThreshold": 0, "failureThreshold": 0}}},
        {"routing": {}},
        {"routing": {"strategy": "weighted", "weight": 1000}},
        {"routing": {"retry": {"maxAttempts": 10, "initialBackoff": "0.01s", "maxBackoff": "1s",
                               "backoffMultiplier": 2, "budgetPercent": 100}}},
        {"routing": {"outlierDetection": {"maxEjectionPercent": 100, "baseEjectionTime": "30s",
                                          "maxEjectionTime": "300s"}}},
        {"routing": {"hedging": {"taskTypes": ["answer"], "delay": "0.05s", "maxAttempts": 2}}},
        {"description": "x" * 4096},
        {"labels": {f"k{i}": "v" for i in range(64)}},
        {"capabilities": [f"c{i}" for i in range(64)]},
        {"id": "a" * 63},
    ],
)
def test_good_agents(changes):
    validate_agent(agent(**changes))


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"id": ""}, "agent.id", "required"),
        ({"id": "Echo"}, "agent.id", "DNS-1123"),
        ({"id": "echo_1"}, "agent.id", "DNS-1123"),
        ({"id": "-echo"}, "agent.id", "DNS-1123"),
        ({"id": "a" * 64}, "agent.id", "at most 63"),
        ({"id": "a/b"}, "agent.id", "DNS-1123"),
        ({"namespace": "Prod"}, "agent.namespace", "namespace"),
        ({"namespace": "*"}, "agent.namespace", "only allowed"),
        ({"type": ""}, "agent.type", "required"),
        ({"type": "Tutor!"}, "agent.type", "DNS-1123"),
        ({"version": "banana"}, "agent.version", '"banana" is not a semantic version'),
        ({"version": ""}, "agent.version", "required"),
        ({"version": "1.4"}, "agent.version", "MAJOR.MINOR.PATCH"),
        ({"runtime": ""}, "agent.runtime", "required"),
        ({"runtime": "docker"}, "agent.runtime", '"in-process", "process", "container", "http"'),
        ({"capabilities": ["ok", "ok"]}, "agent.capabilities[1]", "twice"),
        ({"capabilities": ["bad cap"]}, "agent.capabilities[0]", "capability"),
        ({"capabilities": [""]}, "agent.capabilities[0]", "empty"),
        ({"capabilities": [f"c{i}" for i in range(65)]}, "agent.capabilities", "at most 64"),
        ({"labels": {"-x": "y"}}, "agent.labels", "label key"),
        ({"labels": {"x": "bad value"}}, 'agent.labels["x"]', "label value"),
        ({"labels": {f"k{i}": "v" for i in range(65)}}, "agent.labels", "at most 64"),
        ({"description": "x" * 4097}, "agent.description", "4 KiB"),
        ({"description": "é" * 2049}, "agent.description", "4 KiB"),
        ({"config": {"command": ["x"], "pad": "y" * 70000}}, "agent.config", "64 KiB"),
        ({"config": {"bogus": 1, "command": "x"}}, "agent.config.bogus", '"bogus"'),
        ({"config": {"command": ""}}, "agent.config.command", "empty"),
        ({"config": {"command": []}}, "agent.config.command", "empty"),
        ({"config": {"command": [1]}}, "agent.config.command[0]", "string"),
        ({"config": {"command": {"a": 1}}}, "agent.config.command", "list of strings"),
        ({"config": {"command": "x", "args": "y"}}, "agent.config.args", "list"),
        ({"config": {"command": "x", "env": {"A": 1}}}, "agent.config.env.A", "string"),
        ({"config": {"command": "x", "env": {"1A": "x"}}}, "agent.config.env", "environment variable"),
        ({"config": {"command": "x", "env": ["A=1"]}}, "agent.config.env[0]", "mapping"),
        ({"config": {"command": "x", "workdir": 3}}, "agent.config.workdir", "string"),
        ({"config": {"command": "x", "port_env": "my port"}}, "agent.config.port_env", "environment variable"),
        ({"runtime": "container", "config": {}}, "agent.config.image", "required"),
        ({"runtime": "container", "config": {"image": ""}}, "agent.config.image", "empty"),
        ({"runtime": "container", "config": {"image": "a b"}}, "agent.config.image", "image reference"),
        ({"runtime": "container", "config": {"image": "x", "port": 0}}, "agent.config.port", "1-65535"),
        ({"runtime": "container", "config": {"image": "x", "port": 70000}}, "agent.config.port", "1-65535"),
        ({"runtime": "container", "config": {"image": "x", "port": 80.5}}, "agent.config.port", "port"),
        ({"runtime": "container", "config": {"image": "x", "port": "80"}}, "agent.config.port", "port"),
        ({"runtime": "container", "config": {"image": "x", "workdir": "/"}}, "agent.config.workdir", "unknown"),
        ({"runtime": "http", "config": {}}, "agent.config.urls", "required"),
        ({"runtime": "http", "config": {"urls": []}}, "agent.config.urls", "empty"),
        ({"runtime": "http", "config": {"urls": ["ftp://x"]}}, "agent.config.urls[0]", "http(s) URL"),
        ({"runtime": "http", "config": {"urls": ["http://"]}}, "agent.config.urls[0]", "http(s) URL"),
        ({"runtime": "http", "config": {"urls": ["http://h:99999"]}}, "agent.config.urls[0]", "port"),
        ({"runtime": "http", "config": {"url": "nope"}}, "agent.config.url", "http(s) URL"),
        ({"runtime": "http", "config": {"url": "http://a", "urls": ["http://b"]}}, "agent.config.url", "not both"),
        ({"runtime": "in-process", "config": {}}, "agent.config.class", "required"),
        ({"runtime": "in-process", "config": {"class": "NoColon"}}, "agent.config.class", "module.path:ClassName"),
        ({"runtime": "in-process", "config": {"class": "a:b", "kwargs": [1]}}, "agent.config.kwargs", "object"),
        ({"resources": {"cpu": "0"}}, "agent.resources.cpu", "more than 0"),
        ({"resources": {"cpu": "0m"}}, "agent.resources.cpu", "more than 0"),
        ({"resources": {"cpu": "65"}}, "agent.resources.cpu", "64 cores"),
        ({"resources": {"cpu": "lots"}}, "agent.resources.cpu", "CPU quantity"),
        ({"resources": {"cpu": "-1"}}, "agent.resources.cpu", "CPU quantity"),
        ({"resources": {"memory": "3Mi"}}, "agent.resources.memory", "4Mi"),
        ({"resources": {"memory": "2Ti"}}, "agent.resources.memory", "1Ti"),
        ({"resources": {"memory": "1GB"}}, "agent.resources.memory", "memory quantity"),
        ({"probes": {"readiness": {"kind": "icmp"}}}, "agent.probes.readiness.kind", '"grpc", "http", "tcp"'),
        ({"probes": {"readiness": {"period": "0.05s"}}}, "agent.probes.readiness.period", "at least 0.1s"),
        ({"probes": {"readiness": {"period": "-1s"}}}, "agent.probes.readiness.period", "negative"),
        ({"probes": {"readiness": {"timeout": "61s"}}}, "agent.probes.readiness.timeout", "at most 60s"),
        ({"probes": {"readiness": {"initialDelay": "-2s"}}}, "agent.probes.readiness.initial_delay", "negative"),
        ({"probes": {"readiness": {"failureThreshold": -1}}}, "agent.probes.readiness.failure_threshold", "0-"),
        ({"probes": {"readiness": {"successThreshold": -1}}}, "agent.probes.readiness.success_threshold", "0-"),
        ({"probes": {"readiness": {"httpPath": "health"}}}, "agent.probes.readiness.http_path", "absolute"),
        ({"probes": {"liveness": {"successThreshold": 2}}}, "agent.probes.liveness.success_threshold", "must be 1"),
        ({"routing": {"strategy": "fastest"}}, "agent.routing.strategy", '"round-robin"'),
        ({"routing": {"weight": 1001}}, "agent.routing.weight", "0-1000"),
        ({"routing": {"weight": -1}}, "agent.routing.weight", "0-1000"),
        ({"routing": {"retry": {"maxAttempts": 11}}}, "agent.routing.retry.max_attempts", "0-10"),
        ({"routing": {"retry": {"retryableStatusCodes": ["BOOM"]}}},
         "agent.routing.retry.retryable_status_codes[0]", "gRPC status code"),
        ({"routing": {"retry": {"retryableStatusCodes": ["OK"]}}},
         "agent.routing.retry.retryable_status_codes[0]", "gRPC status code"),
        ({"routing": {"retry": {"budgetPercent": 101}}}, "agent.routing.retry.budget_percent", "percentage"),
        ({"routing": {"retry": {"backoffMultiplier": 0.5}}}, "agent.routing.retry.backoff_multiplier", "1-100"),
        ({"routing": {"retry": {"initialBackoff": "2s", "maxBackoff": "1s"}}}, "agent.routing.retry.max_backoff",
         "initial_backoff"),
        ({"routing": {"outlierDetection": {"maxEjectionPercent": 101}}},
         "agent.routing.outlier_detection.max_ejection_percent", "percentage"),
        ({"routing": {"circuitBreaker": {"timeout": "-1s"}}}, "agent.routing.circuit_breaker.timeout", "negative"),
        ({"routing": {"circuitBreaker": {"consecutiveFailures": -3}}},
         "agent.routing.circuit_breaker.consecutive_failures", "0-"),
        ({"routing": {"hedging": {"maxAttempts": 11}}}, "agent.routing.hedging.max_attempts", "0-10"),
        ({"routing": {"hedging": {"taskTypes": ["no way"]}}}, "agent.routing.hedging.task_types[0]", "task type"),
        ({"routing": {"defaultTimeout": "7200s"}}, "agent.routing.default_timeout", "too long"),
    ],
)
def test_bad_agents(changes, field, fragment):
    with pytest.raises(InvalidArgument) as info:
        validate_agent(agent(**changes))
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert fragment in str(info.value)


def test_unknown_key_message_lists_valid_keys():
    with pytest.raises(InvalidArgument) as info:
        validate_agent(agent(config={"command": "x", "zz": 1, "aa": 2}))
    msg = str(info.value)
    assert '"aa", "zz"' in msg
    assert "command, args, env, workdir, port_env" in msg


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_non_finite_config_numbers_are_refused(number: float) -> None:
    agent = registry_pb2.Agent(id="a", type="echo", version="1.0.0", runtime="process")
    agent.config.fields["x"].number_value = number
    with pytest.raises(InvalidArgument) as info:
        validate_agent(agent)
    assert info.value.field == "agent.config"
    assert "NaN" in info.value.message or "Infinity" in info.value.message


def test_quantities():
    assert v.parse_cpu("500m") == Decimal("0.5")
    assert v.parse_cpu("0.5") == Decimal("0.5")
    assert v.parse_cpu("2") == 2
    assert v.parse_memory("256Mi") == 256 * 2**20
    assert v.parse_memory("1Gi") == 2**30
    assert v.parse_memory("1000000000") == 10**9
    assert v.parse_memory("5M") == 5 * 10**6


@pytest.mark.parametrize(
    ("seconds", "expected"), [(0, timedelta(seconds=10)), (2, timedelta(seconds=2)), (300, timedelta(seconds=300))]
)
def test_resolve_ttl(seconds, expected):
    assert v.resolve_ttl(duration_pb2.Duration(seconds=seconds)) == expected


@pytest.mark.parametrize("seconds", [1, 301, -5])
def test_resolve_ttl_out_of_range(seconds):
    with pytest.raises(InvalidArgument) as info:
        v.resolve_ttl(duration_pb2.Duration(seconds=seconds))
    assert info.value.field == "ttl"


def test_absurd_ttl_is_invalid_argument_not_overflow() -> None:
    for seconds in (2**62, 315_576_000_000):
        ttl = duration_pb2.Duration(seconds=seconds)
        with pytest.raises(InvalidArgument) as info:
            v.resolve_ttl(ttl)
        assert info.value.field == "ttl"
    assert v.resolve_ttl(duration_pb2.Duration(seconds=30)) == timedelta(seconds=30)


def instance(**fields) -> registry_pb2.Instance:
    base = {"id": "echo-1a2b3c4d", "namespace": "default", "agent_id": "echo", "endpoint": "127.0.0.1:50060"}
    base.update(fields)
    return registry_pb2.Instance(**base)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"id": ""},
        {"id": "echo.replica-1"},
        {"endpoint": "http://127.0.0.1:8080"},
        {"endpoint": "in-process"},
        {"endpoint": "[::1]:9000"},
        {"endpoint": "localhost:1"},
        {"version": "1.2.3"},
        {"state": registry_pb2.INSTANCE_STATE_STARTING},
        {"labels": {"sutradhar.io/deployment": "echo"}},
    ],
)
def test_good_instances(fields):
    v.validate_instance(instance(**fields))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"id": "Echo_1"}, "instance.id"),
        ({"id": "x" * 254}, "instance.id"),
        ({"namespace": "NS"}, "instance.namespace"),
        ({"agent_id": ""}, "instance.agent_id"),
        ({"agent_id": "Bad"}, "instance.agent_id"),
        ({"endpoint": ""}, "instance.endpoint"),
        ({"endpoint": "nohost"}, "instance.endpoint"),
        ({"endpoint": "h:0"}, "instance.endpoint"),
        ({"endpoint": "h:port"}, "instance.endpoint"),
        ({"endpoint": "ftp://x"}, "instance.endpoint"),
        ({"endpoint": "h:" + "1" * 3000}, "instance.endpoint"),
        ({"version": "banana"}, "instance.version"),
        ({"state": 42}, "instance.state"),
        ({"labels": {"ok": "not ok"}}, 'instance.labels["ok"]'),
    ],
)
def test_bad_instances(fields, field):
    with pytest.raises(InvalidArgument) as info:
        v.validate_instance(instance(**fields))
    assert info.value.field == field


def test_validate_state():
    v.validate_state(registry_pb2.INSTANCE_STATE_DRAINING)
    for bad in (registry_pb2.INSTANCE_STATE_UNSPECIFIED, 99):
        with pytest.raises(InvalidArgument) as info:
            v.validate_state(bad)
        assert "INSTANCE_STATE_DRAINING" in str(info.value)


def test_namespace_all_only_where_allowed():
    v.validate_namespace("*", allow_all=True)
    v.validate_namespace("")
    with pytest.raises(InvalidArgument):
        v.validate_namespace("*")


def test_process_port_and_limits_are_accepted_and_checked():
    validate_agent(agent(config={"command": ["x"], "port": 7000, "limits": {"cpu_seconds": 60, "open_files": 256}}))
    with pytest.raises(InvalidArgument) as info:
        validate_agent(agent(config={"command": ["x"], "limits": {"open_files": 4}}))
    assert info.value.field == "agent.config.limits.open_files"
    with pytest.raises(InvalidArgument) as info:
        validate_agent(agent(config={"command": ["x"], "limits": {"threads": 4}}))
    assert info.value.field == "agent.config.limits.threads" and "cpu_seconds" in info.value.message
    with pytest.raises(InvalidArgument) as info:
        validate_agent(agent(config={"command": ["x"], "port": 70000}))
    assert info.value.field == "agent.config.port"


@pytest.mark.parametrize(("parse", "text"), [(v.parse_cpu, "500m\n"), (v.parse_memory, "256Mi\n")])
def test_a_trailing_newline_is_not_part_of_a_quantity(parse, text):
    with pytest.raises(InvalidArgument, match="is not a"):
        parse(text, field="agent.resources.x")

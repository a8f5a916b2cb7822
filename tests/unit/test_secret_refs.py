"""References to Secrets and ConfigMaps: parsing, checks, resolution, revisions, replica files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from google.protobuf import json_format

from sutradhar._errors import InvalidArgument
from sutradhar.services.common.config_fields import check_env_or_references
from sutradhar.services.common.secret_refs import (
    CONFIGMAP,
    SECRET,
    MissingReference,
    ObjectRef,
    check_data,
    env_vars_from_config,
    files_from_config,
    object_versions,
    references,
    resolve,
)
from sutradhar.services.scheduler.replica_files import ReplicaFiles
from sutradhar.services.scheduler.runtimes.config_schemas import validate_runtime_config
from sutradhar.services.scheduler.spec import revision_of, spec_references, validate_deployment
from sutradhar.v1 import registry_pb2, scheduler_pb2

VALUE = b"sk-unit-abcdef123456"
ENV = [
    {"name": "PLAIN", "value": "1"},
    {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "llm", "key": "openai"}}},
    {"name": "MODEL", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "model"}}},
]
FILES = [
    {"secret": "llm", "mountPath": "/etc/agent/keys", "items": [{"key": "openai", "path": "openai.key"}]},
    {"configMap": "settings", "mountPath": "/etc/agent/settings"},
]


def objects(**overrides: object) -> dict[ObjectRef, dict[str, bytes] | None]:
    found: dict[ObjectRef, dict[str, bytes] | None] = {
        ObjectRef(SECRET, "llm"): {"openai": VALUE},
        ObjectRef(CONFIGMAP, "settings"): {"model": b"gpt-x", "temperature": b"0.1"},
    }
    for name, value in overrides.items():
        kind, _, obj = name.partition("__")
        found[ObjectRef(kind, obj)] = value  # type: ignore[assignment]
    return found


def test_resolution_puts_values_in_env_and_files() -> None:
    refs = references(ENV, FILES)
    assert refs.objects == (ObjectRef(CONFIGMAP, "settings"), ObjectRef(SECRET, "llm"))
    out = resolve(refs, objects())
    assert dict(out.env) == {"PLAIN": "1", "API_KEY": VALUE.decode(), "MODEL": "gpt-x"}
    assert [(f.mount_path, f.path) for f in out.files] == [
        ("/etc/agent/keys", "openai.key"), ("/etc/agent/settings", "model"), ("/etc/agent/settings", "temperature")]
    assert VALUE.decode() not in repr(out)


def test_missing_objects_and_keys_are_named_without_values() -> None:
    refs = references(ENV, FILES)
    with pytest.raises(MissingReference) as err:
        resolve(refs, objects(secret__llm={"other": VALUE}, configmap__settings=None))
    message = str(err.value)
    assert "secret 'llm' has no key 'openai'" in message
    assert "configmap 'settings' does not exist" in message
    assert message.count("configmap 'settings' does not exist") == 1
    assert VALUE.decode() not in message


def test_object_versions_name_missing_objects() -> None:
    refs = references(ENV)
    assert object_versions(refs, {ObjectRef(SECRET, "llm"): "5.1", ObjectRef(CONFIGMAP, "settings"): "6.2"}) == {
        "configmap/settings": "6.2", "secret/llm": "5.1"}
    with pytest.raises(MissingReference, match="secret 'llm' does not exist"):
        object_versions(refs, {ObjectRef(CONFIGMAP, "settings"): "6.2"})


@pytest.mark.parametrize(("env", "field", "match"), [
    ([{"name": "1BAD", "value": "x"}], "agent.config.env[0].name", "not an environment variable name"),
    ([{"name": "A", "value": "x"}, {"name": "A", "value": "y"}], "agent.config.env[1].name", "twice"),
    ([{"name": "A", "value": "x", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}], "agent.config.env[0]",
     "both a value and valueFrom"),
    ([{"name": "A", "valueFrom": {}}], "agent.config.env[0].valueFrom", "exactly one"),
    ([{"name": "A", "valueFrom": {"secretKeyRef": {"name": "Bad_Name", "key": "k"}}}],
     "agent.config.env[0].valueFrom.secretKeyRef.name", "DNS-1123"),
    ([{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "bad/key"}}}],
     "agent.config.env[0].valueFrom.secretKeyRef.key", "not a valid key"),
    ([{"name": "A", "vaule": "x"}], "agent.config.env[0]", "vaule"),
    (["A=1"], "agent.config.env[0]", "mapping"),
])
def test_bad_env_references_name_the_field(env: list[object], field: str, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match) as err:
        env_vars_from_config(env, field="agent.config.env")
    assert err.value.field == field


@pytest.mark.parametrize(("files", "match"), [
    ([{"mountPath": "/etc/x"}], "exactly one of secret, configMap"),
    ([{"secret": "s", "configMap": "c", "mountPath": "/etc/x"}], "exactly one"),
    ([{"secret": "s", "mountPath": "etc/x"}], "absolute"),
    ([{"secret": "s", "mountPath": "/etc/../x"}], "normalized"),
    ([{"secret": "s", "mountPath": "/"}], "other than /"),
    ([{"secret": "s", "mountPath": "/a"}, {"configMap": "c", "mountPath": "/a"}], "mounted twice"),
    ([{"secret": "s", "mountPath": "/a", "items": [{"key": "k", "path": "../escape"}]}], "without '..'"),
    ([{"secret": "s", "mountPath": "/a", "items": [{"key": "k", "path": "/abs"}]}], "relative"),
])
def test_bad_file_mounts_are_refused(files: list[object], match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        files_from_config(files, field="agent.config.files")


def test_config_env_mapping_form_still_works_and_lists_are_checked() -> None:
    check_env_or_references({"A": "1"}, "agent.config.env")
    check_env_or_references(ENV, "agent.config.env")
    validate_runtime_config("process", {"command": "x", "env": ENV, "files": FILES})
    validate_runtime_config("container", {"image": "x:1", "env": {"A": "b"}, "files": FILES})
    with pytest.raises(InvalidArgument, match="must be a string"):
        check_env_or_references({"A": 1}, "agent.config.env")


def test_data_limits_give_sizes_not_values() -> None:
    check_data({"a": b"x"}, field="data", what="secret 's'")
    with pytest.raises(InvalidArgument, match="1 MiB") as err:
        check_data({"a": VALUE * 70_000}, field="data", what="secret 's'")
    assert VALUE.decode() not in str(err.value)
    with pytest.raises(InvalidArgument, match="not a valid key"):
        check_data({"..": b"x"}, field="data", what="secret 's'")


def agent(**config: object) -> registry_pb2.Agent:
    a = registry_pb2.Agent(id="echo", namespace="ns", type="echo", version="1.0.0", runtime="process")
    a.config.update({"command": "x", **config})
    return a


def test_revision_includes_versions_of_referenced_objects_only_when_set() -> None:
    spec = scheduler_pb2.DeploymentSpec(agent_id="echo", replicas=1, env={"A": "1"})
    plain = revision_of(agent(), spec)
    assert revision_of(agent(), spec, {}) == plain, "deployments without references keep their revisions"
    json_format.ParseDict({"env_vars": ENV}, spec)
    with_refs = revision_of(agent(), spec, {"secret/llm": "5.1", "configmap/settings": "6.2"})
    bumped = revision_of(agent(), spec, {"secret/llm": "5.2", "configmap/settings": "6.2"})
    assert len({plain, with_refs, bumped}) == 3


def test_spec_references_merge_agent_config_and_deployment() -> None:
    spec = scheduler_pb2.DeploymentSpec(agent_id="echo", replicas=1)
    json_format.ParseDict({"files": [FILES[1]]}, spec)
    refs = spec_references(agent(env=[ENV[1]], files=[FILES[0]]), spec)
    assert [v.name for v in refs.env] == ["API_KEY"]
    assert [f.mount_path for f in refs.files] == ["/etc/agent/keys", "/etc/agent/settings"]
    assert not spec_references(agent(env={"A": "1"}), scheduler_pb2.DeploymentSpec(agent_id="echo"))


def test_validate_deployment_checks_references() -> None:
    d = scheduler_pb2.Deployment(name="d", namespace="ns")
    d.spec.agent_id = "echo"
    json_format.ParseDict({"env_vars": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k/"}}}]},
                          d.spec)
    with pytest.raises(InvalidArgument, match=r"spec\.env_vars"):
        validate_deployment(d)


def test_replica_files_are_private_and_removed(tmp_path: Path) -> None:
    files = ReplicaFiles(tmp_path / "files")
    out = resolve(references(None, FILES), objects())
    written = files.write("ns", "r1", out)
    assert written is not None
    key_file = written.directory / "etc/agent/keys/openai.key"
    assert key_file.read_bytes() == VALUE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o400
    assert stat.S_IMODE(written.directory.stat().st_mode) == 0o700
    for root, dirs, _ in os.walk(written.directory):
        for d in dirs:
            assert stat.S_IMODE((Path(root) / d).stat().st_mode) == 0o700
    assert dict(written.mounts) == {str(written.directory / "etc/agent/keys"): "/etc/agent/keys",
                                    str(written.directory / "etc/agent/settings"): "/etc/agent/settings"}
    again = files.write("ns", "r1", out)  # a restart writes afresh
    assert again is not None and key_file.read_bytes() == VALUE
    files.remove("ns", "r1")
    assert not written.directory.exists()
    assert files.write("ns", "r2", resolve(references(ENV), objects())) is None


def test_a_replica_spec_repr_never_shows_its_environment() -> None:
    from sutradhar.services.scheduler.runtimes.base import ReplicaSpec

    spec = ReplicaSpec(namespace="ns", deployment="d", replica_id="r", revision="x", agent=agent(),
                       env={"API_KEY": VALUE.decode()})
    assert VALUE.decode() not in repr(spec)

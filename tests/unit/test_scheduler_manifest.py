"""Deployment manifests: conversion and field-naming errors (no network)."""

from __future__ import annotations

import pytest

from sutradhar._errors import InvalidArgument
from sutradhar.cli.deploy import deployment_from_manifest
from sutradhar.cli.manifests import parse_manifests

TEXT = """
apiVersion: sutradhar/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  agent: echo
  replicas: 3
  resources: {cpu: 500m, memory: 256Mi}
  autoscale: {min: 1, max: 10, target_in_flight: 4, scale_down_window: 5m}
  strategy: {max_surge: 1, max_unavailable: 0%}
  env: {LOG_LEVEL: debug, RETRIES: 3}
"""


def test_deployment_manifest_converts():
    (m,) = parse_manifests(TEXT)
    d, inline = deployment_from_manifest(m)
    assert inline is None
    assert (d.name, d.namespace, d.spec.agent_id, d.spec.replicas) == ("web", "shop", "echo", 3)
    assert d.spec.resources.memory == "256Mi"
    assert d.spec.autoscale.min_replicas == 1 and d.spec.autoscale.max_replicas == 10
    assert d.spec.autoscale.scale_down_window.seconds == 300
    assert d.spec.strategy.max_surge == "1" and d.spec.strategy.max_unavailable == "0%"
    assert dict(d.spec.env) == {"LOG_LEVEL": "debug", "RETRIES": "3"}


def test_inline_agent():
    (m,) = parse_manifests("""
apiVersion: sutradhar/v1
kind: Deployment
metadata: {name: tool}
spec:
  agent:
    type: tool
    version: 2.0.0
    runtime: process
    config: {command: [python3, -m, sutradhar.serve, "examples.echo_agent:EchoAgent"]}
  replicas: 2
""")
    d, inline = deployment_from_manifest(m)
    assert d.spec.agent_id == "tool"
    assert inline is not None and inline.id == "tool" and inline.version == "2.0.0" and inline.namespace == "default"


@pytest.mark.parametrize(("spec", "field"), [
    ("{replicas: 2}", "spec.agent"),
    ("{agent: echo, replicas: many}", "spec.replicas"),
    ("{agent: echo, replicaz: 2}", "spec.replicaz"),
    ("{agent: echo, autoscale: {min: 1, maximum: 3}}", "spec.autoscale.maximum"),
    ("{agent: echo, autoscale: {min: 1, max: 3, scale_down_window: soon}}", "spec.autoscale.scale_down_window"),
    ("{agent: echo, strategy: {surge: 1}}", "spec.strategy.surge"),
])
def test_bad_fields_are_named(spec, field):
    (m,) = parse_manifests(f"apiVersion: sutradhar/v1\nkind: Deployment\nmetadata: {{name: x}}\nspec: {spec}\n")
    with pytest.raises(InvalidArgument) as err:
        deployment_from_manifest(m)
    assert err.value.field == field

"""Replica certificates: issued into the replica's own directory, renewed at 70 % of their
life on the scheduler's clock, adopted after a leader change, removed with the replica."""

from __future__ import annotations

import os
import stat
import time
from datetime import timedelta
from pathlib import Path

import pytest

from sutradhar._errors import FailedPrecondition
from sutradhar._identity import SpiffeId
from sutradhar.services.common.authority import CertificateAuthority
from sutradhar.services.scheduler.identities import CONTAINER_MOUNT, ReplicaIdentities, load_authority

TD = "sutradhar.local"


class Clock:
    def __init__(self) -> None:
        self.t = time.time()

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds


def test_a_replica_gets_its_identity_in_its_own_directory_renewed_at_70_percent(tmp_path: Path) -> None:
    clock = Clock()
    ca = CertificateAuthority.create(TD)
    identities = ReplicaIdentities(ca, tmp_path / "tls", lifetime=timedelta(seconds=100), clock=clock)
    tls = identities.issue("team-a", "echo", "echo-1")
    assert tls.identity == SpiffeId.agent(TD, "team-a", "echo", "echo-1")
    assert tls.directory == tmp_path / "tls" / "team-a" / "echo-1"
    assert stat.S_IMODE(os.stat(tls.files().private_key).st_mode) == 0o600
    first = tls.files().load()
    assert first.identity == tls.identity
    assert tls.env()["SUTRADHAR_TLS_KEY_FILE"] == str(tls.directory / "key.pem")
    assert tls.env(CONTAINER_MOUNT)["SUTRADHAR_TLS_CERT_FILE"] == f"{CONTAINER_MOUNT}/cert.pem"
    assert tls.env()["SUTRADHAR_TRUST_DOMAIN"] == TD

    clock.t += 60
    assert identities.renew_due() == 0
    clock.t += 11  # 71 s of 100
    assert identities.renew_due() == 1
    assert tls.files().load().not_after > first.not_after
    assert identities.renew_due() == 0

    identities.remove("team-a", "echo-1")
    assert not tls.directory.exists() and identities.renewals == {}


def test_a_new_leader_adopts_the_files_of_a_running_replica(tmp_path: Path) -> None:
    clock = Clock()
    ca = CertificateAuthority.create(TD)
    before = ReplicaIdentities(ca, tmp_path, lifetime=timedelta(seconds=100), clock=clock)
    issued = before.issue("ns", "echo", "r1").files().load()
    after = ReplicaIdentities(ca, tmp_path, lifetime=timedelta(seconds=100), clock=clock)
    after.adopt("ns", "echo", "r1")
    assert (after.directory("ns", "r1") / "cert.pem").read_bytes() and after.renew_due() == 0
    assert after.renewals[("ns", "r1")].files.load() == issued
    clock.t += 71
    assert after.renew_due() == 1


def test_a_secured_scheduler_without_a_ca_is_refused_saying_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(FailedPrecondition) as err:
        load_authority(None, TD)
    assert "--ca-dir" in str(err.value) and "--insecure" in str(err.value)
    CertificateAuthority.create("other.domain").save(tmp_path)
    with pytest.raises(FailedPrecondition) as foreign:
        load_authority(tmp_path, TD)
    assert "'other.domain'" in str(foreign.value)

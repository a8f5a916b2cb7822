"""`sutradhar image build|list` against the real engine (images built once per session)."""

from __future__ import annotations

import json

import pytest

from sutradhar.cli.main import main
from tests import docker_support
from tests.docker_support import DOCKER_TEST_TIMEOUT

docker_engine = docker_support.docker_engine  # fixtures
agent_image = docker_support.agent_image

pytestmark = [pytest.mark.docker, pytest.mark.timeout(DOCKER_TEST_TIMEOUT)]


def test_image_build_reuses_an_up_to_date_image_and_list_shows_it(agent_image, capsys):
    # The fixture built it; build once more in case the sources changed since
    # (a shared work tree), then a build right after must reuse it.
    assert main(["image", "build"]) == 0
    capsys.readouterr()
    assert main(["image", "build"]) == 0
    out, err = capsys.readouterr()
    assert "up to date" in out
    assert "base image sutradhar/python-base:bookworm exists" in err

    assert main(["image", "list", "-o", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    tags = {tag for row in rows for tag in row["tags"]}
    assert {agent_image, "sutradhar/agent:latest", "sutradhar/python-base:bookworm"} <= tags

    assert main(["image", "list"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert any(line.startswith(agent_image) for line in table)


def test_image_build_with_a_missing_agent_dir_fails_clearly(docker_engine, tmp_path, capsys):
    assert main(["image", "build", "--agent-dir", str(tmp_path / "nope"), "--tag", "sutradhar/x:1"]) == 1
    assert "is not a directory" in capsys.readouterr().err

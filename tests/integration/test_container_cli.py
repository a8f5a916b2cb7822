"""`sutradhar image build|list` against the real engine (images built once per session)."""

from __future__ import annotations

import json
import uuid

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


def test_image_list_shows_images_built_under_other_tags(agent_image, docker_engine, capsys):
    # An image `sutradhar image build --tag other/name:tag` made carries the
    # build's source-digest label, not the sutradhar/ repository. Give the
    # session's image a unique tag outside sutradhar/ (the build with that tag
    # then reuses it, digest unchanged), and remove only that tag afterwards.
    other = f"qa-{uuid.uuid4().hex[:10]}/echo:t1"
    docker_engine.api.tag(agent_image, other.rsplit(":", 1)[0], "t1")
    try:
        assert main(["image", "build", "--tag", other]) == 0
        capsys.readouterr()

        assert main(["image", "list", "-o", "json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        [row] = [r for r in rows if other in r["tags"]]
        assert agent_image in row["tags"]  # one row per image, every tag
        assert "sutradhar/python-base:bookworm" in {t for r in rows for t in r["tags"]}
        assert "<none>:<none>" not in {t for r in rows for t in r["tags"]}

        assert main(["image", "list"]) == 0
        assert any(line.split()[0] == other for line in capsys.readouterr().out.splitlines()[1:])
    finally:
        docker_engine.api.remove_image(other)  # only our tag: the image keeps its sutradhar/ tags

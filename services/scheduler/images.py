"""Build agent images locally, without pulling anything from a registry.

Two images, each built only when missing or out of date:

- the base, ``sutradhar/python-base:bookworm``: Debian bookworm's Python 3.11
  with venv and pip, made by ``debootstrap --variant=minbase`` into a
  directory and ``docker import`` of that directory (about 40 s, once);
- the agent image, ``sutradhar/agent:<version>`` (and ``:latest``), FROM the
  base: the project's wheels, built on the host with ``pip wheel`` and
  installed in the image with ``pip install --no-index`` (so the image build
  needs no network), the agent code under /app on PYTHONPATH, and
  ``ENTRYPOINT ["python3", "-m", "sutradhar.serve"]``. The Dockerfile is
  ``images/agent/Dockerfile``; the legacy builder runs it.

The agent image carries a label with a digest of what went into it (the SDK
sources, pyproject.toml, the Dockerfile, the agent code and the base image id):
an image whose digest matches is reused, anything else is rebuilt.

For TypeScript agents, `build_node_agent_image` makes two more the same way: the base
``sutradhar/node-base:bookworm`` (debootstrap with Debian's nodejs instead of Python) and
``sutradhar/node-agent:<version>``, the built SDK and examples (sdk/typescript, examples/typescript)
with their production node_modules copied from the host, ``ENTRYPOINT ["node"]``
(``images/node-agent/Dockerfile``).

Where a registry is reachable, users need none of this: see docs/containers.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sutradhar._errors import FailedPrecondition, InvalidArgument
from sutradhar.services.scheduler.runtimes.container import docker_client, translate_docker_errors

#: The Python base image made by debootstrap + docker import.
BASE_IMAGE = "sutradhar/python-base:bookworm"
#: Repository of the agent images.
AGENT_REPOSITORY = "sutradhar/agent"
#: Label on agent images: digest of their inputs, to know when to rebuild.
SOURCE_DIGEST_LABEL = "sutradhar.source-digest"
#: Packages debootstrap puts in the base image besides minbase.
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates")
#: The Node.js base image for TypeScript agents, made the same way from Debian's nodejs (18 in bookworm).
NODE_BASE_IMAGE = "sutradhar/node-base:bookworm"
#: Packages debootstrap puts in the Node base image besides minbase.
NODE_BASE_PACKAGES = ("nodejs", "ca-certificates")
#: Repository of the TypeScript agent images.
NODE_AGENT_REPOSITORY = "sutradhar/node-agent"
#: Debian mirror for debootstrap.
DEFAULT_MIRROR = "http://deb.debian.org/debian"

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class BuiltImage:
    """The outcome of a build request."""

    tags: tuple[str, ...]
    """Every tag the image carries now."""
    image_id: str
    """The engine's image id (sha256:...)."""
    built: bool
    """False when an up-to-date image existed and was reused."""
    seconds: float
    """Time spent, including the reuse check."""


def project_root() -> Path:
    """The source checkout this module runs from (it holds pyproject.toml and images/)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file() or not (root / "images" / "agent" / "Dockerfile").is_file():
        raise FailedPrecondition(
            f"agent images are built from a source checkout of Sutradhar, and {root} is not one; "
            "with a registry at hand, use the Dockerfile in docs/containers.md instead"
        )
    return root


def project_version(root: Path | None = None) -> str:
    """The project's version from pyproject.toml."""
    root = root or project_root()
    with (root / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def default_agent_tags(root: Path | None = None) -> tuple[str, ...]:
    """``sutradhar/agent:<version>`` and ``sutradhar/agent:latest``."""
    return (f"{AGENT_REPOSITORY}:{project_version(root)}", f"{AGENT_REPOSITORY}:latest")


def _image_attrs(api: Any, ref: str) -> dict[str, Any] | None:
    import docker.errors

    try:
        return dict(api.inspect_image(ref))
    except docker.errors.ImageNotFound:
        return None


def image_exists(ref: str, *, client: Any = None) -> bool:
    """Whether the engine has an image called `ref`."""
    client = client or docker_client()
    with translate_docker_errors(image=ref):
        return _image_attrs(client.api, ref) is not None


# -- base image -----------------------------------------------------------------

_PER_PACKAGE = ("I: Retrieving ", "I: Validating ", "I: Extracting ", "I: Unpacking ", "I: Configuring ")


def build_base_image(*, client: Any = None, tag: str = BASE_IMAGE, suite: str = "bookworm",
                     mirror: str = DEFAULT_MIRROR, force: bool = False, progress: Progress = _quiet,
                     packages: tuple[str, ...] = BASE_PACKAGES, cmd: str = "python3") -> BuiltImage:
    """Make a base image with debootstrap + docker import, unless it exists: by default the Python
    base; `packages` and `cmd` (the image's CMD) make another (`build_node_base_image`).

    Needs root (debootstrap) and the `debootstrap` tool (scripts/install-docker.sh
    installs it).
    """
    began = time.monotonic()
    client = client or docker_client()
    api = client.api
    with translate_docker_errors(image=tag):
        existing = _image_attrs(api, tag)
    if existing is not None and not force:
        progress(f"base image {tag} exists; reusing it")
        return BuiltImage((tag,), str(existing["Id"]), False, time.monotonic() - began)
    debootstrap = shutil.which("debootstrap") or (
        "/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").exists() else None
    )
    if debootstrap is None:
        raise FailedPrecondition(
            "building the base image needs debootstrap: run `sudo scripts/install-docker.sh` "
            "(or apt-get install debootstrap)"
        )
    if os.geteuid() != 0:
        raise FailedPrecondition(
            f"building the base image {tag} runs debootstrap, which needs root: "
            "run `sudo sutradhar image build --base-only` once"
        )
    workdir = Path(tempfile.mkdtemp(prefix="sutradhar-base-", dir=_scratch_dir()))
    rootfs = workdir / "rootfs"
    log_path = workdir / "debootstrap.log"
    try:
        progress(f"debootstrap {suite} minbase + {', '.join(packages)} into {rootfs} (about 40 s)")
        _run_debootstrap(debootstrap, suite, mirror, rootfs, log_path, progress, packages)
        progress("trimming apt lists, docs and man pages")
        for sub in ("var/lib/apt/lists", "var/cache/apt", "usr/share/doc", "usr/share/man", "usr/share/info"):
            target = rootfs / sub
            if target.is_dir():
                for child in target.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
        progress(f"importing {rootfs} as {tag}")
        image_id = _import_rootfs(api, rootfs, tag, cmd)
        progress(f"base image {tag} ready ({image_id[:19]}, {time.monotonic() - began:.0f} s)")
        return BuiltImage((tag,), image_id, True, time.monotonic() - began)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _scratch_dir() -> str | None:
    """/var/tmp when it exists (a rootfs can outgrow a tmpfs /tmp)."""
    return "/var/tmp" if Path("/var/tmp").is_dir() else None


def _run_debootstrap(binary: str, suite: str, mirror: str, rootfs: Path, log_path: Path,
                     progress: Progress, include: tuple[str, ...] = BASE_PACKAGES) -> None:
    argv = [binary, "--variant=minbase", f"--include={','.join(include)}", suite, str(rootfs), mirror]
    began = time.monotonic()
    packages = 0
    with log_path.open("w") as log, subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            line = line.rstrip()
            if line.startswith(_PER_PACKAGE):
                packages += 1
                continue
            if line.startswith(("I: ", "W: ", "E: ")):
                progress(f"  debootstrap: {line[3:]} ({time.monotonic() - began:.0f} s)")
        code = proc.wait()
    progress(f"  debootstrap: {packages} per-package steps in {time.monotonic() - began:.0f} s")
    if code != 0:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-8:]
        raise FailedPrecondition(
            f"debootstrap exited with {code} (is {mirror} reachable? are you root?):\n" + "\n".join(tail)
        )


def _import_rootfs(api: Any, rootfs: Path, tag: str, cmd: str = "python3") -> str:
    repository, _, version = tag.rpartition(":")
    if not repository:
        repository, version = tag, "latest"
    changes = [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        f'CMD ["{cmd}"]',
    ]
    tar = subprocess.Popen(
        ["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert tar.stdout is not None
    try:
        with translate_docker_errors(image=tag):
            answer = api.import_image_from_stream(tar.stdout, repository=repository, tag=version,
                                                  changes=changes)
    finally:
        tar.stdout.close()
        _, err = tar.communicate()
    if tar.returncode != 0:
        raise FailedPrecondition(f"tar of {rootfs} failed: {err.decode(errors='replace').strip()}")
    for message in _json_lines(answer):
        if "error" in message:
            raise FailedPrecondition(f"docker import failed: {message['error']}")
    with translate_docker_errors(image=tag):
        return str(api.inspect_image(tag)["Id"])


def _json_lines(answer: Any) -> list[dict[str, Any]]:
    text = answer.decode() if isinstance(answer, bytes) else str(answer)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                out.append({"status": line})
    return out


# -- agent image ----------------------------------------------------------------

_SKIP_DIRS = {"__pycache__", ".git", ".venv", ".mypy_cache", ".pytest_cache", ".ruff_cache"}


def _files(root: Path) -> Iterable[Path]:
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and not _SKIP_DIRS.intersection(path.relative_to(root).parts) \
                and path.suffix not in (".pyc", ".pyo"):
            yield path


def source_digest(root: Path, agent_dir: Path, base_id: str) -> str:
    """Digest of everything the agent image is made from."""
    inputs = [root / "pyproject.toml", root / "images" / "agent" / "Dockerfile", root / "sdk" / "sutradhar"]
    return _inputs_digest(root, base_id, inputs, agent_dir)


def _inputs_digest(root: Path, base_id: str, inputs: Iterable[Path], app: Path | None = None) -> str:
    """Digest of the base image id, of every file under `inputs` (by their paths under `root`) and under
    `app` (by their paths under app/)."""
    digest = hashlib.sha256(base_id.encode())
    for top in inputs:
        for path in _files(top):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    if app is not None:
        for path in _files(app):
            digest.update(b"app/" + str(path.relative_to(app)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _tags_and_engine(tags: Iterable[str], client: Any) -> tuple[tuple[str, ...], Any, Any]:
    """The tags an image build is given (at least one), the Docker client (`client` or a new one) and its API."""
    tag_list = tuple(tags)
    if not tag_list:
        raise InvalidArgument("no image tag given", field="tag")
    client = client or docker_client()
    return tag_list, client, client.api


def _reusable(api: Any, tag_list: tuple[str, ...], digest: str, force: bool, began: float,
              progress: Progress) -> tuple[dict[str, Any] | None, BuiltImage | None]:
    """The image the first tag names now, and a BuiltImage when it was built from `digest` (tagged with the
    other tags too): reuse it. With `force`, never reuse."""
    with translate_docker_errors(image=tag_list[0]):
        existing = _image_attrs(api, tag_list[0])
    if existing is not None and not force:
        labels = (existing.get("Config") or {}).get("Labels") or {}
        if labels.get(SOURCE_DIGEST_LABEL) == digest:
            for tag in tag_list[1:]:
                _tag(api, str(existing["Id"]), tag)
            progress(f"agent image {tag_list[0]} is up to date; reusing it")
            return existing, BuiltImage(tag_list, str(existing["Id"]), False, time.monotonic() - began)
        progress(f"agent image {tag_list[0]} is out of date; rebuilding")
    return existing, None


def build_agent_image(*, client: Any = None, tags: Iterable[str] | None = None, base: str = BASE_IMAGE,
                      agent_dir: Path | str | None = None, force: bool = False,
                      progress: Progress = _quiet) -> BuiltImage:
    """Build the agent image FROM `base` (built first when missing), unless an
    image with the same inputs carries the first tag already.

    `agent_dir` is copied to /app (on PYTHONPATH); its requirements.txt, if any,
    is installed too (wheels built on the host). The default puts the project's
    examples/ at /app/examples, so ``examples.echo_agent:EchoAgent`` imports.
    """
    began = time.monotonic()
    root = project_root()
    tag_list, client, api = _tags_and_engine(tags or default_agent_tags(root), client)
    if base == BASE_IMAGE:
        base_built = build_base_image(client=client, tag=base, progress=progress)
    else:  # someone else's base (e.g. python:3.11-slim): use it, never make it
        with translate_docker_errors(image=base):
            base_attrs = _image_attrs(api, base)
        if base_attrs is None:
            raise FailedPrecondition(
                f"base image {base!r} is not on this Docker engine; pull or build it first, "
                f"or leave --base out to use {BASE_IMAGE} (built here without a registry)"
            )
        base_built = BuiltImage((base,), str(base_attrs["Id"]), False, 0.0)
    if agent_dir is None:
        source, app_sub = root / "examples", "examples"
    else:
        source, app_sub = Path(agent_dir).resolve(), ""
        if not source.is_dir():
            raise InvalidArgument(f"--agent-dir {agent_dir} is not a directory", field="agent_dir")
    digest = source_digest(root, source, base_built.image_id)
    existing, reused = _reusable(api, tag_list, digest, force, began, progress)
    if reused is not None:
        return reused
    context = Path(tempfile.mkdtemp(prefix="sutradhar-agent-ctx-", dir=_scratch_dir()))
    try:
        progress("building wheels on the host (pip wheel: the project and its dependencies)")
        requirements = _prepare_wheels(root, source, context / "wheels")
        progress(f"  {len(list((context / 'wheels').glob('*.whl')))} wheels; requirements: {', '.join(requirements)}")
        app = context / "app" / app_sub if app_sub else context / "app"
        shutil.copytree(source, app, ignore=shutil.ignore_patterns(*_SKIP_DIRS, "*.pyc"))
        shutil.copy2(root / "images" / "agent" / "Dockerfile", context / "Dockerfile")
        progress(f"docker build (legacy builder) FROM {base} -> {', '.join(tag_list)}")
        return _build_tagged(api, context, tag_list, base, digest, project_version(root), existing, began, progress)
    finally:
        shutil.rmtree(context, ignore_errors=True)


def _build_tagged(api: Any, context: Path, tag_list: tuple[str, ...], base: str, digest: str, version: str,
                  existing: dict[str, Any] | None, began: float, progress: Progress) -> BuiltImage:
    """docker build `context` as the first tag, tag it with the others, drop the image it replaces."""
    image_id = _docker_build(api, context, tag_list[0], base, digest, version, progress)
    for tag in tag_list[1:]:
        _tag(api, image_id, tag)
    if existing is not None and existing["Id"] != image_id:
        _remove_if_unused(api, str(existing["Id"]), progress)
    progress(f"agent image {', '.join(tag_list)} ready ({image_id[:19]}, {time.monotonic() - began:.0f} s)")
    return BuiltImage(tag_list, image_id, True, time.monotonic() - began)


def _tag(api: Any, image_id: str, tag: str) -> None:
    repository, _, version = tag.rpartition(":")
    if not repository or "/" in version:
        repository, version = tag, "latest"
    with translate_docker_errors(image=tag):
        api.tag(image_id, repository, version, force=True)


def _remove_if_unused(api: Any, image_id: str, progress: Progress) -> None:
    """Drop the image a rebuild replaced, unless something still uses or names it."""
    import docker.errors

    try:
        attrs = api.inspect_image(image_id)
        if attrs.get("RepoTags"):
            return
        api.remove_image(image_id, noprune=False)
        progress(f"removed the replaced image {image_id[7:19]}")
    except docker.errors.APIError:  # in use by a container, or gone already
        pass


def _prepare_wheels(root: Path, agent_dir: Path, wheels: Path) -> list[str]:
    """Wheels of the project (built from a clean copy, so the work tree gets no
    build/ or egg-info) and of its and the agent's requirements, plus the
    requirements.txt the Dockerfile installs from. Returns the requirement lines."""
    wheels.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="sutradhar-src-") as tmp:
        copy = Path(tmp) / "sutradhar"
        copy.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            if (root / name).is_file():
                shutil.copy2(root / name, copy / name)
        if not (copy / "README.md").exists():
            (copy / "README.md").write_text("Sutradhar\n")
        for name in ("sdk", "cli", "services"):
            shutil.copytree(root / name, copy / name, ignore=shutil.ignore_patterns(*_SKIP_DIRS, "*.pyc"))
        # the metrics extra (prometheus-client): a replica serves the /metrics port the scheduler gives it;
        # the uvloop extra: its event loop (sutradhar._event_loop)
        argv = [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels), f"{copy}[metrics,uvloop]"]
        requirements = [f"sutradhar[metrics,uvloop]=={project_version(root)}"]
        extra = agent_dir / "requirements.txt"
        if extra.is_file():
            argv += ["-r", str(extra)]
            requirements += [
                line.strip() for line in extra.read_text().splitlines()
                if line.strip() and not line.strip().startswith("#")
            ]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise FailedPrecondition(
                "pip wheel failed while preparing the agent image:\n" + done.stderr.strip()[-2000:]
            )
    (wheels / "requirements.txt").write_text("\n".join(requirements) + "\n")
    return requirements


def _docker_build(api: Any, context: Path, tag: str, base: str, digest: str, version: str,
                  progress: Progress) -> str:
    with translate_docker_errors(image=base):
        stream = api.build(
            path=str(context), tag=tag, rm=True, forcerm=True, decode=True, pull=False,
            buildargs={"BASE_IMAGE": base},
            labels={SOURCE_DIGEST_LABEL: digest, "org.opencontainers.image.version": version},
        )
        image_id = ""
        for event in stream:
            if "error" in event:
                raise FailedPrecondition(f"docker build failed: {str(event['error']).strip()}")
            text = str(event.get("stream", "")).strip()
            if text.startswith("Step "):
                progress(f"  {text}")
            if "aux" in event and isinstance(event["aux"], dict) and "ID" in event["aux"]:
                image_id = str(event["aux"]["ID"])
        if not image_id:
            image_id = str(api.inspect_image(tag)["Id"])
    return image_id


def ensure_images(*, client: Any = None, progress: Progress = _quiet) -> BuiltImage:
    """The base and the default agent image, each built only when missing or stale."""
    return build_agent_image(client=client, progress=progress)


@dataclass(frozen=True)
class ImageInfo:
    """One local Sutradhar image."""

    tags: tuple[str, ...]
    image_id: str
    created: int
    size: int


def list_images(*, client: Any = None) -> list[ImageInfo]:
    """Every image Sutradhar built here, newest first.

    Agent images are found by the label every build sets
    (``sutradhar.source-digest``), whatever their tags (``--tag my/agent:1.0``
    too), each with all its tags; base images, which ``docker import`` makes
    without labels, by the base repositories (``sutradhar/python-base``,
    ``sutradhar/node-base``). An
    untagged agent image (one a rebuild replaced while a container used it)
    is listed with no tags.
    """
    client = client or docker_client()
    with translate_docker_errors():
        rows = [
            *client.api.images(filters={"label": SOURCE_DIGEST_LABEL}),
            *client.api.images(filters={"reference": [base.rpartition(":")[0]
                                                      for base in (BASE_IMAGE, NODE_BASE_IMAGE)]}),
        ]
    found: dict[str, ImageInfo] = {}
    for row in rows:
        image_id = str(row["Id"])
        tags = {t for t in row.get("RepoTags") or [] if t != "<none>:<none>"}
        if image_id in found:  # a base image that carries the label too: one row, every tag
            tags |= set(found[image_id].tags)
        found[image_id] = ImageInfo(
            tags=tuple(sorted(tags)),
            image_id=image_id,
            created=int(row.get("Created", 0)),
            size=int(row.get("Size", 0)),
        )
    return sorted(found.values(), key=lambda i: (-i.created, i.tags))


# -- TypeScript (Node.js) agent image ------------------------------------------------


def build_node_base_image(*, client: Any = None, tag: str = NODE_BASE_IMAGE, force: bool = False,
                          progress: Progress = _quiet) -> BuiltImage:
    """The Node.js base image: debootstrap minbase + Debian's nodejs, docker import; made once."""
    return build_base_image(client=client, tag=tag, force=force, progress=progress, packages=NODE_BASE_PACKAGES,
                            cmd="node")


def default_node_agent_tags(root: Path | None = None) -> tuple[str, ...]:
    """``sutradhar/node-agent:<version>`` and ``sutradhar/node-agent:latest``."""
    return (f"{NODE_AGENT_REPOSITORY}:{project_version(root)}", f"{NODE_AGENT_REPOSITORY}:latest")


def _production_packages(package_dir: Path) -> list[Path]:
    """The directories of `package_dir`'s production dependencies (all of them, nested ones too) under its
    node_modules, as npm installed them from the lock file: `npm ls --omit=dev --all --parseable`, offline."""
    npm = shutil.which("npm")
    if npm is None:
        raise FailedPrecondition("building the TypeScript agent image needs npm on the host: apt-get install npm")
    done = subprocess.run([npm, "ls", "--omit=dev", "--all", "--parseable"], cwd=package_dir, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise FailedPrecondition(
            f"npm ls in {package_dir} failed: run `npm ci && npm run build` there first:\n{done.stderr.strip()[-800:]}")
    top = package_dir.resolve()
    return [Path(line) for line in done.stdout.split() if Path(line).resolve() != top]


def _copy_node_package(source: Path, target: Path, parts: Iterable[str]) -> None:
    """`parts` of the built npm package `source` and its production node_modules (copied without what npm's
    dev dependencies put there) to `target`."""
    target.mkdir(parents=True)
    for part in parts:
        if not (source / part).exists():
            raise FailedPrecondition(f"{source / part} is missing: run `npm ci && npm run build` in {source}")
        copy = shutil.copytree if (source / part).is_dir() else shutil.copy2
        copy(source / part, target / part)
    for package in _production_packages(source):
        if package.is_relative_to(source) and not package.is_symlink():  # a linked package: below
            shutil.copytree(package, target / package.relative_to(source),
                            ignore=shutil.ignore_patterns("node_modules"), dirs_exist_ok=True)
    for link in [*source.glob("node_modules/*"), *source.glob("node_modules/@*/*")]:
        if link.is_symlink():  # a file: dependency (the examples' @sutradhar/sdk): the same relative link
            where = target / link.relative_to(source)
            where.parent.mkdir(parents=True, exist_ok=True)
            where.symlink_to(os.readlink(link))


def build_node_agent_image(*, client: Any = None, tags: Iterable[str] | None = None, force: bool = False,
                           progress: Progress = _quiet) -> BuiltImage:
    """The TypeScript agent image FROM the Node base (built first when missing), unless an image with the
    same inputs carries the first tag already: the built SDK (sdk/typescript: package.json, dist/ and its
    production node_modules) and examples (examples/typescript) under /app, ``ENTRYPOINT ["node"]``, so a
    container's command is the script (``examples/typescript/dist/echo/agent.js``). Both must have been
    installed and built on the host (``npm ci && npm run build``); nothing is fetched while building.
    """
    began = time.monotonic()
    root = project_root()
    tag_list, client, api = _tags_and_engine(tags or default_node_agent_tags(root), client)
    base = build_node_base_image(client=client, progress=progress)
    sdk, examples = root / "sdk" / "typescript", root / "examples" / "typescript"
    dockerfile = root / "images" / "node-agent" / "Dockerfile"
    inputs = [dockerfile, *(sdk / p for p in ("package.json", "package-lock.json", "dist")),
              *(examples / p for p in ("package.json", "package-lock.json", "dist"))]
    digest = _inputs_digest(root, base.image_id, inputs)
    existing, reused = _reusable(api, tag_list, digest, force, began, progress)
    if reused is not None:
        return reused
    context = Path(tempfile.mkdtemp(prefix="sutradhar-node-agent-ctx-", dir=_scratch_dir()))
    try:
        progress("copying the built TypeScript SDK and examples with their production dependencies")
        app = context / "app"
        _copy_node_package(sdk, app / "sdk" / "typescript", ("package.json", "dist"))
        shutil.rmtree(app / "sdk" / "typescript" / "dist" / "test", ignore_errors=True)
        _copy_node_package(examples, app / "examples" / "typescript", ("package.json", "dist"))
        shutil.copy2(dockerfile, context / "Dockerfile")
        progress(f"docker build (legacy builder) FROM {base.tags[0]} -> {', '.join(tag_list)}")
        return _build_tagged(api, context, tag_list, base.tags[0], digest, project_version(root), existing, began,
                             progress)
    finally:
        shutil.rmtree(context, ignore_errors=True)

"""`sutradhar image build|list`: agent images built locally (no registry needed).

    sutradhar image build                      # base (once) + sutradhar/agent:<version>, :latest
    sutradhar image build --base-only          # only sutradhar/python-base:bookworm
    sutradhar image build --agent-dir ./my_agents --tag my/agent:1.0
    sutradhar image list [-o json]             # every image built here, whatever its tags

See docs/containers.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `image` command group."""
    image = subparsers.add_parser("image", help="build and list agent container images")
    sub = image.add_subparsers(dest="image_command", metavar="SUBCOMMAND")
    sub.required = True

    build = sub.add_parser(
        "build",
        help="build the Python base image and the agent image locally",
        description="Build sutradhar/python-base:bookworm with debootstrap + docker import (once, "
        "about 40 s; needs root), then the agent image FROM it with the project's wheels installed "
        "offline. Up-to-date images are reused.",
    )
    build.add_argument("--base-only", action="store_true", help="build only the base image")
    build.add_argument(
        "--tag", action="append", default=None, metavar="NAME[:TAG]",
        help="tag for the agent image (repeatable; default sutradhar/agent:<version> and :latest)",
    )
    build.add_argument(
        "--agent-dir", default=None, metavar="DIR",
        help="agent code to copy to /app (on PYTHONPATH); its requirements.txt is installed too "
        "(default: the project's examples/ at /app/examples)",
    )
    build.add_argument("--base", default=None, metavar="IMAGE",
                       help="base image (default sutradhar/python-base:bookworm)")
    build.add_argument("--force", action="store_true", help="rebuild even when up to date")
    build.add_argument(
        "--node", action="store_true",
        help="build the TypeScript agent image instead (sutradhar/node-agent FROM sutradhar/node-base: the "
        "built sdk/typescript and examples/typescript, ENTRYPOINT node; run `npm ci && npm run build` in both "
        "first); --tag and --force apply, --agent-dir and --base do not",
    )
    build.set_defaults(func=_build)

    listing = sub.add_parser(
        "list", help="list the images sutradhar built here (any --tag), and the base images",
        description="List every agent image `sutradhar image build` made, found by its "
        "sutradhar.source-digest label whatever its tags, and the base images sutradhar/python-base and "
        "sutradhar/node-base.",
    )
    listing.add_argument("-o", "--output", choices=("table", "json"), default="table")
    listing.set_defaults(func=_list)


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _build(args: argparse.Namespace) -> int:
    from sutradhar.services.scheduler import images

    if args.node:
        if args.agent_dir or args.base or args.base_only:
            print("error: --node builds the TypeScript image from the project's sdk/typescript and "
                  "examples/typescript; drop --agent-dir, --base and --base-only", file=sys.stderr)
            return 2
        node = images.build_node_agent_image(tags=args.tag, force=args.force, progress=_progress)
        state = "built" if node.built else "up to date"
        print(f"{', '.join(node.tags)}  {node.image_id[7:19]}  {state} in {node.seconds:.1f} s")
        return 0
    base = args.base or images.BASE_IMAGE
    if args.base_only:
        result = images.build_base_image(tag=base, force=args.force, progress=_progress)
    else:
        result = images.build_agent_image(
            tags=args.tag, base=base, agent_dir=args.agent_dir, force=args.force, progress=_progress
        )
    state = "built" if result.built else "up to date"
    print(f"{', '.join(result.tags)}  {result.image_id[7:19]}  {state} in {result.seconds:.1f} s")
    return 0


def _list(args: argparse.Namespace) -> int:
    from sutradhar.services.scheduler import images

    rows = images.list_images()
    if args.output == "json":
        print(json.dumps([
            {"tags": list(r.tags), "id": r.image_id, "created": r.created, "size": r.size} for r in rows
        ], indent=2))
        return 0
    table = [("TAG", "IMAGE ID", "CREATED", "SIZE")]
    for r in rows:
        created = datetime.fromtimestamp(r.created, UTC).strftime("%Y-%m-%d %H:%M:%S")
        for tag in r.tags or ("<none>",):
            table.append((tag, r.image_id[7:19], created, f"{r.size / 1e6:.0f} MB"))
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0

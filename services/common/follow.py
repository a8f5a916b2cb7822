"""List a prefix, then follow its changes, resuming after every disconnect.

`follow_prefix` calls `reset(kvs)` with a full listing, then `event(ev)` for
each change. A broken watch resumes from the last seen revision + 1; a
compacted revision (OutOfRange) lists again and calls `reset` again, so the
caller's view is level-correct whatever was missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

from sutradhar._errors import OutOfRange, Unavailable
from sutradhar.services.common.store import Event, KeyValue, Store

log = logging.getLogger(__name__)


async def follow_prefix(
    store: Store,
    prefix: str,
    *,
    reset: Callable[[list[KeyValue]], None],
    event: Callable[[Event], None],
    retry: timedelta = timedelta(milliseconds=500),
) -> None:
    """Run forever (cancel to stop)."""
    revision = 0
    while True:
        try:
            if revision == 0:
                kvs, listed = await store.list(prefix)
                reset(kvs)
                revision = listed
            async for ev in store.watch(prefix, start_revision=revision + 1):
                event(ev)
                revision = max(revision, ev.revision)
        except OutOfRange as err:
            log.warning("watch of %s fell behind compaction (%s); listing again", prefix, err)
            revision = 0
        except Unavailable as err:
            log.warning("watch of %s broke (%s); resuming from revision %d", prefix, err, revision + 1)
            await asyncio.sleep(retry.total_seconds())
            continue
        else:
            # The stream ended without an error (etcd closed it): resume.
            await asyncio.sleep(retry.total_seconds())

"""Write to a SqliteStore without end, printing each acknowledged write; killed by the test.

Usage: python durability_writer.py DB_PATH NAME_PREFIX

Each line printed is one write that returned: ``put NAME RV``, ``del NAME RV`` or
``event ID``. Output is flushed per line, so every printed line was acknowledged.
"""

from __future__ import annotations

import asyncio
import sys

from agentic_sandbox.crds.event import Event
from agentic_sandbox.crds.instance import Instance, Phase
from agentic_sandbox.crds.meta import RUNTIME_FINALIZER
from agentic_sandbox.store.sqlite import SqliteStore

# A bound so that a writer whose parent died does not run forever.
MAX_ROUNDS = 100_000


def report(*fields: object) -> None:
    print(*fields, flush=True)


async def write_forever(path: str, prefix: str) -> None:
    async with SqliteStore(path) as store:
        for index in range(MAX_ROUNDS):
            name = f"{prefix}-{index}"
            obj = Instance.model_validate(
                {
                    "metadata": {"name": name, "finalizers": [RUNTIME_FINALIZER]},
                    "spec": {"image": "busybox:1.36", "env": {"INDEX": str(index)}},
                }
            )
            created = await store.create(obj)
            report("put", name, created.metadata.resource_version)

            assert isinstance(created, Instance)
            created.status.phase = Phase.RUNNING
            running = await store.update_status(created)
            report("put", name, running.metadata.resource_version)

            if index % 3 == 0:
                marked = await store.delete("Instance", "default", name)
                assert marked is not None
                report("put", name, marked.metadata.resource_version)
                marked.metadata.finalizers.clear()
                gone = await store.update(marked)
                report("del", name, gone.metadata.resource_version)

            event = await store.events.append(Event(name="instance.created", instance=name))
            report("event", event.id)


if __name__ == "__main__":
    asyncio.run(write_forever(sys.argv[1], sys.argv[2]))

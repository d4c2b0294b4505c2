"""Runs Python NuroPb's ServiceExample in nuropb.service_runner.ServiceContainer, electing a
leader through etcd with the other instances of the service (Python or Rust).

usage: python_container.py AMQP_URL ETCD_HOST ETCD_PORT SERVICE_NAME
Prints {"container": {"instance_id": ...}} first, then one JSON line per change of the
container's running state, leadership or rmq-config-ok flag, and {"started": true} once
start() has returned (the service consumes). Stops gracefully (ServiceContainer.stop(): the
lease is revoked) when stdin closes.
"""
import asyncio
import json
import logging
import sys
import time
from uuid import uuid4

from nuropb.rmq_api import RMQAPI
from nuropb.rmq_lib import rmq_api_url_from_amqp_url
from nuropb.service_runner import ServiceContainer
from nuropb.testing.stubs import ServiceExample


def say(**fields) -> None:
    fields["at_ms"] = int(time.time() * 1000)
    print(json.dumps(fields), flush=True)


async def main() -> None:
    url, host, port, name = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    instance = ServiceExample(service_name=name, instance_id=uuid4().hex)
    api = RMQAPI(
        service_instance=instance,
        service_name=name,
        instance_id=instance.instance_id,
        amqp_url=url,
        transport_settings={"rpc_bindings": [name], "prefetch_count": 1},
    )
    container = ServiceContainer(
        rmq_api_url=rmq_api_url_from_amqp_url(url),
        instance=api,
        etcd_config={"host": host, "port": port},
    )
    say(container={"instance_id": instance.instance_id})

    async def watch_state() -> None:
        last = None
        while True:
            now = (container.running_state, container._is_leader, container._rmq_config_ok)
            if now != last:
                say(state=now[0], leader=now[1], rmq_config_ok=now[2])
                last = now
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch_state())
    started = await container.start()
    say(started=started)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await container.stop()
    await asyncio.sleep(0.05)
    watcher.cancel()


logging.basicConfig(level=logging.INFO, stream=sys.stderr)
asyncio.run(main())

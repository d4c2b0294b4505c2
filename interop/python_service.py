"""Serves Python NuroPb's ServiceExample, printing one JSON line per event it receives.

usage: python_service.py AMQP_URL SERVICE_NAME [EVENT_BINDING ...]
Prints {"ready": true} once connected; runs until stdin closes.
"""
import asyncio
import json
import logging
import sys
from uuid import uuid4

from nuropb.rmq_api import RMQAPI
from nuropb.testing.stubs import ServiceExample


class EventfulServiceExample(ServiceExample):
    def _handle_event_(self, topic, event, target, context):
        print(json.dumps({"topic": topic, "event": event, "target": target, "context": context}), flush=True)

    def echo(self, **kwargs):
        """Returns its params."""
        return kwargs

    def record(self, **kwargs):
        """A command target: prints what it was given."""
        print(json.dumps({"command": kwargs}), flush=True)
        return "recorded"


async def main() -> None:
    url, name, bindings = sys.argv[1], sys.argv[2], sys.argv[3:]
    instance = EventfulServiceExample(service_name=name, instance_id=uuid4().hex)
    api = RMQAPI(
        service_instance=instance,
        service_name=name,
        instance_id=instance.instance_id,
        amqp_url=url,
        transport_settings={"rpc_bindings": [name], "event_bindings": bindings, "prefetch_count": 1},
    )
    await api.connect()
    print(json.dumps({"ready": True}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await api.disconnect()


logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
asyncio.run(main())

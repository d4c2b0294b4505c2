"""Python NuroPb 0.1.8 in the mesh benchmark: the same service and the same scenarios as the Rust
participants, so that the two are measured side by side in one run.

usage:
  python_bench.py service AMQP_URL PREFETCH
      serves `bench` (echo, events_seen, events on bench.#); prints {"ready": true} once
      connected; runs until stdin closes.
  python_bench.py requests AMQP_URL SERVICE_PID OUTSTANDING TOTAL
  python_bench.py events AMQP_URL SERVICE_PID TOTAL
      measures, then prints one JSON line: seconds elapsed, per-request latencies in seconds
      (requests), and the CPU seconds this process and the service process spent meanwhile.
"""
import asyncio
import json
import logging
import sys
import time
from uuid import uuid4

from nuropb.rmq_api import RMQAPI
from nuropb.testing.stubs import ServiceStub

PAYLOAD = {"param1": "value1", "param2": {"param2a": "value2a"}}


class BenchService(ServiceStub):
    events = 0

    def echo(self, **params):
        return params

    def events_seen(self, **_params):
        return self.events

    def _handle_event_(self, topic, event, target, context):
        self.events += 1


def cpu_seconds(pid):
    """User + system CPU seconds of process `pid`, from /proc (as the Rust bench reads them)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0


async def serve(url, prefetch):
    instance = BenchService(service_name="bench", instance_id=uuid4().hex)
    api = RMQAPI(
        service_instance=instance,
        service_name="bench",
        instance_id=instance.instance_id,
        amqp_url=url,
        transport_settings={
            "rpc_bindings": ["bench"],
            "event_bindings": ["bench.#"],
            "prefetch_count": prefetch,
        },
    )
    await api.connect()
    print(json.dumps({"ready": True}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await api.disconnect()


async def client(url):
    api = RMQAPI(amqp_url=url)
    await api.connect()
    return api


async def echo(api):
    response = await api.request(service="bench", method="echo", params=PAYLOAD, context={},
                                 rpc_response=False)
    if response["error"] is not None:
        raise RuntimeError(f"echo failed: {response['error']}")


async def requests(url, service_pid, outstanding, total):
    api = await client(url)
    for _ in range(200):
        await echo(api)
    per_caller = total // outstanding

    async def caller():
        latencies = []
        for _ in range(per_caller):
            t = time.perf_counter()
            await echo(api)
            latencies.append(time.perf_counter() - t)
        return latencies

    cpu = (cpu_seconds("self"), cpu_seconds(service_pid))
    started = time.perf_counter()
    results = await asyncio.gather(*[caller() for _ in range(outstanding)])
    elapsed = time.perf_counter() - started
    cpu = (cpu_seconds("self") - cpu[0], cpu_seconds(service_pid) - cpu[1])
    await api.disconnect()
    return {"elapsed": elapsed, "latencies": [l for r in results for l in r], "cpu": cpu}


async def events_seen(api):
    response = await api.request(service="bench", method="events_seen", params={}, context={},
                                 rpc_response=False)
    return response["result"]


async def events(url, service_pid, total):
    api = await client(url)
    before = await events_seen(api)
    cpu = (cpu_seconds("self"), cpu_seconds(service_pid))
    started = time.perf_counter()
    for i in range(total):
        api.publish_event(topic="bench.tick", event={"i": i, "payload": "x" * 64}, context={})
        if i % 256 == 0:
            await asyncio.sleep(0)  # lets the connection write what it has buffered
    while await events_seen(api) < before + total:
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - started
    cpu = (cpu_seconds("self") - cpu[0], cpu_seconds(service_pid) - cpu[1])
    await api.disconnect()
    return {"elapsed": elapsed, "cpu": cpu}


def main():
    role, url = sys.argv[1], sys.argv[2]
    if role == "service":
        asyncio.run(serve(url, int(sys.argv[3])))
        return
    service_pid = sys.argv[3]
    if role == "requests":
        out = asyncio.run(requests(url, service_pid, int(sys.argv[4]), int(sys.argv[5])))
    else:
        out = asyncio.run(events(url, service_pid, int(sys.argv[4])))
    print(json.dumps(out), flush=True)


logging.basicConfig(level=logging.CRITICAL, stream=sys.stderr)
main()

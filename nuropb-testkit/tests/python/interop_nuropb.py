"""The real Python nuropb 0.1.8 against an AMQP broker (the testkit's nuropb-broker in the Rust test).

Usage: python interop_nuropb.py <port> [vhost]

1. configures the mesh over AMQP (nuropb.rmq_lib.configure_nuropb_rmq; no management API);
2. runs the equivalent of nuropb's examples/all_in_one.py: service "quick-example" with
   test_method and an authorized test_requires_user_claims, and a client calling both;
3. serves nuropb.testing.stubs.ServiceExample as "test_service" and calls every method of it from a
   client-only API, sends a command, publishes an event the service subscribes to, and describes it.

Python-side assertions make the script exit non-zero on any mismatch. The last line of stdout is
`RESULTS <json>` with what each call returned, for the Rust side to assert again.
"""
import asyncio
import json
import logging
import sys
from typing import Any, Dict

from nuropb.contexts.context_manager import NuropbContextManager
from nuropb.contexts.context_manager_decorator import nuropb_context
from nuropb.contexts.describe import publish_to_mesh
from nuropb.rmq_api import RMQAPI
from nuropb.rmq_lib import configure_nuropb_rmq
from nuropb.testing.stubs import ServiceExample, get_claims_from_token

PORT = int(sys.argv[1])
VHOST = sys.argv[2] if len(sys.argv) > 2 else "nuropb-interop"
URL = f"amqp://guest:guest@127.0.0.1:{PORT}/{VHOST}"
TIMEOUT = 20

logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                    format="%(levelname).1s %(name)s: %(message)s")
logger = logging.getLogger("interop")
RESULTS: Dict[str, Any] = {}


def record(name: str, value: Any) -> Any:
    RESULTS[name] = value
    print(f"{name}: {value!r}", file=sys.stderr)
    return value


class QuickExampleService:
    """examples/all_in_one.py's service."""

    _service_name = "quick-example"
    _instance_id = "quickexampleinstance0000000000001"

    @nuropb_context
    @publish_to_mesh(authorize_func=get_claims_from_token)
    def test_requires_user_claims(self, ctx, **kwargs: Any) -> str:
        assert isinstance(ctx, NuropbContextManager)
        return f"hello {ctx.user_claims['user_id']}"

    def test_method(self, param1, param2: Dict[str, Any]) -> Dict[str, Any]:
        return {"param1": param1, "param2": param2, "reply": "response from test_method"}


class EventedServiceExample(ServiceExample):
    """ServiceExample plus the event handler nuropb calls for its event_bindings."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.events: "asyncio.Queue[Dict[str, Any]]" = asyncio.Queue()

    def _handle_event_(self, topic: str, event: Any, target: Any, context: Dict[str, Any]) -> None:
        self.events.put_nowait({"topic": topic, "event": event, "target": target, "context": context})


async def call(coro: Any) -> Any:
    return await asyncio.wait_for(coro, timeout=TIMEOUT)


async def all_in_one() -> None:
    service = QuickExampleService()
    service_api = RMQAPI(
        service_instance=service,
        service_name=service._service_name,
        instance_id=service._instance_id,
        amqp_url=URL,
        transport_settings={"rpc_bindings": [service._service_name], "event_bindings": []},
    )
    await call(service_api.connect())
    client = RMQAPI(amqp_url=URL)
    await call(client.connect())
    claims = await call(client.request(
        service="quick-example", method="test_requires_user_claims", params={},
        context={"Authorization": "Bearer: user_token"}))
    assert record("all_in_one.test_requires_user_claims", claims) == "hello test_user", claims
    reply = await call(client.request(
        service="quick-example", method="test_method",
        params={"param1": "value1", "param2": {"param2a": "value2a"}}, context={}))
    assert record("all_in_one.test_method", reply) == {
        "param1": "value1", "param2": {"param2a": "value2a"}, "reply": "response from test_method"}, reply
    await call(client.disconnect())
    await call(service_api.disconnect())


async def service_example() -> None:
    service = EventedServiceExample(service_name="test_service", instance_id="testserviceinstance000000000000a1")
    service_api = RMQAPI(
        service_instance=service,
        service_name="test_service",
        instance_id=service.instance_id,
        amqp_url=URL,
        transport_settings={"rpc_bindings": ["test_service"], "event_bindings": ["test-event", "order.*"],
                            "prefetch_count": 1},
    )
    await call(service_api.connect())
    client = RMQAPI(amqp_url=URL, instance_id="interopclient0000000000000000b2")
    await call(client.connect())

    async def request(method: str, **kwargs: Any) -> Any:
        kwargs.setdefault("params", {"param1": "value1"})
        kwargs.setdefault("context", {"context1": "value1"})
        return await call(client.request(service="test_service", method=method, **kwargs))

    r = record("test_method", await request("test_method"))
    assert r == "response from test_service.test_method", r
    r = record("do_async_task", await request("do_async_task"))
    assert r == "response from test_service.test_method", r
    r = record("test_async_method", await request("test_async_method"))
    assert r == "response from test_service.test_async_method", r
    r = record("test_success_error", await request("test_success_error"))
    assert r == "response from test_service.test_success_error", r
    r = record("test_requires_user_claims", await request(
        "test_requires_user_claims", context={"Authorization": "Bearer x"}))
    assert r == {"sub": "test_user", "user_id": "test_user", "scope": "openid, profile",
                 "roles": "user, admin"}, r

    description = await call(client.describe_service("test_service"))
    record("describe", {
        "service_name": description["service_name"],
        "encrypted_methods": description["encrypted_methods"],
        "public_key_pem": (description["public_key"] or "").startswith("-----BEGIN PUBLIC KEY-----"),
        "methods": sorted(description["methods"]),
    })
    assert description["service_name"] == "test_service", description
    assert description["methods"]["test_requires_encryption"]["requires_encryption"] is True
    assert await call(client.requires_encryption("test_service", "test_requires_encryption"))
    r = record("test_requires_encryption", await request(
        "test_requires_encryption", context={"Authorization": "Bearer x"}, encrypted=True))
    assert r == "Result that's to be encrypted in transit", r

    r = record("test_call_again_error", await request("test_call_again_error"))
    assert r["success"] == "response from test_service.test_call_again_error", r
    assert r["param1"] == "value1", r
    r = await request("test_call_again_loop", rpc_response=False)
    record("test_call_again_loop", {"result": r["result"], "error": r["error"]})
    assert r["error"]["error"] == "NuropbCallAgainReject", r

    before = service._method_call_count
    client.command(service="test_service", method="test_method", params={}, context={"via": "command"})
    for _ in range(TIMEOUT * 20):
        if service._method_call_count > before:
            break
        await asyncio.sleep(0.05)
    record("command", {"calls_before": before, "calls_after": service._method_call_count})
    assert service._method_call_count == before + 1, (before, service._method_call_count)

    client.publish_event(topic="test-event", event={"event_key": "event_value"}, context={"c": 1})
    client.publish_event(topic="order.created", event={"order": 42}, context={})
    client.publish_event(topic="nobody.listens", event={}, context={})
    first = await call(service.events.get())
    second = await call(service.events.get())
    record("events", [first, second])
    assert first == {"topic": "test-event", "event": {"event_key": "event_value"}, "target": None,
                     "context": {"c": 1}}, first
    assert second["topic"] == "order.created" and second["event"] == {"order": 42}, second

    r = await request("no_such_method", rpc_response=False)
    record("unknown_method", {"error": r["error"]})
    assert r["error"]["error"] == "NuropbHandlingError", r

    r = await call(client.request(service="no-such-service", method="x", params={}, context={},
                                  rpc_response=False))
    record("unroutable", {"error": r["error"]})
    assert r["error"]["error"] == "NuropbNotDeliveredError", r

    await call(client.disconnect())
    await call(service_api.disconnect())


async def main() -> None:
    configured = configure_nuropb_rmq(
        rmq_url=URL,
        events_exchange="nuropb-events-exchange",
        rpc_exchange="nuropb-rpc-exchange",
        dl_exchange="nuropb-dl-exchange",
        dl_queue="nuropb-dl-queue",
    )
    assert record("configure_nuropb_rmq", configured) is True
    # Idempotent, as nuropb promises.
    assert configure_nuropb_rmq(URL, "nuropb-events-exchange", "nuropb-rpc-exchange",
                                "nuropb-dl-exchange", "nuropb-dl-queue") is True
    await all_in_one()
    await service_example()


if __name__ == "__main__":
    asyncio.run(main())
    print("RESULTS " + json.dumps(RESULTS, sort_keys=True))

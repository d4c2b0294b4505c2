"""Calls every method of a ServiceExample-like service from Python NuroPb, and prints the outcomes
as one JSON document on stdout.

usage: python_client.py AMQP_URL SERVICE_NAME EVENT_TOPIC [REPEAT_ENCRYPTED]
"""
import asyncio
import json
import logging
import sys

from nuropb.rmq_api import RMQAPI


async def call(api, service, method, params=None, context=None, encrypted=False):
    try:
        response = await api.request(
            service=service, method=method, params=params or {}, context=context or {},
            encrypted=encrypted, rpc_response=False, trace_id="py-trace-" + method,
        )
        return {"result": response["result"], "error": response["error"]}
    except Exception as exc:  # a local failure of the Python client
        return {"raised": type(exc).__name__, "description": str(exc)}


async def main() -> None:
    url, service, topic = sys.argv[1], sys.argv[2], sys.argv[3]
    repeat = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    api = RMQAPI(amqp_url=url)
    await api.connect()
    auth = {"Authorization": "Bearer 1234567890"}
    out = {}
    for method in ["test_method", "do_async_task", "test_async_method", "test_success_error",
                   "test_call_again_error", "test_call_again_loop", "no_such_method", "_private"]:
        out[method] = await call(api, service, method, {"param1": "value1"})
    out["test_requires_user_claims"] = await call(api, service, "test_requires_user_claims", {}, auth)
    out["claims_without_token"] = await call(api, service, "test_requires_user_claims", {}, {})
    description = await api.describe_service(service)
    out["describe"] = {
        "service_name": description["service_name"],
        "encrypted_methods": description["encrypted_methods"],
        "methods": sorted(description["methods"]),
        "has_public_key": await api.has_public_key(service),
        "requires_encryption": await api.requires_encryption(service, "test_requires_encryption"),
    }
    out["test_requires_encryption"] = await call(api, service, "test_requires_encryption", {}, auth, encrypted=True)
    out["encrypted_repeats"] = [
        r["result"] for r in await asyncio.gather(*[
            call(api, service, "test_requires_encryption", {"i": i}, auth, encrypted=True) for i in range(repeat)
        ])
    ]
    api.command(service=service, method="test_method", params={"from": "python"}, context={})
    api.publish_event(topic=topic, event={"from": "python"}, context={"c": 1})
    await asyncio.sleep(0.3)
    await api.disconnect()
    print(json.dumps(out), flush=True)


logging.basicConfig(level=logging.CRITICAL, stream=sys.stderr)
asyncio.run(main())

"""Calls SERVICE.METHOD from Python NuroPb with params {"deep": {"a": {"a": ...}}} nested DEPTH
levels, and prints {"depth": levels of the "deep" in the result} or {"error": ...} as JSON.

usage: python_deep.py AMQP_URL SERVICE METHOD DEPTH
"""
import asyncio
import json
import logging
import sys

from nuropb.rmq_api import RMQAPI


def nested(levels):
    value = 7
    for _ in range(levels):
        value = {"a": value}
    return value


def depth(value):
    n = 0
    while isinstance(value, dict) and "a" in value:
        n, value = n + 1, value["a"]
    return n


async def main() -> None:
    url, service, method, levels = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    api = RMQAPI(amqp_url=url)
    await api.connect()
    try:
        response = await asyncio.wait_for(api.request(
            service=service, method=method, params={"deep": nested(levels)}, context={},
            rpc_response=False, trace_id="py-deep",
        ), 20)
        if response["error"]:
            out = {"error": response["error"]}
        elif isinstance(response["result"], dict):
            out = {"depth": depth(response["result"].get("deep"))}
        else:
            out = {"result": response["result"]}
    except Exception as exc:
        out = {"raised": type(exc).__name__, "description": str(exc)[:300]}
    await api.disconnect()
    print(json.dumps(out), flush=True)


logging.basicConfig(level=logging.CRITICAL, stream=sys.stderr)
asyncio.run(main())

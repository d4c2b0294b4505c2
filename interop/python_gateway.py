"""Python's nuropb-gw 0.1.4 in the gateway benchmark: its WsHandler, HandlerManager and
ServiceMeshManager, as its own stubs wire them, with a token check that knows any token.

usage: python_gateway.py AMQP_URL
Prints {"listening": "127.0.0.1:PORT"} once connected to the mesh; runs until stdin closes.
"""
import asyncio
import json
import logging
import sys
from uuid import uuid4

import tornado.httpserver
import tornado.netutil
from tornado.web import Application, url

from nuropb_gw.handler_manager import HandlerManager
from nuropb_gw.handlers.ws_handler import WsHandler
from nuropb_gw.service_mesh_manager import ServiceMeshManager, ServiceMeshManagerController


def authorise_from_token(token):
    return {"session_id": uuid4().hex, "bearer_token": token, "user_id": "bench", "username": "bench"}


async def main() -> None:
    amqp_url = sys.argv[1]
    name, instance_id = "nuropb-gw-bench", uuid4().hex
    handler_manager = HandlerManager(service_name=name, instance_id=instance_id)
    controller = ServiceMeshManagerController(service_name=name, instance_id=instance_id)
    mesh = ServiceMeshManager(
        service_name=name,
        instance_id=instance_id,
        handler_manager=handler_manager,
        amqp_url=amqp_url,
        service_controller=controller,
    )
    mesh.connect()
    app = Application(
        handlers=[url(r"/websocket", WsHandler)],
        session_cookie_name="session",
        cookie_secret="bench",
        allow_authorisation_cookie=True,
        authentication_timeout=15,
        authorise_from_token=authorise_from_token,
        handler_manager=handler_manager,
        service_mesh_manager=mesh,
        allowed_origins=["*"],
    )
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1", backlog=4096)
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    for _ in range(300):
        if mesh.connected:
            break
        await asyncio.sleep(0.1)
    if not mesh.connected:
        sys.exit("nuropb-gw did not connect to the mesh")
    port = sockets[0].getsockname()[1]
    print(json.dumps({"listening": f"127.0.0.1:{port}"}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    server.stop()


# nuropb-gw logs every connection at CRITICAL ("Highest concurrent connections"): quiet it.
logging.disable(logging.CRITICAL)
asyncio.run(main())

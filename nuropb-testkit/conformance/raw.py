"""A raw AMQP 0-9-1 client on pika's frame codec: send any frame, show every frame that comes back.

The broker port comes from $PORT (default 5672, the local RabbitMQ)."""
import socket, struct, time, sys
import pika.frame as F, pika.spec as S
from pika.compat import *

class Raw:
    def __init__(self, port=int(__import__("os").environ.get("PORT","5672")), header=b"AMQP\x00\x00\x09\x01", handshake=True, caps=True, vhost="/", heartbeat=0):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.settimeout(2)
        self.buf = b""
        self.s.sendall(header)
        if handshake:
            self.expect()  # start
            props = {"capabilities": {"consumer_cancel_notify": True, "authentication_failure_close": True}} if caps else {}
            self.send(0, S.Connection.StartOk(client_properties=props, mechanism="PLAIN", response="\0guest\0guest"))
            t = self.expect()
            self.send(0, S.Connection.TuneOk(channel_max=t.method.channel_max, frame_max=t.method.frame_max, heartbeat=heartbeat))
            self.send(0, S.Connection.Open(virtual_host=vhost))
            self.expect()
    def send(self, ch, m):
        self.s.sendall(F.Method(ch, m).marshal())
    def sendraw(self, b):
        self.s.sendall(b)
    def send_content(self, ch, props, body, body_size=None, class_id=60):
        h = F.Header(ch, len(body) if body_size is None else body_size, props)
        raw = h.marshal()
        if class_id != 60:
            raw = raw[:7] + struct.pack(">H", class_id) + raw[9:]
        self.s.sendall(raw)
        if body:
            self.s.sendall(F.Body(ch, body).marshal())
    def recv(self, timeout=1.0):
        self.s.settimeout(timeout)
        out = []
        end = time.time() + timeout
        while True:
            while True:
                if not self.buf: break
                if self.buf.startswith(b"AMQP"):
                    out.append(("HEADER", self.buf[:8])); self.buf = self.buf[8:]; continue
                try:
                    n, fr = F.decode_frame(self.buf)
                except Exception as e:
                    out.append(("undecodable", self.buf)); self.buf = b""; break
                if not fr: break
                fr.raw = self.buf[:n]; self.buf = self.buf[n:]
                out.append(fr)
            if out and time.time() > end - timeout + 0.3: return out
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                return out
            except ConnectionResetError:
                out.append(("RESET", self.buf)); return out
            if not d:
                out.append("EOF"); return out
            self.buf += d
    def expect(self):
        while True:
            fr = self.recv()
            for f in fr:
                if isinstance(f, F.Method): return f
            raise Exception("no method: %r" % fr)

def show(label, frames):
    print("==", label)
    for f in frames:
        if isinstance(f, F.Method): print("   ", f.channel_number, f.method)
        else: print("   ", f)

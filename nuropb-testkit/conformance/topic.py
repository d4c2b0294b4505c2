"""Topic routing: every pattern against every key, including empty words."""
import sys, time; sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
from raw import *
import pika.spec as S
patterns = ["#", "*", "a", "a.*", "a.#", "#.a", "*.a", "a.*.b", "a.#.b", "#.#", "*.*", "", "a.", ".a", "a..b", "*.#.*", "#.*", "a.b.#.c", "#.b.#"]
keys = ["", "a", "b", "a.b", "a.a", "b.a", "a.x.b", "a.b.b", "a..b", "a.", ".a", ".", "a.b.c", "a.b.x.c", "x.b.y", "b"]
r = Raw(); r.send(1, S.Channel.Open()); r.recv()
r.send(1, S.Exchange.Delete(exchange="exp-topic")); r.recv(0.2)
r.send(1, S.Exchange.Declare(exchange="exp-topic", type="topic")); r.recv()
for i, p in enumerate(patterns):
    q = "exp-tq%d" % i
    r.send(1, S.Queue.Delete(queue=q)); r.recv(0.1)
    r.send(1, S.Queue.Declare(queue=q)); r.recv()
    r.send(1, S.Queue.Bind(queue=q, exchange="exp-topic", routing_key=p)); r.recv()
for k in keys:
    r.send(1, S.Basic.Publish(exchange="exp-topic", routing_key=k)); r.send_content(1, S.BasicProperties(), k.encode() or b"<empty>")
time.sleep(0.5)
for i, p in enumerate(patterns):
    q = "exp-tq%d" % i
    r.send(1, S.Queue.Declare(queue=q, passive=True)); fr = r.recv(0.3)
    got = []
    while True:
        r.send(1, S.Basic.Get(queue=q, no_ack=True)); fr = r.recv(0.2)
        b = [f.fragment for f in fr if isinstance(f, F.Body)]
        if not b: break
        got.append(b[0].decode())
    print(repr(p), got)
    r.send(1, S.Queue.Delete(queue=q)); r.recv(0.1)
r.send(1, S.Exchange.Delete(exchange="exp-topic")); r.recv(0.2)

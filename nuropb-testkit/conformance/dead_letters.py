"""Dead-lettering by max-length, TTL 0 and reject: the raw content header of each dead letter (x-death)."""
import sys; sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
from raw import *
import pika.spec as S
r = Raw()
r.send(1, S.Channel.Open()); r.recv()
for m in [S.Exchange.Declare(exchange="exp-dlx", type="fanout"), S.Queue.Declare(queue="exp-dlq"), S.Queue.Bind(queue="exp-dlq", exchange="exp-dlx", routing_key=""),
          S.Queue.Declare(queue="exp-src", arguments={"x-dead-letter-exchange": "exp-dlx", "x-max-length": 2}),
          S.Queue.Purge(queue="exp-dlq"), S.Queue.Purge(queue="exp-src")]:
    r.send(1, m); r.recv(0.3)
r.send(1, S.Basic.Publish(exchange="", routing_key="exp-src"))
r.send_content(1, S.BasicProperties(headers={"zeta": "z", "alpha": 1}, expiration="60000", content_type="text/plain"), b"m1")
for i in range(2,4):
    r.send(1, S.Basic.Publish(exchange="", routing_key="exp-src"))
    r.send_content(1, S.BasicProperties(headers={"zeta": "z"}), b"m%d" % i)
r.send(1, S.Basic.Publish(exchange="", routing_key="exp-src"))
r.send_content(1, S.BasicProperties(expiration="0"), b"m-ttl0")
time.sleep(0.3)
r.send(1, S.Basic.Get(queue="exp-src")); 
fr = r.recv(0.5); show("get", fr)
r.send(1, S.Basic.Reject(delivery_tag=1, requeue=False)); time.sleep(0.2)
r.send(1, S.Basic.Get(queue="exp-dlq", no_ack=True)); show("dl1", r.recv(0.5))
r.send(1, S.Basic.Get(queue="exp-dlq", no_ack=True)); fr = r.recv(0.5); show("dl2", fr)
for f in fr:
    if isinstance(f, F.Header): print(f.raw.hex())
r.send(1, S.Basic.Get(queue="exp-dlq", no_ack=True)); fr = r.recv(0.5); show("dl3", fr)
for f in fr:
    if isinstance(f, F.Header): print(f.raw.hex())
# requeue dl message into src again: dead letter twice

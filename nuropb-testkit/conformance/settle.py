"""Requeue positions, reject-publish-dlx, channel-close requeues, counts, and acks after a queue is deleted."""
import sys, time; sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
from raw import *
import pika.spec as S
def getall(r, q):
    out = []
    for i in range(10):
        r.send(1, S.Basic.Get(queue=q, no_ack=True))
        fr = r.recv(0.4)
        m = [f for f in fr if isinstance(f, F.Method)]
        if m and isinstance(m[0].method, S.Basic.GetEmpty): break
        bodies = [f.fragment for f in fr if isinstance(f, F.Body)]
        hdr = [f for f in fr if isinstance(f, F.Header)]
        out.append((m[0].method.redelivered, bodies[0] if bodies else b"", (hdr[0].properties.headers or {}).get("x-first-death-reason") if hdr else None))
    return out
# (h) requeue positions
r = Raw(); r.send(1, S.Channel.Open()); r.recv()
r.send(1, S.Queue.Delete(queue="exp-rq")); r.recv(0.3)
r.send(1, S.Queue.Declare(queue="exp-rq")); r.recv()
for i in range(1,5):
    r.send(1, S.Basic.Publish(exchange="", routing_key="exp-rq")); r.send_content(1, S.BasicProperties(), b"m%d" % i)
r.send(1, S.Basic.Qos(prefetch_count=3)); r.recv()
r.send(1, S.Basic.Consume(queue="exp-rq", consumer_tag="t")); r.recv(0.5)
r.send(1, S.Basic.Cancel(consumer_tag="t")); r.recv(0.3)
r.send(1, S.Basic.Reject(delivery_tag=3, requeue=True)); r.send(1, S.Basic.Reject(delivery_tag=2, requeue=True)); r.send(1, S.Basic.Nack(delivery_tag=1, requeue=True)); time.sleep(0.2)
print("requeue order", getall(r, "exp-rq"))
# (a) reject-publish-dlx
r.send(1, S.Exchange.Declare(exchange="exp-dlx2", type="fanout")); r.recv()
r.send(1, S.Queue.Delete(queue="exp-dlq2")); r.recv(0.3)
r.send(1, S.Queue.Declare(queue="exp-dlq2")); r.recv()
r.send(1, S.Queue.Bind(queue="exp-dlq2", exchange="exp-dlx2")); r.recv()
r.send(1, S.Queue.Delete(queue="exp-rpd")); r.recv(0.3)
r.send(1, S.Queue.Declare(queue="exp-rpd", arguments={"x-max-length": 1, "x-overflow": "reject-publish-dlx", "x-dead-letter-exchange": "exp-dlx2"})); r.recv()
r.send(1, S.Confirm.Select()); r.recv()
for i in range(1,3):
    r.send(1, S.Basic.Publish(exchange="", routing_key="exp-rpd")); r.send_content(1, S.BasicProperties(), b"p%d" % i)
show("confirms", r.recv(0.5))
time.sleep(0.2)
print("rpd queue", getall(r, "exp-rpd"))
print("rpd dlq", getall(r, "exp-dlq2"))
# redelivered after channel close, order with new messages
r2 = Raw(); r2.send(1, S.Channel.Open()); r2.recv()
r2.send(1, S.Queue.Delete(queue="exp-rd")); r2.recv(0.3)
r2.send(1, S.Queue.Declare(queue="exp-rd")); r2.recv()
for i in range(1,4):
    r2.send(1, S.Basic.Publish(exchange="", routing_key="exp-rd")); r2.send_content(1, S.BasicProperties(), b"r%d" % i)
r2.send(2, S.Channel.Open()); r2.recv()
r2.send(2, S.Basic.Get(queue="exp-rd")); r2.recv(0.3)
r2.send(2, S.Basic.Get(queue="exp-rd")); r2.recv(0.3)
r2.send(2, S.Channel.Close(reply_code=200, reply_text="x", class_id=0, method_id=0)); r2.recv(0.3)
print("after close", getall(r2, "exp-rd"))
# queue.declare-ok message count excludes unacked
r2.send(1, S.Queue.Declare(queue="exp-rd2")); r2.recv()
for i in range(1,4):
    r2.send(1, S.Basic.Publish(exchange="", routing_key="exp-rd2")); r2.send_content(1, S.BasicProperties(), b"r%d" % i)
r2.send(1, S.Basic.Get(queue="exp-rd2")); fr = r2.recv(0.3); print("get-ok count", [f.method.message_count for f in fr if isinstance(f, F.Method)])
r2.send(1, S.Queue.Declare(queue="exp-rd2", passive=True)); show("passive count", r2.recv(0.3))
r2.send(1, S.Queue.Purge(queue="exp-rd2")); show("purge", r2.recv(0.3))
r2.send(1, S.Queue.Delete(queue="exp-rd2")); show("delete (1 unacked)", r2.recv(0.3))
r2.send(1, S.Basic.Ack(delivery_tag=1)); r2.send(1, S.Basic.Qos(prefetch_count=1)); show("ack after queue deleted", r2.recv(0.3))
for q in ["exp-rq","exp-rpd","exp-dlq2","exp-rd"]:
    r2.send(1, S.Queue.Delete(queue=q)); r2.recv(0.2)

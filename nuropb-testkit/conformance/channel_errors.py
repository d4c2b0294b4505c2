"""Channel and connection errors through pika: every refusal prints its reply code and text."""
import pika, traceback
P = pika.URLParameters("amqp://guest:guest@127.0.0.1:%s/%%2f" % __import__("os").environ.get("PORT","5672") + "")
conn = pika.BlockingConnection(P)
def run(label, f):
    global conn
    if conn.is_closed:
        conn = pika.BlockingConnection(P)
    ch = conn.channel()
    try:
        r = f(ch)
        print(label, "OK", r.method if hasattr(r,'method') else r)
    except Exception as e:
        print(label, type(e).__name__, e)
    try:
        if ch.is_open: ch.close()
    except Exception: pass

run("passive missing exchange", lambda ch: ch.exchange_declare("nope-x", passive=True))
run("passive missing queue", lambda ch: ch.queue_declare("nope-q", passive=True))
run("declare default exch", lambda ch: ch.exchange_declare("", exchange_type="direct"))
run("declare amq.foo", lambda ch: ch.exchange_declare("amq.foo", exchange_type="direct"))
run("declare amq.direct same", lambda ch: ch.exchange_declare("amq.direct", exchange_type="direct", durable=True))
run("declare amq.direct diff", lambda ch: ch.exchange_declare("amq.direct", exchange_type="fanout", durable=True))
run("passive default", lambda ch: ch.exchange_declare("", passive=True))
run("bad type", lambda ch: ch.exchange_declare("exp-x1", exchange_type="foo"))
run("x1", lambda ch: ch.exchange_declare("exp-x1", exchange_type="direct"))
run("x1 redeclare fanout", lambda ch: ch.exchange_declare("exp-x1", exchange_type="fanout"))
run("x1 redeclare durable", lambda ch: ch.exchange_declare("exp-x1", exchange_type="direct", durable=True))
run("x1 redeclare autodel", lambda ch: ch.exchange_declare("exp-x1", exchange_type="direct", auto_delete=True))
run("x1 redeclare AE", lambda ch: ch.exchange_declare("exp-x1", exchange_type="direct", arguments={"alternate-exchange":"foo"}))
run("delete missing exch", lambda ch: ch.exchange_delete("nope-x"))
run("delete default", lambda ch: ch.exchange_delete(""))
run("delete amq.direct", lambda ch: ch.exchange_delete("amq.direct"))
run("q1", lambda ch: ch.queue_declare("exp-q1"))
run("q1 bind x1", lambda ch: ch.queue_bind("exp-q1", "exp-x1", "k"))
run("x1 delete if_unused", lambda ch: ch.exchange_delete("exp-x1", if_unused=True))
run("q1 redeclare durable", lambda ch: ch.queue_declare("exp-q1", durable=True))
run("q1 redeclare excl", lambda ch: ch.queue_declare("exp-q1", exclusive=True))
run("q1 redeclare autodel", lambda ch: ch.queue_declare("exp-q1", auto_delete=True))
run("q1 redeclare dlx", lambda ch: ch.queue_declare("exp-q1", arguments={"x-dead-letter-exchange":"dlx"}))
run("q1 redeclare ttl", lambda ch: ch.queue_declare("exp-q1", arguments={"x-message-ttl":1000}))
run("q1 redeclare unknown arg", lambda ch: ch.queue_declare("exp-q1", arguments={"x-foo":1000}))
run("q2 ttl neg", lambda ch: ch.queue_declare("exp-q2", arguments={"x-message-ttl":-1}))
run("q2 ttl str", lambda ch: ch.queue_declare("exp-q2", arguments={"x-message-ttl":"abc"}))
run("q2 maxlen neg", lambda ch: ch.queue_declare("exp-q2", arguments={"x-max-length":-1}))
run("q2 dlx int", lambda ch: ch.queue_declare("exp-q2", arguments={"x-dead-letter-exchange":5}))
run("q2 dlrk only", lambda ch: ch.queue_declare("exp-q2", arguments={"x-dead-letter-routing-key":"a"}))
run("q2 overflow bad", lambda ch: ch.queue_declare("exp-q2", arguments={"x-overflow":"foo"}))
run("q amq.foo", lambda ch: ch.queue_declare("amq.foo"))
run("bind missing q", lambda ch: ch.queue_bind("nope-q", "exp-x1", "k"))
run("bind missing x", lambda ch: ch.queue_bind("exp-q1", "nope-x", "k"))
run("bind default", lambda ch: ch.queue_bind("exp-q1", "", "k"))
run("unbind missing binding", lambda ch: ch.queue_unbind("exp-q1", "exp-x1", "zzz"))
run("unbind missing q", lambda ch: ch.queue_unbind("nope-q", "exp-x1", "zzz"))
run("unbind missing x", lambda ch: ch.queue_unbind("exp-q1", "nope-x", "zzz"))
run("purge missing", lambda ch: ch.queue_purge("nope-q"))
run("delete missing q", lambda ch: ch.queue_delete("nope-q"))
run("consume missing", lambda ch: ch.basic_consume("nope-q", lambda *a: None))
run("get missing", lambda ch: ch.basic_get("nope-q"))
def pub_missing(ch):
    ch.basic_publish("nope-x", "k", b"x")
    ch.queue_declare("exp-q1", passive=True)
run("publish missing exch", pub_missing)
def ack_unknown(ch):
    ch.basic_ack(5)
    ch.queue_declare("exp-q1", passive=True)
run("ack unknown", ack_unknown)
def ack_unknown_multi(ch):
    ch.basic_ack(5, multiple=True)
    ch.queue_declare("exp-q1", passive=True)
run("ack unknown multiple", ack_unknown_multi)
def nack_unknown(ch):
    ch.basic_nack(7)
    ch.queue_declare("exp-q1", passive=True)
run("nack unknown", nack_unknown)
def reject_unknown(ch):
    ch.basic_reject(9)
    ch.queue_declare("exp-q1", passive=True)
run("reject unknown", reject_unknown)
def ack0multi(ch):
    ch.basic_ack(0, multiple=True)
    return ch.queue_declare("exp-q1", passive=True)
run("ack 0 multiple", ack0multi)
def ack0(ch):
    ch.basic_ack(0)
    return ch.queue_declare("exp-q1", passive=True)
run("ack 0", ack0)
run("qos size", lambda ch: ch.basic_qos(prefetch_size=10))
def dup_tag(ch):
    ch.basic_consume("exp-q1", lambda *a: None, consumer_tag="t1")
    ch.basic_consume("exp-q1", lambda *a: None, consumer_tag="t1")
run("dup tag", dup_tag)
def recover_false(ch):
    ch.basic_recover(requeue=False)
run("recover false", recover_false)
def bad_exp(ch):
    ch.basic_publish("", "exp-q1", b"x", pika.BasicProperties(expiration="foo"))
    ch.queue_declare("exp-q1", passive=True)
run("bad expiration", bad_exp)
def neg_exp(ch):
    ch.basic_publish("", "exp-q1", b"x", pika.BasicProperties(expiration="-5"))
    ch.queue_declare("exp-q1", passive=True)
run("neg expiration", neg_exp)
def lo_exp(ch):
    ch.basic_publish("", "exp-q1", b"x", pika.BasicProperties(expiration="10x"))
    ch.queue_declare("exp-q1", passive=True)
run("leftover expiration", lo_exp)
def bad_user(ch):
    ch.basic_publish("", "exp-q1", b"x", pika.BasicProperties(user_id="bob"))
    ch.queue_declare("exp-q1", passive=True)
run("bad user_id", bad_user)
def x_internal(ch):
    ch.exchange_declare("exp-int", exchange_type="direct", internal=True)
    ch.basic_publish("exp-int", "k", b"x")
    ch.queue_declare("exp-q1", passive=True)
run("publish internal", x_internal)
run("cleanup", lambda ch: (ch.queue_delete("exp-q1"), ch.exchange_delete("exp-x1"), ch.exchange_delete("exp-int")))
def del_nonempty(ch):
    ch.queue_declare("exp-q3")
    ch.basic_publish("", "exp-q3", b"x")
    import time; time.sleep(0.1)
    return ch.queue_delete("exp-q3", if_empty=True)
run("delete if_empty", del_nonempty)
def del_used(ch):
    ch.basic_consume("exp-q3", lambda *a: None)
    return ch.queue_delete("exp-q3", if_unused=True)
run("delete if_unused", del_used)
run("cleanup", lambda ch: ch.queue_delete("exp-q3"))
def excl_other(ch):
    c2 = pika.BlockingConnection(P); c2.channel().queue_declare("exp-ex", exclusive=True)
    try:
        return ch.queue_declare("exp-ex", passive=True)
    finally:
        pass
run("passive on exclusive of other", excl_other)
run("declare on exclusive of other", lambda ch: ch.queue_declare("exp-ex"))
run("consume on exclusive of other", lambda ch: ch.basic_consume("exp-ex", lambda *a: None))
run("bind exclusive of other", lambda ch: ch.queue_bind("exp-ex", "amq.direct", "x"))
run("delete exclusive of other", lambda ch: ch.queue_delete("exp-ex"))
run("purge exclusive of other", lambda ch: ch.queue_purge("exp-ex"))
run("get exclusive of other", lambda ch: ch.basic_get("exp-ex"))
def excl_consume(ch):
    ch.queue_declare("exp-q4")
    ch.basic_consume("exp-q4", lambda *a: None)
    ch2 = conn.channel()
    ch2.basic_consume("exp-q4", lambda *a: None, exclusive=True)
run("exclusive consume with existing consumer", excl_consume)
run("cleanup", lambda ch: ch.queue_delete("exp-q4"))
run("flow false", lambda ch: ch.flow(False))
def empty_q(ch):
    return ch.queue_bind("", "amq.direct", "x")
run("bind empty queue no prior", empty_q)

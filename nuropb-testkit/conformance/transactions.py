"""tx.select / commit / rollback, and confirm vs tx mode."""
import sys; sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
from raw import *
import pika.spec as S
r = Raw(); r.send(1, S.Channel.Open()); r.recv(); r.send(1, S.Tx.Commit()); show("commit without select", r.recv())
r = Raw(); r.send(1, S.Channel.Open()); r.recv(); r.send(1, S.Tx.Select()); r.recv()
r.send(1, S.Basic.Publish(exchange="", routing_key="nowhere-q", mandatory=True)); r.send_content(1, S.BasicProperties(), b"abc")
show("after publish in tx", r.recv(0.5))
r.send(1, S.Tx.Commit()); show("commit", r.recv())
r = Raw(); r.send(1, S.Channel.Open()); r.recv(); r.send(1, S.Confirm.Select()); r.recv(); r.send(1, S.Tx.Select()); show("tx after confirm", r.recv())

"""free_port never hands out one port twice in a process (the kernel may offer
a just-closed port again, which made one test mesh get --registry-port and
--scheduler-port both 50553)."""

from __future__ import annotations

import socket

from sutradhar.services.common.etcd_server import free_port


def test_consecutive_calls_give_distinct_ports():
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)


def test_a_handed_out_port_can_be_bound():
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))

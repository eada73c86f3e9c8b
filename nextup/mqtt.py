"""Small things every MQTT connection of Nextup does alike (central's bridge, devices, tools)."""

from __future__ import annotations

import socket

import paho.mqtt.client as mqtt


def no_delay(client: mqtt.Client) -> None:
    """Turn off Nagle's algorithm on the client's socket.

    paho leaves it on; then a small PUBACK queued behind a small PUBLISH waits
    for the peer's delayed ACK, and every round trip takes about 40 ms.
    """
    sock = client.socket()
    if isinstance(sock, socket.socket):  # ssl.SSLSocket is one too
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

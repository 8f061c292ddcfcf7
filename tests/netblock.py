"""Block network access in this Python process, except loopback; log every attempt.

The test session (tests/conftest.py) installs this file as an IPython startup file, so every kernel
that nbval or the browser tests start runs it before the lesson's first cell: a lesson that tries to
download anything (an image, a model, a font) fails with ``NetworkBlockedError`` and the attempt is
appended to ``$DIPCOURSE_NETBLOCK_LOG``, which the session checks at the end, so an attempt is
caught even when a library swallows the exception.

Loopback stays open: the kernel talks to Jupyter over ZeroMQ on 127.0.0.1 (ZeroMQ's sockets are
not Python sockets, but local servers such as a Jupyter server must stay reachable).
"""
import ipaddress
import os
import socket

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", ""}


class NetworkBlockedError(RuntimeError):
    """A lesson tried to reach the network (lessons must run offline)."""


def _is_local(host):
    if host is None:
        return True
    host = host.decode() if isinstance(host, bytes) else str(host)
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _refuse(what):
    log = os.environ.get("DIPCOURSE_NETBLOCK_LOG")
    if log:
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()} {what}\n")
    raise NetworkBlockedError(f"network access blocked in the course's offline test: {what}")


def install():
    """Patch ``socket`` so only loopback and Unix sockets can connect or resolve."""
    if getattr(socket, "_dipcourse_netblock", False):
        return
    real_getaddrinfo, real_connect, real_connect_ex = socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex

    def getaddrinfo(host, *args, **kwargs):
        if not _is_local(host):
            _refuse(f"getaddrinfo({host!r})")
        return real_getaddrinfo(host, *args, **kwargs)

    def _check(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
            _refuse(f"connect({address!r})")

    def connect(self, address):
        _check(self, address)
        return real_connect(self, address)

    def connect_ex(self, address):
        _check(self, address)
        return real_connect_ex(self, address)

    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket._dipcourse_netblock = True


install()

"""The network block that every kernel of the test session runs (see conftest.py) really blocks.

The offline test proper is the nbval run of every lesson in this session: this file proves that a
kernel started here cannot reach the network but can still use loopback.
"""
import os

import nbformat
from nbclient import NotebookClient

PROBE = """\
import socket
for host in ("example.org", "8.8.8.8"):
    try:
        socket.create_connection((host, 80), timeout=2)
        print("CONNECTED", host)
    except Exception as err:
        print(type(err).__name__, host)
print("loopback", len(socket.getaddrinfo("localhost", 80)) > 0)
s = socket.socket()
print("connect_ex 127.0.0.1", s.connect_ex(("127.0.0.1", 9)) != 0)
"""


def test_kernel_blocks_network_and_logs_attempts(tmp_path):
    log = tmp_path / "attempts.log"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(PROBE)]
    env = dict(os.environ, DIPCOURSE_NETBLOCK_LOG=str(log))
    NotebookClient(nb, timeout=120, kernel_name="python3").execute(env=env)
    printed = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    assert "NetworkBlockedError example.org" in printed and "NetworkBlockedError 8.8.8.8" in printed
    assert "CONNECTED" not in printed
    assert "loopback True" in printed and "connect_ex 127.0.0.1 True" in printed
    attempts = log.read_text()
    assert "getaddrinfo('example.org')" in attempts and "8.8.8.8" in attempts


def test_session_log_is_set_up(netblock_log):
    assert os.environ["DIPCOURSE_NETBLOCK_LOG"] == str(netblock_log)
    assert netblock_log.exists()

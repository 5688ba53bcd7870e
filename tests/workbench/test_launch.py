import subprocess
import sys
from pathlib import Path

import pytest

import launch

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("host,loop", [("127.0.0.1", True), ("localhost", True), ("::1", True), ("127.0.0.2", True),
                                       ("0.0.0.0", False), ("192.168.1.5", False), ("ward-pc", False)])
def test_loopback_detection(host, loop):
    assert launch.is_loopback(host) is loop


def test_auth_parsing():
    assert launch.parse_auth("dr:pa:ss") == ("dr", "pa:ss")
    assert launch.parse_auth(None) is None
    for bad in ("dr", "dr:", ":pw"):
        with pytest.raises(SystemExit, match="USER:PASSWORD"):
            launch.parse_auth(bad)


def test_refuses_to_listen_beyond_this_machine_without_auth(tmp_path):
    proc = subprocess.run([sys.executable, "launch.py", "--host", "0.0.0.0", "--workspace", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "--auth USER:PASSWORD" in proc.stderr and "0.0.0.0" in proc.stderr


def test_help_lists_the_flags():
    out = subprocess.run([sys.executable, "launch.py", "--help"], cwd=REPO, capture_output=True, text=True).stdout
    for flag in ("--host", "--port", "--workspace", "--auth", "--lang"):
        assert flag in out


def test_busy_port_is_refused_before_any_banner_and_a_free_one_offered(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert not launch.port_is_free("127.0.0.1", port)
        proc = subprocess.run([sys.executable, "launch.py", "--port", str(port), "--workspace", str(tmp_path)],
                              cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "already in use" in proc.stderr and "--port " in proc.stderr
    assert "http://" not in proc.stdout and "Traceback" not in proc.stderr

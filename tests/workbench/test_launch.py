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


def test_a_password_on_the_command_line_is_refused(tmp_path):
    assert launch.parse_auth(None) is None
    proc = subprocess.run([sys.executable, "launch.py", "--auth", "dr:abc", "--workspace", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "ps" in proc.stderr and "jmedlora auth add" in proc.stderr and "abc" not in proc.stderr


def test_refuses_to_listen_beyond_this_machine_without_login(tmp_path):
    proc = subprocess.run([sys.executable, "launch.py", "--host", "0.0.0.0", "--no-auth", "--workspace", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "drop --no-auth" in proc.stderr and "0.0.0.0" in proc.stderr


def test_help_lists_the_flags():
    out = subprocess.run([sys.executable, "launch.py", "--help"], cwd=REPO, capture_output=True, text=True).stdout
    for flag in ("--host", "--port", "--workspace", "--no-auth", "--lang"):
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


def test_login_is_the_default_and_the_login_page_leaks_nothing(tmp_path):
    """First start prints a one-time admin password; before login no page or API shows workspace
    contents; a wrong password is refused and audited; the right one opens the app."""
    import json
    import re
    import time
    import urllib.error
    import urllib.parse
    import urllib.request

    from pipelines.core import audit
    from pipelines.core.workspace import Workspace
    from tests.workbench.conftest import free_port

    ws = Workspace.resolve(tmp_path / "ws")
    ws.register_model("secret-run@10", "adapter", str(tmp_path / "adapters" / "secret-run-10"), base_model="default",
                      step=10)
    port = free_port()
    log = tmp_path / "app.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "launch.py", "--port", str(port), "--workspace", str(ws.root)],
                                cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if "login required" in log.read_text():
                try:
                    urllib.request.urlopen(base + "/", timeout=1)
                    break
                except urllib.error.HTTPError:
                    break
                except OSError:
                    pass
            assert proc.poll() is None, log.read_text()
            time.sleep(0.3)
        password = re.search(r"password\n\n    (\S+)\n", log.read_text()).group(1)
        page = urllib.request.urlopen(base + "/", timeout=10).read().decode()
        assert "auth_required" in page
        for secret in ("secret-run", str(ws.root), "adapters"):
            assert secret not in page, secret
        for path in ("/config", "/gradio_api/info", f"/gradio_api/file={ws.root / 'users.json'}"):
            try:
                body = urllib.request.urlopen(base + path, timeout=10).read().decode()
                raise AssertionError(f"{path} answered without login: {body[:200]}")
            except urllib.error.HTTPError as exc:
                assert exc.code in (401, 403), (path, exc.code)

        def login(pw):
            data = urllib.parse.urlencode({"username": "admin", "password": pw}).encode()
            try:
                return urllib.request.urlopen(base + "/login", data=data, timeout=10)
            except urllib.error.HTTPError as exc:
                return exc
        assert login("wrong password").code == 400
        ok = login(password)
        assert ok.status == 200 and json.loads(ok.read())["success"] is True
        cookie = ok.headers["set-cookie"].split(";")[0]
        req = urllib.request.Request(base + "/config", headers={"Cookie": cookie})
        assert "secret-run" in urllib.request.urlopen(req, timeout=10).read().decode()
        actions = [(e["user"], e["action"]) for e in audit.entries(ws.root)]
        assert ("admin", "login_failed") in actions and actions[-1] == ("admin", "login")
        # Uploads are bounded (no form uploads; Gradio's route took 300 MB from any logged-in user).
        def upload(n_bytes):
            boundary = "jmedlora-test-boundary"
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"x.bin\"\r\n"
                    f"Content-Type: application/octet-stream\r\n\r\n").encode() + b"0" * n_bytes + \
                f"\r\n--{boundary}--\r\n".encode()
            up = urllib.request.Request(base + "/gradio_api/upload", data=body, method="POST",
                                        headers={"Cookie": cookie,
                                                 "Content-Type": f"multipart/form-data; boundary={boundary}"})
            try:
                return urllib.request.urlopen(up, timeout=60).status
            except urllib.error.HTTPError as exc:
                return exc.code
        assert upload(1_000) == 200
        assert upload(11 * 2 ** 20) == 413
        # A user removed while logged in loses the open session at the next request.
        from pipelines.core import auth
        auth.set_user(ws.root, "other", "another-long-password", by="admin")
        auth.remove_user(ws.root, "admin", by="other")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=10)
        assert err.value.code in (401, 403)
        assert login(password).code == 400                     # and cannot sign in again
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert audit.verify(ws.root).ok

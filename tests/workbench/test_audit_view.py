"""The administrators' audit view: entries newest first with the chain's verdict; nobody else sees them."""
from types import SimpleNamespace

from pipelines.core import audit, auth
from workbench import audit_view
from workbench.state import AppState


def test_only_an_admin_sees_the_entries_and_a_tampered_log_is_named(workspace):
    auth.set_user(workspace.root, "boss", "a-long-password-1", role="admin")
    auth.set_user(workspace.root, "dr-sato", "a-long-password-2")
    audit.record(workspace.root, "dr-sato", "export", "qa", format="csv")
    state = AppState(workspace=workspace)
    msg, frame = audit_view.view(state, "ja", SimpleNamespace(username="dr-sato"))
    assert "管理者だけ" in msg and frame.empty
    assert audit_view.visible_for(state, None)["visible"] is False            # --no-auth: "local" is no admin
    msg, frame = audit_view.view(state, "ja", SimpleNamespace(username="boss"))
    assert "改ざんなし" in msg and len(frame) == 3                         # two user changes, then the export
    assert (frame.iloc[0]["利用者"], frame.iloc[0]["操作"], frame.iloc[0]["対象"]) == ("dr-sato", "書き出し", "qa")
    log = workspace.root / "audit" / "audit.jsonl"
    log.write_text(log.read_text(encoding="utf-8").replace('"qa"', '"other"'), encoding="utf-8")
    msg, _ = audit_view.view(state, "en", SimpleNamespace(username="boss"))
    assert "tampered" in msg and "notice error" in msg

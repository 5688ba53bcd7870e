"""Generation against a real HTTP server on loopback, through the real ``openai`` client."""
from __future__ import annotations

import hashlib
import json
import re

import pytest

from pipelines.core.errors import UserError
from pipelines.core.locality import Pinned
from pipelines.data import chunk_dispatch, endpoint
from pipelines.data import generate as datagen
from pipelines.data import store as datastore
from pipelines.data.chunk_prompts import load_prompt_template, render_prompt
from pipelines.data.curate import dataset_stats
from pipelines.data.endpoint import PrivacyBlocked
from pipelines.data.generate import DatagenConfig
from tests.pipelines.fake_openai_server import FakeOpenAIServer

PAPER_PROMPT = """### Instructions:
You are a machine designed to generate various question and answer pairs. Please create data with question (instruction) and answer (output) pairs based on the following input, considering it as prior knowledge. Format the data as 'instruction': question content, 'output': answer content, and do not include line breaks. Repeat this process 15 times and list one data pair per line. ### Input:
{input_text}"""


def pairs_reply(prompt: str) -> str:
    """Three pairs per prompt, distinct per chunk, plus a line of chatter the parser must keep."""
    tag = hashlib.sha1(prompt.encode()).hexdigest()[:6]
    return "以下がデータです。\n" + "\n".join(
        f"{i}. 'instruction': 質問{tag}-{i}は何か？, 'output': 回答{tag}-{i}である。" for i in range(1, 4))


@pytest.fixture
def docs(tmp_path):
    d = tmp_path / "docs"
    d.mkdir()
    (d / "hf.md").write_text("\n".join(f"心不全の第{i}の知見。" for i in range(1, 13)), encoding="utf-8")
    (d / "dm.txt").write_text("\n".join(f"糖尿病の第{i}の知見。" for i in range(1, 9)), encoding="utf-8")
    return d          # chunk_size 4, overlap 0 → 3 + 2 = 5 chunks


def config(docs, ws, srv, **kw) -> DatagenConfig:
    base = dict(docs=str(docs), dataset="demo", model="fake-model", base_url=srv.base_url, pairs=3,
                chunk_size=4, chunk_overlap=0, concurrency=2, retry_base=0.01, workspace=str(ws.root))
    return DatagenConfig(**{**base, **kw})


def test_paper_template_is_verbatim():
    text, version = load_prompt_template("paper_en")
    assert render_prompt(text, "{input_text}", 15) == PAPER_PROMPT
    assert version.startswith("paper_en:")
    ja, _ = load_prompt_template("paper_ja")
    assert "{input_text}" in ja and "instruction" in ja and "15回" in render_prompt(ja, "x", 15)


def test_run_stores_records_with_provenance_and_counts(docs, workspace):
    events = []
    with FakeOpenAIServer(pairs_reply) as srv:
        summary = datagen.run(config(docs, workspace, srv), events.append)
    assert summary["done"] == summary["total"] == 5
    assert summary["records"] == 15 and summary["dataset_records"] == 15
    assert summary["unparseable"] == 5            # one chatter line per response, kept and counted
    assert summary["total_tokens"] > 0 and summary["requests"] == 5 and summary["errors"] == 0
    progress = [e for e in events if e["event"] == "progress"]
    assert [e["done"] for e in progress] == [1, 2, 3, 4, 5]
    assert {"done", "total", "records", "unparseable", "errors", "total_tokens", "prompt_tokens"} <= set(progress[-1])
    rec = datastore.list_records(workspace, "demo", limit=1)[0]
    assert rec["source_doc"] in ("hf.md", "dm.txt") and "#" in rec["chunk_id"]
    assert rec["model"] == "fake-model" and rec["prompt_version"].startswith("paper_en:") and rec["created_at"] > 0
    raw = datastore.list_raw(workspace, "demo")
    assert len(raw) == 5 and raw[0]["leftovers"] == ["以下がデータです。"] and "質問" in raw[0]["response"]
    usage = workspace.query("SELECT prompt_tokens, completion_tokens, total_tokens FROM dg_requests")
    assert len(usage) == 5 and all(u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"] for u in usage)


def test_rerun_sends_nothing_for_done_work(docs, workspace):
    with FakeOpenAIServer(pairs_reply) as srv:
        datagen.run(config(docs, workspace, srv))
        second = datagen.run(config(docs, workspace, srv))
        assert srv.requests == 5
    assert second["cached"] == 5 and second["requests"] == 0
    assert datastore.count_records(workspace, "demo") == 15        # no duplicates either


def test_resume_after_interruption_sends_no_duplicate_request(docs, workspace):
    class Crash(Exception):
        pass

    def crash_after_two(event):
        if event["event"] == "progress" and event["done"] >= 2:
            raise Crash()

    with FakeOpenAIServer(pairs_reply, latency=0.05) as srv:
        with pytest.raises(Crash):
            datagen.run(config(docs, workspace, srv), crash_after_two)
        assert 2 <= srv.requests < 5
        resumed = datagen.run(config(docs, workspace, srv))
        assert srv.requests == 5                                   # each chunk sent exactly once
        assert set(srv.answered.values()) == {1}
    assert resumed["done"] == 5 and resumed["cached"] >= 2
    assert datastore.count_records(workspace, "demo") == 15


def test_injected_429_and_500_are_retried_and_nothing_is_lost(docs, workspace):
    events = []
    with FakeOpenAIServer(pairs_reply, errors=[429, 500, 503, 429, 502]) as srv:
        summary = datagen.run(config(docs, workspace, srv), events.append)
        assert srv.error_count == {429: 2, 500: 1, 503: 1, 502: 1}
        assert sum(srv.answered.values()) == 5
    assert summary["retries"] == 5 and summary["errors"] == 0 and summary["records"] == 15
    assert len([e for e in events if e["event"] == "retry"]) == 5


def test_exhausted_retries_are_counted_and_finished_on_rerun(docs, workspace):
    with FakeOpenAIServer(pairs_reply, errors=[500] * 4) as srv:
        first = datagen.run(config(docs, workspace, srv, max_retries=1, concurrency=1))
        assert first["errors"] == 2 and first["remaining"] == 2 and len(first["error_messages"]) == 2
        second = datagen.run(config(docs, workspace, srv, max_retries=1))
        assert second["requests"] == 2 and second["errors"] == 0
        assert sum(srv.answered.values()) == 5
    assert datastore.count_records(workspace, "demo") == 15


def test_malformed_output_is_kept_and_counted(docs, workspace):
    def reply(prompt):
        return "申し訳ありませんが、生成できません。\n<garbage>" if "糖尿病" in prompt else pairs_reply(prompt)

    with FakeOpenAIServer(reply) as srv:
        summary = datagen.run(config(docs, workspace, srv))
    assert summary["records"] == 9 and summary["unparseable"] == 3 + 4
    stats = dataset_stats(workspace, "demo")
    assert stats["unparseable"] == {"responses": 5, "lines": 7, "responses_without_pairs": 2}
    bad = [r for r in datastore.list_raw(workspace, "demo") if r["n_pairs"] == 0]
    assert bad[0]["response"] == "申し訳ありませんが、生成できません。\n<garbage>"


def test_budget_caps_requests(docs, workspace):
    events = []
    with FakeOpenAIServer(pairs_reply) as srv:
        summary = datagen.run(config(docs, workspace, srv, max_requests=2), events.append)
        assert srv.requests == 2
    assert summary["remaining"] == 3 and "request budget" in summary["budget_reached"]
    assert any(e["event"] == "budget" for e in events)
    with FakeOpenAIServer(pairs_reply) as srv:
        summary = datagen.run(config(docs, workspace, srv, max_tokens_budget=1, concurrency=1))
        assert srv.requests == 1 and "token budget" in summary["budget_reached"]


@pytest.fixture
def planted(docs):
    (docs / "case.txt").write_text("症例報告\n患者ID: 00123456、山田太郎様（65歳）\n心不全で入院した。", encoding="utf-8")
    return docs


def test_privacy_guard_blocks_remote_endpoint(planted, workspace, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    # A documentation address (TEST-NET-1): the guard must refuse before any connection is tried.
    cfg = config(planted, workspace, FakeOpenAIServer(), base_url="http://192.0.2.1/v1")
    with pytest.raises(PrivacyBlocked) as info:
        datagen.run(cfg)
    assert {f["kind"] for f in info.value.findings} == {"record_number", "name"}
    assert "00123456" in str(info.value) and "--allow-remote-pii" in str(info.value)
    assert info.value.findings[0]["chunk_id"].startswith("case.txt@")
    assert workspace.query("SELECT COUNT(*) AS n FROM dg_requests")[0]["n"] == 0


def test_privacy_override_and_loopback(planted, workspace, monkeypatch):
    with FakeOpenAIServer(pairs_reply) as srv:
        # Loopback: the text never leaves the machine, so nothing is blocked (and no key is needed).
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        assert datagen.run(config(planted, workspace, srv, dataset="local"))["done"] == 6
        # The same server treated as remote: blocked, then allowed by the explicit override.
        monkeypatch.setattr(endpoint, "pin", lambda url: Pinned(url, local=False))
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        with pytest.raises(PrivacyBlocked):
            datagen.run(config(planted, workspace, srv, dataset="remote", model="other-model"))
        assert srv.requests == 6
        events = []
        out = datagen.run(config(planted, workspace, srv, dataset="remote", model="other-model",
                                 allow_remote_pii=True), events.append)
        assert out["done"] == 6 and srv.requests == 12
        assert any(e["event"] == "privacy_override" for e in events)


def test_a_name_judged_local_is_connected_to_at_the_address_that_was_judged(planted, workspace, monkeypatch):
    """A name that answers 127.0.0.1 first and something else later must not get a second say: the
    client goes to the judged address, so the name is resolved once (the old client resolved it again
    to connect, and a flipping name sent a chunk out in 2 of 8 audit runs)."""
    import socket
    real, asked = socket.getaddrinfo, []

    def flipping(host, *args, **kwargs):
        if host != "flipper.test":
            return real(host, *args, **kwargs)
        asked.append(host)
        if len(asked) > 1:      # the second answer would be remote; failing here keeps the test on loopback
            raise socket.gaierror(socket.EAI_NONAME, "second resolution of flipper.test")
        return real("127.0.0.1", *args, **kwargs)
    monkeypatch.setattr(socket, "getaddrinfo", flipping)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeOpenAIServer(pairs_reply) as srv:
        out = datagen.run(config(planted, workspace, srv, base_url=srv.base_url.replace("127.0.0.1", "flipper.test")))
    assert out["done"] == 6 and out["errors"] == 0 and srv.requests == 6
    assert asked == ["flipper.test"]


def test_pinning_keeps_literals_names_https_apart():
    from pipelines.core.locality import pin
    assert pin("http://127.0.0.1:8000/v1") == Pinned("http://127.0.0.1:8000/v1", local=True)
    assert pin("http://192.0.2.1/v1") == Pinned("http://192.0.2.1/v1", local=False)
    assert pin("http://localhost:8000/v1") == Pinned("http://127.0.0.1:8000/v1", True, {"Host": "localhost:8000"})
    # A certificate names the host, so an https name cannot be pinned: it stays under the guard.
    assert pin("https://localhost:8443/v1") == Pinned("https://localhost:8443/v1", local=False)


def test_remote_endpoint_needs_a_key_from_the_environment(docs, workspace, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr(endpoint, "pin", lambda url: Pinned(url, local=False))
    with FakeOpenAIServer(pairs_reply) as srv:
        with pytest.raises(UserError, match="OPENAI_API_KEY"):
            datagen.run(config(docs, workspace, srv))
        assert srv.requests == 0


def test_auth_error_stops_the_run_with_a_clear_message(docs, workspace):
    with FakeOpenAIServer(pairs_reply, errors=[401] * 10) as srv:
        with pytest.raises(UserError, match="refused"):
            datagen.run(config(docs, workspace, srv, concurrency=1))
        assert srv.requests == 1


def test_cli(docs, workspace, tmp_path, capsys):
    log = tmp_path / "events.jsonl"
    with FakeOpenAIServer(pairs_reply) as srv:
        datagen.main(["--docs", str(docs), "--base-url", srv.base_url, "--model", "fake-model", "--pairs", "3",
                      "--chunk-size", "4", "--chunk-overlap", "0", "--concurrency", "3", "--dataset", "cli",
                      "--template", "paper_ja", "--events", str(log), "--workspace", str(workspace.root)])
        assert "15回" not in srv.answered.most_common(1)[0][0] and "3回" in srv.answered.most_common(1)[0][0]
    assert json.loads(capsys.readouterr().out)["records"] == 15
    assert json.loads(log.read_text().splitlines()[-1])["event"] == "finish"
    with pytest.raises(SystemExit) as exc:
        datagen.main(["--docs", str(tmp_path / "none"), "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
                      "--dataset", "x", "--workspace", str(workspace.root)])
    assert exc.value.code == 2


# -- as a job (pipelines.core.jobs), the way the Data tab starts it ------------------------------

def _start_job(cfg, run_dir, **env):
    from pipelines.core import jobs
    return jobs.start(run_dir, jobs.command("datagen", *datagen.command_args(cfg)),
                      kind="datagen", env=env)


def test_job_privacy_refusal_carries_the_findings(planted, workspace, tmp_path):
    from pipelines.core import jobs
    cfg = config(planted, workspace, FakeOpenAIServer(), base_url="http://192.0.2.1/v1")
    job = _start_job(cfg, tmp_path / "job", OPENAI_API_KEY="sk-test")
    assert job.cli.startswith("jmedlora datagen --docs ")
    final = jobs.follow(job.run_dir, poll_s=0.1)
    assert final["status"] == "failed" and final["end"]["event"] == "error"
    assert {f["kind"] for f in final["end"]["findings"]} == {"record_number", "name"}
    assert final["end"]["base_url"] == "http://192.0.2.1/v1" and "--allow-remote-pii" in final["message"]
    assert workspace.query("SELECT COUNT(*) AS n FROM dg_requests")[0]["n"] == 0


def test_job_stops_gracefully_keeping_what_was_answered(docs, workspace, tmp_path):
    from pipelines.core import jobs
    with FakeOpenAIServer(pairs_reply, latency=0.3) as srv:
        cfg = config(docs, workspace, srv, concurrency=1)
        job = _start_job(cfg, tmp_path / "job")
        for _ in range(600):
            if (jobs.status(job.run_dir).get("progress") or {}).get("done", 0) >= 1:
                break
            __import__("time").sleep(0.05)
        final = jobs.stop(job.run_dir, grace_s=30)
        assert final["status"] == "stopped" and final["end"]["event"] == "stop"
        done = final["end"]["done"]
        assert 1 <= done < 5 and final["end"]["remaining"] == 5 - done
        # Resumable: the next run reads the answered chunks from the cache and sends only the rest.
        sent = srv.requests
        summary = datagen.run(cfg)
        assert summary["cached"] == done and srv.requests - sent == 5 - done



def json_reply(prompt: str) -> str:
    return json.dumps({"pairs": [{"instruction": f"質問{hashlib.sha1(prompt.encode()).hexdigest()[:6]}は？",
                                  "output": "回答。"}]}, ensure_ascii=False)


def test_pairs_are_asked_for_as_json_with_a_schema(docs, workspace):
    with FakeOpenAIServer(json_reply) as srv:
        summary = datagen.run(config(docs, workspace, srv))
    assert srv.formats and all(f["type"] == "json_schema" for f in srv.formats)
    assert srv.formats[0]["json_schema"]["schema"]["properties"]["pairs"]["maxItems"] == 3
    assert summary["records"] == 5 and summary["unparseable"] == 0


def test_each_chunk_is_sent_with_its_own_reproducible_seed(docs, tmp_path):
    from pipelines.core.workspace import Workspace
    sent = []
    for name, seed in (("a", 0), ("b", 0), ("c", 5)):      # fresh workspaces: nothing is read from a cache
        with FakeOpenAIServer(json_reply) as srv:
            datagen.run(config(docs, Workspace.resolve(tmp_path / name), srv, seed=seed))
        sent.append(srv.seeds)
    assert len(set(sent[0].values())) == 5 and all(isinstance(v, int) and 0 <= v < 2**31 for v in sent[0].values())
    assert sent[1] == sent[0]                                # the same run, the same seeds
    assert set(sent[2].values()).isdisjoint(sent[0].values())     # another --seed, other answers


def test_progress_follows_answers_while_they_stream_in(docs, workspace, monkeypatch):
    monkeypatch.setattr(chunk_dispatch, "RECEIVING_EVERY_S", 0.0)
    events = []
    with FakeOpenAIServer(json_reply, stream_pieces=6, piece_delay=0.05) as srv:
        summary = datagen.run(config(docs, workspace, srv, concurrency=2), events.append)
    progress = [e for e in events if e["event"] == "progress"]
    first_done = next(i for i, e in enumerate(progress) if e["done"] >= 1)
    before = progress[:first_done]
    assert before and all(e["done"] == 0 and e["receiving"] >= 1 for e in before)
    assert [e["receiving_chars"] for e in before] == sorted(e["receiving_chars"] for e in before)   # growing
    assert summary["records"] == 5 and progress[-1]["receiving"] == 0


def test_an_endpoint_refusing_response_format_gets_the_paper_prompt(docs, workspace):
    events = []
    with FakeOpenAIServer(pairs_reply, refuse_response_format=True) as srv:
        summary = datagen.run(config(docs, workspace, srv), events.append)
    assert summary["records"] == 15 and summary["errors"] == 0
    assert any(e["event"] == "retry" and "free-text" in e["reason"] for e in events)
    assert all("JSON" not in prompt for prompt in srv.answered)     # answered prompts are the paper's


@pytest.mark.slow
def test_embedded_model_yields_parsed_records_for_every_chunk(workspace_with_default, tmp_path):
    from tests.conftest import REPO
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("diabetes.txt", "heart_failure.md"):      # the first lines of two sample documents: 2 chunks
        lines = (REPO / "assets" / "docs" / name).read_text(encoding="utf-8").splitlines()[:12]
        (docs / name).write_text("\n".join(lines), encoding="utf-8")
    summary = datagen.run(DatagenConfig(docs=str(docs), dataset="embedded", model="default", pairs=2,
                                        max_tokens=160, temperature=0.2, workspace=str(workspace_with_default.root)),
                          workspace=workspace_with_default)
    assert summary["done"] == 2 and summary["errors"] == 0, summary
    rows = workspace_with_default.query("SELECT chunk_id, instruction, output FROM dg_records WHERE dataset = ?",
                                        ("embedded",))
    per_chunk = {r["chunk_id"].split("@")[0] for r in rows if r["instruction"].strip() and r["output"].strip()}
    assert per_chunk == {"diabetes.txt", "heart_failure.md"}, (rows, datastore.list_raw(workspace_with_default,
                                                                                         "embedded"))
    # Japanese comes through whole: no replacement characters from bytes that never formed one.
    assert any(re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", r["instruction"] + r["output"]) for r in rows)
    assert not any("\ufffd" in r["instruction"] + r["output"] for r in rows), rows

"""The Charts tab's handlers, called directly on a workspace with fake evaluation results:
Table 1 shows n and intervals, marks the best only within one question set, names a trained
adapter by its run, speaks the page language, and exports CSV that Excel reads (BOM)."""
from pipelines.core import audit
from tests.workbench.fake_results import record, result_row
from workbench import tab_charts
from workbench.state import AppState


def cell_classes(table_html: str) -> dict[tuple[str, str], set[str]]:
    """(row label, column heading) -> the cell's classes, read from Table 1's HTML."""
    from html.parser import HTMLParser

    class Cells(HTMLParser):
        def __init__(self):
            super().__init__()
            self.heads, self.rows, self.where, self.text = [], [], None, ""

        def handle_starttag(self, tag, attrs):
            if tag in ("th", "td") and self.where is None:
                self.where, self.text, self.cls = tag, "", set((dict(attrs).get("class") or "").split())
            elif tag == "tr" and self.heads:
                self.rows.append([])
            elif tag == "span":
                self.where = self.where and self.where + "+span"      # a note under the value: not the name

        def handle_endtag(self, tag):
            if tag == "span" and self.where:
                self.where = self.where.split("+")[0]
            if tag == self.where:
                if tag == "th":
                    self.heads.append(self.text.strip())
                else:
                    self.rows[-1].append((self.text.strip(), self.cls))
                self.where = None

        def handle_data(self, data):
            if self.where in ("th", "td"):
                self.text += data

    p = Cells()
    p.feed(table_html)
    return {(r[0][0], head): cls for r in p.rows for head, (_, cls) in zip(p.heads[1:], r[1:])}


def rows(n: int, right: int) -> list[dict]:
    return [result_row(f"q{i}", 0, ["a"] if i < right else ["b"]) for i in range(n)]


def test_table1_shows_n_and_intervals_and_marks_best_within_one_question_set(workspace, tmp_path):
    record(workspace, tmp_path / "e1", "default", rows(8, 2))
    workspace.register_model("myrun@8", "adapter", "/a", base_model="default", step=8, train_hours=0.1)
    record(workspace, tmp_path / "e2", "myrun@8", rows(8, 6))
    html, steps, shots, table_csv, long_csv = tab_charts.build(AppState(workspace), "*", "*", True, "accuracy", "ja")
    assert "n=8" in html and "[" in html
    cells = cell_classes(html)                                     # same question set: ranked
    assert "best" in cells[("正答率（0-shot）", "myrun · 8")]          # 6/8 right ...
    assert "second" in cells[("正答率（0-shot）", "default · 0")]       # ... beats 2/8
    assert "best" not in cells[("正答率（0-shot）", "default · 0")]
    assert "論文の公表値" in html and "区間・n 未報告" in html          # published columns say so
    assert "myrun · 8" in html and "default · 8" not in html       # the adapter is named by its run
    assert {t.name for t in steps.data} >= {"myrun (0-shot)", "default (0-shot)"}
    assert steps.layout.title.text == "正答率：学習ステップごと" and steps.layout.xaxis.title.text.startswith("学習ステップ")
    for path in (table_csv, long_csv):
        assert open(path, "rb").read(3) == b"\xef\xbb\xbf"        # UTF-8 BOM
    assert table_csv.endswith("table1_all.csv")
    assert [e["action"] for e in audit.entries(workspace.root)][-1] == "view"
    assert audit.entries(workspace.root)[-1]["user"] == "local"


def test_columns_on_different_question_sets_are_not_ranked_and_the_table_says_so(workspace, tmp_path):
    record(workspace, tmp_path / "e1", "default", rows(4, 3), data="small.jsonl")
    record(workspace, tmp_path / "e2", "other", rows(40, 10), data="big.jsonl")
    html = tab_charts.build(AppState(workspace), "*", "*", True, "accuracy", "en")[0]
    assert 'class="best"' not in html and "different question sets" in html
    assert "small.jsonl n=4" in html and "big.jsonl n=40" in html
    one = tab_charts.build(AppState(workspace), "small.jsonl", "*", False, "accuracy", "en")
    assert 'class="best"' in one[0] and one[3].endswith("table1_small.csv")


def test_empty_workspace_and_language_switch(workspace):
    state = AppState(workspace)
    html, steps, *_ = tab_charts.build(state, "*", "*", False, "accuracy", "en")
    assert "No finished evaluation yet" in html
    metric, data, template, loss = tab_charts.relabel(state, "ja", "gestalt", [])
    assert ("完全一致", "exact_match") in metric["choices"] and metric["value"] == "gestalt"
    assert data["choices"][0] == ("（すべて）", "*")

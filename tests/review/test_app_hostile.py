"""Issue 18: the review app under hostile input — exact targets, broken task files, malformed fields and
bodies, oversized values, scoped idempotency keys. Every answer is a 400/404/413 with one line, never a 500."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from helpers import write_image
from shiftlab.review import tasks as tk
from shiftlab.review.app import MAX_BODY, TOKEN_HEADER, create_app
from shiftlab.review.log import LIMITS

TOKEN = "hostile-token"
H = {TOKEN_HEADER: TOKEN}
JSON = {**H, "Content-Type": "application/json"}


@pytest.fixture
def ws(tmp_path):
    """A dataset whose two files differ only by a leading space (" a.png" beside "a.png"), and a task over it."""
    from shiftlab.data.layouts import read_dataset
    from shiftlab.registry import register_dataset
    from shiftlab.workspace import Workspace

    w = Workspace.resolve(tmp_path / "ws")
    write_image(tmp_path / "set" / "n01440764" / "a.png", size=(20, 16), seed=1, fmt="PNG")
    write_image(tmp_path / "set" / "n01443537" / " a.png", size=(20, 16), seed=2, fmt="PNG")
    m = read_dataset(tmp_path / "set", progress=False)
    assert sorted(m.ids) == [" a.png", "a.png"]
    register_dataset(m, "spaced", w)
    tk.images_task("spaced", "watermarks", name="marks", workspace=w)
    return w


@pytest.fixture
def client(ws):
    with TestClient(create_app(ws, token=TOKEN), raise_server_exceptions=False) as c:
        yield c


def decide(client, target, decision="clean", **extra):
    return client.post("/api/tasks/marks/decisions", json={"target": target, "decision": decision,
                                                           "reviewer": "ann", **extra}, headers=H)


def one_line(r) -> str:
    detail = r.json()["detail"] if r.headers.get("content-type", "").startswith("application/json") else r.text
    assert isinstance(detail, str) and "\n" not in detail and "Traceback" not in detail
    return detail


# --- 18.1 ---------------------------------------------------------------------------------------------------
def test_a_decision_lands_on_exactly_the_target_sent(client):
    assert decide(client, " a.png", "clean").status_code == 200
    state = client.get("/api/tasks/marks/state", headers=H).json()
    assert set(state) == {" a.png"}  # not "a.png"
    assert decide(client, "a.png", "watermark", reason="corner: croppable", crop=[0, 0, 4, 4]).status_code == 200
    state = client.get("/api/tasks/marks/state", headers=H).json()
    assert (state[" a.png"]["decision"], state["a.png"]["decision"]) == ("clean", "watermark")
    for near in ("a.png ", "  a.png", "\ta.png", "a.png\n", "\u00a0a.png"):  # whitespace variants are no item
        r = decide(client, near)
        assert r.status_code == 404, near
        one_line(r)
    assert set(client.get("/api/tasks/marks/state", headers=H).json()) == {" a.png", "a.png"}


def test_an_id_list_is_read_exactly(ws, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text(" a.png\n\n")
    t = tk.images_task("spaced", "watermarks", name="only-spaced", items=[{"id": i} for i in tk.read_id_list(ids)],
                       workspace=ws)
    assert [it["id"] for it in t["items"]] == [" a.png"]


# --- 18.5 ---------------------------------------------------------------------------------------------------
BROKEN = {
    "bare": {"name": "bare", "kind": "images"},
    "nullitems": {"name": "nullitems", "kind": "images", "dataset": "spaced", "config": {"decisions": [{"name": "x"}]},
                  "items": None},
    "gone": {"name": "gone", "kind": "images", "dataset": "gone", "config": {"decisions": [{"name": "x"}]},
             "items": [{"id": "a.png"}]},
    "noid": {"name": "noid", "kind": "images", "dataset": "spaced", "config": {"decisions": [{"name": "x"}]},
             "items": [{"caption": "where is my id"}]},
    "numid": {"name": "numid", "kind": "images", "dataset": "spaced", "config": {"decisions": [{"name": "x"}]},
              "items": [{"id": 7}]},
    "badconfig": {"name": "badconfig", "kind": "images", "dataset": "spaced", "config": {"decisions": "all"},
                  "items": [{"id": "a.png"}]},
    "dupnoimages": {"name": "dupnoimages", "kind": "duplicates", "items": [{"target": "q|r"}]},
    "labstr": {"name": "labstr", "kind": "labelling", "items": "x"},
    "labimg": {"name": "labimg", "kind": "labelling", "items": [{"target": "h", "class_index": 0, "class_name": "c",
                                                               "gloss": "", "images": [{"url": "u"}]}]},
    "classes": {"name": "classes", "kind": "classes", "dataset": "spaced", "reasons": []},
    "classesgone": {"name": "classesgone", "kind": "classes", "dataset": "gone", "reasons": ["r"]},
    "othername": {"name": "marks", "kind": "images", "dataset": "spaced", "config": {"decisions": [{"name": "x"}]},
                  "items": []},
    "weirdkind": {"name": "weirdkind", "kind": "video"},
}
RAW = {"notjson": "{not json", "list": "[1, 2]", "deep": "[" * 100_000 + "]" * 100_000, "nan": '{"name": NaN}',
       "binary": "\udcff"}


def test_one_broken_task_file_never_takes_the_index_down(client, ws):
    folder = ws.root / "review" / "tasks"
    for name, doc in BROKEN.items():
        (folder / f"{name}.json").write_text(json.dumps(doc))
    for name, text in RAW.items():
        (folder / f"{name}.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    r = client.get("/", headers=H)
    assert r.status_code == 200
    assert 'href="/task/marks"' in r.text  # the good task is still there, and linked
    page = r.text
    for name in [*BROKEN, *RAW]:
        assert f"<td>{name}</td>" in page, name  # listed (not linked) ...
    assert page.count("cannot open:") == len(BROKEN) + len(RAW)  # ... each with its reason
    assert "&#39;items&#39; must be list, not NoneType" in page and "&#39;gone&#39; is not a registered" in page
    assert "nested too deeply" in page and "names task &#39;marks&#39;" in page
    for name in [*BROKEN, *RAW]:
        for url in (f"/task/{name}", f"/api/tasks/{name}/items", f"/api/tasks/{name}/state"):
            r = client.get(url, headers=H)
            assert r.status_code == 400, (url, r.status_code)
            one_line(r)
        r = client.post(f"/api/tasks/{name}/decisions", json={"target": "a.png", "decision": "x", "reviewer": "a"},
                        headers=H)
        assert r.status_code == 400, name
        assert client.post(f"/api/tasks/{name}/undo", json={"reviewer": "a"}, headers=H).status_code == 400
    # the API's list holds the files that are tasks (two of them name a dataset that is gone: their routes say so)
    assert [t["name"] for t in client.get("/api/tasks", headers=H).json()] == ["classesgone", "gone", "marks"]


# --- 18.7 ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["reviewer", "target", "decision", "reason", "note", "key"])
def test_a_lone_surrogate_in_any_field_is_a_400(client, field):
    body = {"target": "a.png", "decision": "clean", "reviewer": "ann"}
    raw = json.dumps({**body, field: "PLACEHOLDER"}).replace("PLACEHOLDER", "x\\ud800y").encode()
    r = client.post("/api/tasks/marks/decisions", content=raw, headers=JSON)
    assert r.status_code in (400, 404), r.status_code  # an unknown target is a 404; never a 500
    one_line(r)
    raw = json.dumps({"reviewer": "PLACEHOLDER", "key": "k"}).replace("PLACEHOLDER", "\\udfff").encode()
    assert client.post("/api/tasks/marks/undo", content=raw, headers=JSON).status_code == 400
    assert client.get("/api/tasks/marks/state?reviewer=%ED%A0%80", headers=H).status_code == 200
    assert client.get("/api/tasks/marks/state", headers=H).json() == {}


@pytest.mark.parametrize("event_id", [2**63, 2**63 + 1, 10**40, 0, -1, -(2**63) - 1, "1e999", 1.5])
def test_an_event_id_out_of_range_is_a_400(client, event_id):
    raw = b'{"reviewer": "ann", "event_id": %s}' % str(event_id).encode()
    r = client.post("/api/tasks/marks/undo", content=raw, headers=JSON)
    assert r.status_code == 400, r.status_code
    one_line(r)


def test_long_path_segments_are_404_never_500(client):
    long = "x" * 300
    urls = [f"/img/{long}/a.png", f"/img/spaced/{long}", f"/img/spaced/{long}/{long}", f"/hitimg/{long}/h/0",
            f"/hitimg/marks/{long}/0", f"/task/{long}", f"/api/tasks/{long}/items", f"/api/tasks/{long}/state",
            f"/api/tasks/{long}/thumbs?label=0", f"/img/{'é' * 200}/a.png", f"/img/spaced/{'%00' * 3}"]
    for url in urls:
        r = client.get(url, headers=H)
        assert r.status_code in (400, 404), (url, r.status_code)
    r = client.post(f"/api/tasks/{long}/decisions", json={"target": "a.png", "decision": "clean"}, headers=H)
    assert r.status_code in (400, 404)


# --- 18.9 ---------------------------------------------------------------------------------------------------
def test_keys_are_scoped_to_the_reviewer_in_the_app(client):
    a = decide(client, "a.png", "clean", key="k-1").json()
    b = client.post("/api/tasks/marks/decisions", json={"target": " a.png", "decision": "clean", "reviewer": "bob",
                                                       "key": "k-1"}, headers=H).json()
    assert (b["reviewer"], b["target"]) == ("bob", " a.png") and b["id"] != a["id"]
    state = client.get("/api/tasks/marks/state", headers=H).json()
    assert set(state) == {"a.png", " a.png"}  # bob's decision was stored, not dropped
    r = client.post("/api/tasks/marks/undo", json={"reviewer": "ann", "key": "k-1"}, headers=H)
    assert r.status_code == 400 and "names a decision" in one_line(r)


# --- 18.10 --------------------------------------------------------------------------------------------------
def test_a_huge_body_is_refused_before_it_is_read(client):
    note = "x" * (50 * 1024 * 1024)
    r = decide(client, "a.png", note=note)
    assert r.status_code == 413 and "request body over" in r.text

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(MAX_BODY // 1024 + 2):
            yield b" " * 1024
    r = client.post("/api/tasks/marks/decisions", content=chunks(), headers=JSON)
    assert r.status_code == 413
    assert client.get("/api/tasks/marks/state", headers=H).json() == {}


@pytest.mark.parametrize("field", ["target", "decision", "reason", "note", "reviewer", "key"])
def test_every_field_has_a_limit(client, field):
    body = {"target": "a.png", "decision": "clean", "reviewer": "ann", field: "y" * (LIMITS[field] + 1)}
    r = client.post("/api/tasks/marks/decisions", json=body, headers=H)
    assert r.status_code == 400, r.status_code
    assert field in one_line(r)
    assert client.get("/api/tasks/marks/state", headers=H).json() == {}

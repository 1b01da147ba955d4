"""The review app's routes: access token, CSRF, image serving by id only, escaping, decisions and exports."""

from __future__ import annotations

import json
import os

import pytest
from fastapi.testclient import TestClient

from shiftlab.review import tasks as tk
from shiftlab.review.app import TOKEN_HEADER, cookie_name, create_app

TOKEN = "secret-token-for-tests"
H = {TOKEN_HEADER: TOKEN}


@pytest.fixture
def client(rws):
    app = create_app(rws.ws, token=TOKEN)
    with TestClient(app) as c:
        yield c


def _routes(rws):
    d, lab = rws.tasks["duplicates"], rws.tasks["labelling"]
    return ["/", f"/task/{d['name']}", "/api/tasks", f"/api/tasks/{d['name']}/items", f"/api/tasks/{d['name']}/state",
            f"/img/pool/{rws.pool.ids[0]}", f"/hitimg/{lab['name']}/{lab['items'][0]['target']}/0",
            "/static/common.js", "/static/review.css", "/nowhere",
            f"/api/tasks/{rws.tasks['classes']['name']}/thumbs?label=0"]


def test_every_route_needs_the_token_and_reveals_nothing_without_it(client, rws):
    for url in _routes(rws):
        # the wrong cookie under the name the gate reads (a cookie under any other name is never looked at)
        for headers, cookies in [({}, {}), ({TOKEN_HEADER: "wrong"}, {}), ({}, {cookie_name(TOKEN): "wrong"})]:
            client.cookies.clear()
            for k, v in cookies.items():
                client.cookies.set(k, v)
            r = client.get(url, headers=headers)
            assert r.status_code == 401, url
            assert r.text == "unauthorized"  # no page, no file, no hint of what exists
    client.cookies.clear()
    r = client.post(f"/api/tasks/{rws.tasks['duplicates']['name']}/decisions", json={})
    assert r.status_code == 401


def test_first_visit_trades_the_url_token_for_a_cookie(client, rws):
    r = client.get(f"/task/{rws.tasks['images']['name']}?token={TOKEN}&x=1", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/task/{rws.tasks['images']['name']}?x=1"
    assert "httponly" in r.headers["set-cookie"].lower() and "samesite=strict" in r.headers["set-cookie"].lower()
    assert client.get("/").status_code == 200  # the cookie now carries it
    assert client.get(f"/img/pool/{rws.pool.ids[0]}").headers["content-type"] == "image/png"


def test_a_cookie_alone_cannot_change_anything(client, rws):
    """CSRF: a foreign page can make the browser send the cookie, never the header."""
    client.get(f"/?token={TOKEN}")
    task = rws.tasks["duplicates"]
    body = {"target": task["items"][0]["target"], "decision": "duplicate", "reviewer": "mallory"}
    assert client.post(f"/api/tasks/{task['name']}/decisions", json=body).status_code == 403
    assert client.post(f"/api/tasks/{task['name']}/undo", json={"reviewer": "x"}).status_code == 403
    assert client.get(f"/api/tasks/{task['name']}/state").json() == {}
    r = client.post(f"/api/tasks/{task['name']}/decisions", json=body, headers=H)
    assert r.status_code == 200 and r.json()["reviewer"] == "mallory"


def test_images_only_by_manifest_id(client, rws, tmp_path):
    ok = client.get(f"/img/pool/{rws.pool.ids[0]}?size=24", headers=H)
    assert ok.status_code == 200 and ok.content[:8] == b"\x89PNG\r\n\x1a\n"
    root = rws.pool.root
    rel = rws.pool.table["path"].iloc[0]
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    attempts = ["../../../../etc/passwd", "..%2F..%2F..%2Fetc%2Fpasswd", "%2e%2e/%2e%2e/etc/passwd", str(secret),
                "%2Fetc%2Fpasswd", rel, f"{root}/{rel}", "..\\..\\secret.txt", "%252e%252e%252fetc"]
    for a in attempts:
        for ds in ("pool", "..", "%2e%2e", "../manifests/pool"):
            r = client.get(f"/img/{ds}/{a}", headers=H)
            assert r.status_code in (404, 400), (ds, a)
            assert b"do not serve" not in r.content and b"root:" not in r.content


def test_a_manifest_path_leading_out_of_its_root_is_refused(client, rws, tmp_path):
    """Even a manifest (hand-edited, or built from a hostile CSV) cannot make the app serve outside its root."""
    from dataclasses import replace

    from shiftlab.registry import register_dataset

    outside = tmp_path / "outside.png"
    from helpers import write_image

    write_image(outside)
    link = os.path.join(rws.pool.root, "n01440764", "link.png")
    os.symlink(outside, link)
    t = rws.pool.table.copy()
    t.loc[0, "path"] = "../../outside.png"
    t.loc[1, "path"] = "n01440764/link.png"
    t.loc[2, "path"] = str(outside)
    register_dataset(replace(rws.pool, table=t), "pool", rws.ws)
    for i in range(3):
        assert client.get(f"/img/pool/{t['id'].iloc[i]}", headers=H).status_code == 404
    assert client.get(f"/img/pool/{t['id'].iloc[3]}", headers=H).status_code == 200


def test_class_names_and_notes_render_as_text(rws, client):
    """A class named <script>… is shown as text: server-side by Jinja2 escaping, in pages by textContent."""
    from dataclasses import replace

    from shiftlab.data.classes import ClassInfo, Vocabulary
    from shiftlab.registry import register_dataset

    evil = "<script>alert(1)</script>"
    voc = Vocabulary("evil", (ClassInfo(0, None, (evil,), "gloss <b>bold</b>"), ClassInfo(1, None, ("two",), "")))
    register_dataset(replace(rws.pool, vocabulary=voc), "pool", rws.ws)
    tk.classes_task("pool", name=f"c-{'x'}", workspace=rws.ws)
    t = tk.write_task({**rws.tasks["images"], "name": "evil-task",
                      "config": {**rws.tasks["images"]["config"], "title": evil, "instructions": evil}}, rws.ws)
    assert t.is_file()
    page = client.get("/task/evil-task", headers=H).text
    assert evil not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    items = client.get("/api/tasks/c-x/items", headers=H).json()
    assert items["classes"][0]["name"] == evil  # JSON data; the scripts only ever set it as textContent
    for js in ("common.js", "classes.js", "duplicates.js", "labelling.js", "images.js"):
        src = client.get(f"/static/{js}", headers=H).text
        assert "innerHTML" not in src and "insertAdjacentHTML" not in src and "document.write" not in src


def test_decisions_are_checked_against_the_task(client, rws):
    d, im, lab, cl = (rws.tasks[k] for k in ("duplicates", "images", "labelling", "classes"))
    post = lambda t, **b: client.post(f"/api/tasks/{t['name']}/decisions", json={"reviewer": "ann", **b}, headers=H)  # noqa: E731
    assert post(d, target="nope", decision="duplicate").status_code == 404
    assert "takes distinct, duplicate" in post(d, target=d["items"][0]["target"], decision="maybe").json()["detail"]
    target = im["items"][0]["id"]
    assert post(im, target=target, decision="watermark", reason="nonsense").status_code == 400
    assert post(im, target=target, decision="clean", crop=[0, 0, 5, 5]).status_code == 400  # clean takes no box
    corner = "corner: croppable"
    assert post(im, target=target, decision="watermark", reason=corner, crop=[9, 9, 3, 3]).status_code == 400
    r = post(im, target=target, decision="watermark", reason="corner: croppable", crop=[1, 2, 30, 40])
    assert r.status_code == 200 and r.json()["crop"] == [1, 2, 30, 40]
    assert post(cl, target=rws.pool.ids[0], decision="blacklist", reason="made up").status_code == 400
    one_answer = '{"answers": [true]}'
    assert post(lab, target=lab["items"][0]["target"], decision="submitted", note=one_answer).status_code == 400
    r = client.post(f"/api/tasks/{d['name']}/decisions", json={"target": d["items"][0]["target"],
                                                              "decision": "duplicate"}, headers=H)
    assert r.status_code == 400 and "reviewer" in r.json()["detail"]
    assert client.get("/task/no-such-task", headers=H).status_code == 404
    with tk.open_workspace_log(rws.ws) as log:
        assert log.count() == 1  # only the one valid decision


def test_labelling_pages_hide_ids_and_roles(client, rws):
    lab = rws.tasks["labelling"]
    items = client.get(f"/api/tasks/{lab['name']}/items", headers=H).json()
    text = str(items)
    for im in lab["items"][0]["images"]:
        assert im["id"] not in text
    assert "positive" not in text and "negative" not in text and "candidate" not in text


def test_duplicate_decisions_export_as_the_review_csv_and_resolve(client, rws, tmp_path):
    from shiftlab.curate.dedup import duplicate_links, read_review_csv
    from shiftlab.review.log import ReviewLog

    d = rws.tasks["duplicates"]
    planted = {(q, r) for q, r in rws.copies.items()}
    n_dup = 0
    for it in d["items"]:
        dup = (it["query"], it["reference"]) in planted
        n_dup += dup
        client.post(f"/api/tasks/{d['name']}/decisions", headers=H,
                    json={"target": it["target"], "decision": "duplicate" if dup else "distinct", "reviewer": "ann"})
    assert n_dup == 3  # the real l2 search queued every planted copy at rank 0
    first = d["items"][0]
    client.post(f"/api/tasks/{d['name']}/undo", headers=H, json={"reviewer": "ann"})  # the last one is undecided again
    with ReviewLog(tk.log_path(rws.ws)) as log:
        df = tk.duplicate_reviews(log, d)
    assert len(df) == len(d["items"]) - 1
    path = tmp_path / "reviews.csv"
    df.to_csv(path, index=False)
    back = read_review_csv(path)
    assert set(duplicate_links(back)) == planted
    assert first["target"] in {f"{q}|{r}" for q, r in zip(back["query"], back["reference"])}


def test_a_class_grid_comes_as_data_urls_in_one_answer(client, rws):
    c = rws.tasks["classes"]
    got = client.get(f"/api/tasks/{c['name']}/thumbs?label=1&size=32", headers=H).json()
    assert set(got) == set(rws.pool.ids[rws.pool.labels == 1])
    assert all(v.startswith("data:image/png;base64,") for v in got.values())
    assert client.get(f"/api/tasks/{rws.tasks['images']['name']}/thumbs?label=1", headers=H).status_code == 404


def test_bad_crops_and_sizes_are_refused(client, rws):
    im, d = rws.tasks["images"], rws.tasks["duplicates"]
    target = im["items"][0]["id"]  # a 48×40 image
    post = lambda t, **b: client.post(f"/api/tasks/{t['name']}/decisions", json={"reviewer": "ann", **b}, headers=H)  # noqa: E731
    corner = "corner: croppable"
    r = post(im, target=target, decision="watermark", reason=corner, crop=[0, 0, 49, 40])
    assert r.status_code == 400 and "outside the 48×40 image" in r.json()["detail"]
    assert post(im, target=target, decision="watermark", reason=corner, crop=[0, 0, 48, 40]).status_code == 200
    r = client.post(f"/api/tasks/{im['name']}/decisions", headers={**H, "Content-Type": "application/json"},
                    content=b'{"target": "%s", "decision": "watermark", "reason": "%s", "crop": [0, 0, Infinity, 5],'
                            b' "reviewer": "ann"}' % (target.encode(), corner.encode()))
    assert r.status_code in (400, 422)
    assert post(d, target=d["items"][0]["target"], decision="duplicate", crop=[0, 0, 5, 5]).status_code == 400
    lab = rws.tasks["labelling"]
    assert client.get(f"/hitimg/{lab['name']}/{lab['items'][0]['target']}/0?size=-5", headers=H).status_code == 400


def test_a_broken_task_file_is_a_one_line_answer_not_a_500(client, rws):
    (rws.ws.root / "review" / "tasks" / "broken.json").write_text("{not json")
    (rws.ws.root / "review" / "tasks" / "odd.json").write_text("[1, 2]")
    (rws.ws.root / "review" / "tasks" / "kindless.json").write_text('{"name": "kindless"}')
    for name in ("broken", "odd", "kindless"):  # unreadable, and readable JSON that is no task
        r = client.get(f"/task/{name}", headers=H)
        assert r.status_code == 400 and "not a task file" in r.json()["detail"], name
        assert client.get(f"/api/tasks/{name}/items", headers=H).status_code == 400, name
    assert client.get("/", headers=H).status_code == 200  # the index skips what it cannot read


def test_first_visit_redirect_stays_on_the_site(live):
    import http.client

    host, port = live.url.removeprefix("http://").split(":")
    con = http.client.HTTPConnection(host, int(port), timeout=10)
    con.request("GET", f"//evil.example/x?token={live.token}")  # sent as written, not as a URL
    r = con.getresponse()
    assert r.status == 303 and r.getheader("location") == "/evil.example/x"
    assert "shiftlab_token_" in r.getheader("set-cookie")  # a cookie of this server's own (per token)


def test_each_annotator_sees_only_their_own_submissions(client, rws):
    lab = rws.tasks["labelling"]
    hit = lab["items"][0]
    note = json.dumps({"answers": [True] * len(hit["images"])})
    client.post(f"/api/tasks/{lab['name']}/decisions", headers=H,
                json={"target": hit["target"], "decision": "submitted", "note": note, "reviewer": "worker-a"})
    url = f"/api/tasks/{lab['name']}/state"
    assert set(client.get(url, params={"reviewer": "worker-a"}, headers=H).json()) == {hit["target"]}
    assert client.get(url, params={"reviewer": "worker-b"}, headers=H).json() == {}
    assert client.get(url, headers=H).json() == {}


def test_the_writer_survives_cancelled_and_failing_decisions(tmp_path):
    """A request that gives up while queued is not stored, a bad decision fails alone, and the writer
    thread keeps answering afterwards."""
    from concurrent.futures import CancelledError

    from shiftlab.review.app import Committer
    from shiftlab.review.log import ReviewLog

    with ReviewLog(tmp_path / "log.sqlite") as log:
        c = Committer(log)
        blocker = c.submit(dict(reviewer="a", task="t", target="first", decision="d"))
        blocker.result(timeout=10)
        # queue three at once: one cancelled before the writer takes it, one invalid, one good
        real_put = c._q.put
        items = []
        c._q.put = items.append  # hold them back to enqueue as one batch
        cancelled = c.submit(dict(reviewer="a", task="t", target="gone", decision="d"))
        bad = c.submit(dict(reviewer="", task="t", target="x", decision="d"))
        good = c.submit(dict(reviewer="a", task="t", target="kept", decision="d"))
        assert cancelled.cancel()
        c._q.put = real_put
        for it in items:
            c._q.put(it)
        assert good.result(timeout=10).target == "kept"
        with pytest.raises(Exception, match="reviewer"):
            bad.result(timeout=10)
        with pytest.raises(CancelledError):
            cancelled.result(timeout=1)
        after = c.submit(dict(reviewer="a", task="t", target="later", decision="d"))
        assert after.result(timeout=10).target == "later"
        c.close()
        assert [e.target for e in log.events("t")] == ["first", "kept", "later"]

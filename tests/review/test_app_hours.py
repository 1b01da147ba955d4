"""The review app's pages explain themselves (issue 19.7): the near-duplicate view states the thresholds that
queued its pairs and what the highlight means."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shiftlab.review.app import create_app

TOKEN = "secret-token-for-tests"


@pytest.fixture
def client(rws):
    with TestClient(create_app(rws.ws, token=TOKEN)) as c:
        c.get(f"/?token={TOKEN}")
        yield c


def _legend(client, task):
    r = client.get(f"/task/{task['name']}")
    assert r.status_code == 200, r.text
    m = re.search(r'<p class="muted explain" id="metric-legend">(.*?)</p>', r.text, re.S)
    assert m, r.text
    return " ".join(re.sub(r"<[^>]+>", "", m.group(1)).split())


def test_duplicates_page_explains_thresholds_and_highlight(client, rws):
    task = rws.tasks["duplicates"]
    text = _legend(client, task)  # no queue_thresholds.json: the rule without numbers
    assert "at most that metric's threshold." in text and "≤" not in text
    assert "highlighted metrics are the ones that queued this pair" in text and "#n is the neighbour's rank" in text
    (Path(task["dedup_dir"]) / "queue_thresholds.json").write_text(json.dumps({"phash": 8.0, "l2": 5397323.0}))
    text = _legend(client, task)
    assert "(l2 ≤ 5.397e+06, phash ≤ 8)" in text, text
    (Path(task["dedup_dir"]) / "queue_thresholds.json").write_text("[1, 2]")  # unreadable: the page still opens
    assert "threshold." in _legend(client, task)


def test_positions_are_kept_per_reviewer_and_task_on_the_server(client, rws, tmp_path):
    from shiftlab.review.app import TOKEN_HEADER

    d, c = rws.tasks["duplicates"]["name"], rws.tasks["classes"]["name"]
    h = {TOKEN_HEADER: TOKEN}
    assert client.get(f"/api/tasks/{d}/position?reviewer=ann").json()["position"] is None
    assert client.put(f"/api/tasks/{d}/position", json={"reviewer": "ann", "position": "7"}).status_code in (401, 403)
    for task, who, position in ((d, "ann", "7"), (d, "bob", "2"), (c, "ann", "1:x.png")):
        put = client.put(f"/api/tasks/{task}/position", json={"reviewer": who, "position": position}, headers=h)
        assert put.status_code == 200
    assert client.get(f"/api/tasks/{d}/position?reviewer=ann").json()["position"] == "7"
    assert client.get(f"/api/tasks/{d}/position?reviewer=bob").json()["position"] == "2"
    assert client.get(f"/api/tasks/{c}/position?reviewer=ann").json()["position"] == "1:x.png"
    assert client.get(f"/api/tasks/{c}/position?reviewer=bob").json()["position"] is None
    assert client.get("/api/tasks/nowhere/position?reviewer=ann").status_code == 404
    assert client.put(f"/api/tasks/{d}/position", json={"reviewer": "", "position": "1"}, headers=h).status_code == 400
    # a restarted server reads them back
    with TestClient(create_app(rws.ws, token=TOKEN)) as c2:
        c2.get(f"/?token={TOKEN}")
        assert c2.get(f"/api/tasks/{d}/position?reviewer=ann").json()["position"] == "7"

"""Many reviewers at once, and a server killed mid-load: no acknowledged decision is ever lost."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid

import httpx
import pytest

from shiftlab.review import tasks as tk
from shiftlab.review.app import TOKEN_HEADER
from shiftlab.review.log import ReviewLog


def start_server(ws) -> tuple[subprocess.Popen, str, str]:
    """``shiftlab review serve --port 0`` as a user runs it; returns the process, base URL and token."""
    proc = subprocess.Popen([sys.executable, "-m", "shiftlab", "-w", str(ws.root), "review", "serve", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.match(r"(http://127\.0\.0\.1:\d+)/\?token=(\S+)", line)
    assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
    base, token = m.groups()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/api/tasks", headers={TOKEN_HEADER: token}, timeout=1).status_code == 200:
                return proc, base, token
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("the server did not come up")


def hammer(base, token, task, targets_of, per_client, acked, sent):
    """Each client owns its targets and cycles decisions over them; records what was sent and acknowledged.

    The clients use the standard library's http.client: httpx costs the client process about three times the
    CPU, and on two cores the clients would then measure themselves rather than the server."""
    host, port = base.removeprefix("http://").split(":")
    headers = {TOKEN_HEADER: token, "Content-Type": "application/json"}

    def client(c):
        con = http.client.HTTPConnection(host, int(port), timeout=10)
        mine = targets_of[c]
        for i in range(per_client):
            key = uuid.uuid4().hex
            body = {"target": mine[i % len(mine)], "decision": ("duplicate", "distinct")[(i // len(mine)) % 2],
                    "reviewer": f"r{c}", "key": key}
            sent[c].append((key, body))
            try:
                con.request("POST", f"/api/tasks/{task}/decisions", json.dumps(body), headers)
                r = con.getresponse()
                payload = r.read()
            except (OSError, http.client.HTTPException):
                # the server died under us (maybe halfway through a reply, IncompleteRead): a decision
                # counts as acknowledged only once its whole reply, with the event id, has arrived
                return
            if r.status == 200:
                acked[c].append((key, json.loads(payload)["id"], body))
        con.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(len(targets_of))]
    for t in threads:
        t.start()
    return threads


@pytest.mark.slow
def test_twenty_clients_five_thousand_decisions_exact(rws):
    task = rws.tasks["duplicates"]
    targets = [it["target"] for it in task["items"]]
    assert len(targets) >= 40
    targets_of = [targets[c::20] for c in range(20)]
    proc, base, token = start_server(rws.ws)
    try:
        acked, sent = [[] for _ in range(20)], [[] for _ in range(20)]
        t0 = time.perf_counter()
        for t in hammer(base, token, task["name"], targets_of, 250, acked, sent):
            t.join()
        took = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert sum(map(len, acked)) == 5000
    with ReviewLog(tk.log_path(rws.ws)) as log:
        events = log.events(task["name"])
        assert len(events) == 5000
        assert {e.key for e in events} == {k for a in acked for k, _, _ in a}
        # the fold: each target's decision is the last one its (only) client sent
        expected = {}
        for a in acked:
            for _, _, body in a:
                expected[body["target"]] = body["decision"]
        assert {k: e.decision for k, e in log.state(task["name"]).items()} == expected
    print(f"5000 decisions from 20 clients in {took:.2f} s ({5000 / took:.0f}/s)")


@pytest.mark.slow
def test_killing_the_server_mid_load_loses_no_acknowledged_decision(rws):
    task = rws.tasks["duplicates"]
    targets = [it["target"] for it in task["items"]]
    targets_of = [targets[c::20] for c in range(20)]
    proc, base, token = start_server(rws.ws)
    acked, sent = [[] for _ in range(20)], [[] for _ in range(20)]
    threads = hammer(base, token, task["name"], targets_of, 10_000, acked, sent)
    deadline = time.monotonic() + 30
    while sum(map(len, acked)) < 600 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)  # no shutdown hook runs: only what was committed survives
    proc.wait(timeout=10)
    for t in threads:
        t.join(timeout=30)
    n_acked = sum(map(len, acked))
    assert n_acked >= 600
    proc2, base2, token2 = start_server(rws.ws)  # a restart reopens the same log
    try:
        state = httpx.get(f"{base2}/api/tasks/{task['name']}/state", headers={TOKEN_HEADER: token2}).json()
    finally:
        proc2.terminate()
        proc2.wait(timeout=10)
    with ReviewLog(tk.log_path(rws.ws)) as log:
        stored = {e.key: e for e in log.events(task["name"])}
    acked_keys = {k for a in acked for k, _, _ in a}
    sent_keys = {k for s in sent for k, _ in s}
    assert acked_keys <= set(stored)  # every acknowledged decision survived the kill
    assert set(stored) <= sent_keys  # and nothing was invented
    assert len(stored) - len(acked_keys) <= 20  # at most the in-flight ones (one per client) got in unacknowledged
    for a in acked:
        for key, eid, _ in a:
            assert stored[key].id == eid
    assert len(state) == len({b["target"] for s in sent for k, b in s if k in stored})

"""The review app: FastAPI over the workspace's review tasks and its ReviewLog.

Security model (the app runs on a researcher's machine, often beside their data):
- every route — pages, images, static files, API — needs the access token printed at start-up: as a
  ``?token=`` on the first visit (which sets an HttpOnly, SameSite=Strict cookie and redirects to a clean
  URL), as the cookie afterwards, or as the ``X-Shiftlab-Token`` header; anything else gets a bare 401;
- state-changing requests need the header, not just the cookie, so a foreign page cannot post decisions
  through the reviewer's browser (CSRF): it can neither read the token nor set the header cross-origin;
- images are served by (registered dataset, manifest id) only, never by a client-supplied path, and a
  manifest path that resolves outside its dataset root (``..``, a symlink out) is refused;
- pages render data as text (Jinja2 autoescaping server-side, ``textContent`` in the scripts);
- request bodies (``MAX_BODY``) and every stored field (``log.LIMITS``) have limits, and malformed input of
  any kind is a 400 (or 404) with one line, never a 500.

Writes go through one committer thread that stores the decisions waiting at that moment in one SQLite
transaction (group commit): each acknowledged decision is on disk, and many clients at once cost one
flush per batch rather than one per decision.
"""

from __future__ import annotations

import asyncio
import base64
import json
import queue
import secrets
import threading
from concurrent.futures import Future
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from shiftlab.errors import InputError, ShiftlabError
from shiftlab.fsutil import atomic_write_json
from shiftlab.review import tasks as tk
from shiftlab.review.gate import MAX_BODY, TOKEN_HEADER, BodyLimit, TokenGate, cookie_name  # noqa: F401 (API)
from shiftlab.review.images import THUMB_SIZES, ImageServer
from shiftlab.review.log import LIMITS, MAX_EVENT_ID, ReviewLog, check_crop, check_text, fold
from shiftlab.workspace import Workspace

HERE = Path(__file__).resolve().parent


def _text(field: str):
    return Field(None, max_length=LIMITS[field])


class DecisionIn(BaseModel):
    """The body of ``POST /api/tasks/{name}/decisions``: one decision on ``target``, with optional reason, crop box
    (x0, y0, x1, y1 in the original image's px), note, reviewer and idempotency ``key``.
    """

    target: str = Field(max_length=LIMITS["target"])
    decision: str = Field(max_length=LIMITS["decision"])
    reason: str | None = _text("reason")
    crop: list[float] | None = Field(None, max_length=4)
    note: str | None = _text("note")
    reviewer: str | None = _text("reviewer")
    key: str | None = _text("key")


class UndoIn(BaseModel):
    """The body of ``POST /api/tasks/{name}/undo``: the event to undo (default: the reviewer's latest decision in
    force), the reviewer and an idempotency ``key``.
    """

    reviewer: str | None = _text("reviewer")
    event_id: int | None = Field(None, ge=1, le=MAX_EVENT_ID)  # SQLite's integers are 64-bit
    key: str | None = _text("key")


class PositionIn(BaseModel):
    """The body of ``PUT /api/tasks/{name}/position``: where this reviewer is in the task's queue."""

    reviewer: str | None = _text("reviewer")
    position: str = Field(max_length=LIMITS["target"] + 16)


class Positions:
    """Each reviewer's place in each task (``<workspace>/review/positions.json``), kept on the server so that a
    reviewer resumes where they left off from any browser, and two reviewers on one browser do not share it."""

    def __init__(self, path: Path):
        self.path, self._lock = Path(path), threading.Lock()
        self._data: dict | None = None

    def _load(self) -> dict:
        if self._data is None:
            try:
                d = json.loads(self.path.read_text(encoding="utf-8")) if self.path.is_file() else {}
            except (OSError, ValueError):
                d = {}  # a damaged file loses only positions, never a decision
            self._data = d if isinstance(d, dict) else {}
        return self._data

    def get(self, task: str, reviewer: str) -> str | None:
        with self._lock:
            v = self._load().get(task, {})
            return v.get(reviewer) if isinstance(v, dict) else None

    def set(self, task: str, reviewer: str, position: str) -> None:
        with self._lock:
            d = self._load()
            if not isinstance(d.get(task), dict):
                d[task] = {}
            d[task][reviewer] = position
            atomic_write_json(self.path, d)


class Committer:
    """One writer thread: takes the decisions waiting, stores them in one transaction, answers each."""

    def __init__(self, log: ReviewLog, max_batch: int = 512):
        self.log, self.max_batch = log, max_batch
        self._q: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="review-log-writer", daemon=True)
        self._thread.start()

    def submit(self, decision: dict) -> Future:
        """Queue a decision; the future resolves to its stored Event once it is on disk."""
        f: Future = Future()
        self._q.put((decision, f))
        return f

    def _run(self):
        while True:
            first = self._q.get()
            if first is None:
                return
            batch: list = []
            self._take(first, batch)
            while len(batch) < self.max_batch:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._q.put(None)
                    break
                self._take(nxt, batch)
            try:
                self._store(batch)
            except BaseException as e:  # the writer must outlive anything one batch does
                for _, f in batch:
                    if not f.done():
                        f.set_exception(e)

    @staticmethod
    def _take(item, batch: list) -> None:
        # a request cancelled while waiting (client gone, server shutting down) is not stored: nobody
        # would be told, and a retry with the same key stores it once; a running future cannot be cancelled
        if item[1].set_running_or_notify_cancel():
            batch.append(item)

    def _store(self, batch: list) -> None:
        if not batch:
            return
        try:
            events = self.log.append_many([d for d, _ in batch])
        except Exception:
            events = None
        if events is not None:
            for (_, f), e in zip(batch, events):
                f.set_result(e)
            return
        # one bad decision must not fail its neighbours: store them one by one
        for d, f in batch:
            try:
                e = self.log.append_many([d])[0]
            except Exception as exc:  # handed back to the waiting request
                f.set_exception(exc)
            else:
                f.set_result(e)

    def close(self):
        """Stop the writer thread after the decisions already queued (waits at most 10 s)."""
        self._q.put(None)
        self._thread.join(timeout=10)


def check_crop_inside(box: tuple[int, int, int, int], size: tuple[int, int] | None) -> None:
    """A crop box must lie inside the image it was drawn on (its own pixels, as shown upright)."""
    if size is None:
        raise InputError("a crop box needs an image that can be read")
    w, h = size
    if box[2] > w or box[3] > h:
        raise InputError(f"crop box {list(box)} reaches outside the {w}×{h} image")


def create_app(workspace=None, *, token: str | None = None, reviewer: str | None = None) -> FastAPI:
    """The app over ``workspace``'s tasks and log. ``token`` defaults to a fresh random one
    (``app.state.token``); ``reviewer`` fixes who decides (else each browser names itself)."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace.resolve(workspace)
    token = token or secrets.token_urlsafe(24)
    log = tk.open_workspace_log(ws)
    committer = Committer(log)
    images = ImageServer(ws)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    task_cache: dict[str, tuple[tuple, dict, set]] = {}
    tasks_dir = tk.review_dir(ws) / "tasks"  # made once here, not on every request

    @asynccontextmanager
    async def lifespan(_app):
        yield
        committer.close()  # stores what is queued before the log closes
        log.close()

    app = FastAPI(title="shiftlab review", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.token, app.state.log, app.state.workspace = token, log, ws
    app.state.committer = committer

    app.add_middleware(BodyLimit)
    app.add_middleware(TokenGate, token=token)  # added last = runs first: no body is read before the token

    @app.exception_handler(ShiftlabError)
    async def _one_line(_request: Request, exc: ShiftlabError):
        # a broken task file, a dataset gone from the registry: one line for the page, never a 500
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_request: Request, exc: RequestValidationError):
        # a body or query of the wrong shape: one line (the first problem), 400 like every other bad input
        errs = exc.errors()
        first = errs[0] if errs else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body") or "request"
        return JSONResponse({"detail": f"{where}: {first.get('msg', 'malformed request')}"[:300]}, status_code=400)

    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    # --- tasks -------------------------------------------------------------------------------------
    def task_of(name: str) -> tuple[dict, set]:
        """The task and its valid targets, re-read when its file changes."""
        try:
            st = tk.task_path(name, tasks_dir).stat()
            # the inode changes on every (atomic) rewrite; an mtime alone can repeat within a clock tick
            mtime = (st.st_ino, st.st_size, st.st_mtime_ns)
        except (OSError, ShiftlabError):
            raise HTTPException(404, f"no review task {name!r}") from None
        hit = task_cache.get(name)
        if hit is None or hit[0] != mtime:
            task = tk.load_task(name, ws)  # checked: a broken file is one InputError line → 400
            for ds in sorted(tk.task_datasets(task)):
                tk.image_dataset(ds, ws)  # a dataset gone from the registry: 400 naming it
            if task["kind"] == "classes":
                targets = set(tk.image_dataset(task["dataset"], ws).ids)
            elif task["kind"] == "images":
                targets = {it["id"] for it in task["items"]}
            else:
                targets = {it["target"] for it in task["items"]}
            hit = (mtime, task, targets)
            task_cache[name] = hit
        return hit[1], hit[2]

    def who(given: str | None) -> str:
        name = reviewer or (given or "").strip()
        if not name:
            raise HTTPException(400, "who is deciding? set a reviewer name (the page asks on first visit)")
        try:
            check_text("reviewer", name)
        except ShiftlabError as e:
            raise HTTPException(400, f"reviewer name: {e}") from None
        return name

    def page(request: Request, template: str, **ctx):
        return templates.TemplateResponse(request, template, {"token": token, "reviewer": reviewer or "",
                                                              "thumbs": THUMB_SIZES, **ctx})

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request):
        rows = []
        for name, t, problem in tk.scan_tasks(ws):
            if problem is None:
                try:
                    t, targets = task_of(name)
                except HTTPException as e:
                    problem = str(e.detail)
                except ShiftlabError as e:
                    problem = str(e)
            if problem is not None:  # listed with its reason: a broken file is seen, and takes nothing down
                rows.append({"name": name, "kind": (t or {}).get("kind", "?"), "problem": problem})
                continue
            decided = len(set(log.state(name)) & targets)
            rows.append({"name": name, "kind": t["kind"], "total": len(targets), "decided": decided})
        return page(request, "index.html", tasks=rows, log=str(log.path))

    @app.get("/task/{name}", response_class=HTMLResponse)
    def task_page(request: Request, name: str):
        task, targets = task_of(name)
        thresholds = None
        if task["kind"] == "duplicates":  # the thresholds that queued the pairs, for the page's legend
            from shiftlab.curate.sample import read_queue_thresholds
            try:
                thresholds = read_queue_thresholds(task["dedup_dir"])
            except ShiftlabError:
                thresholds = None  # an unreadable file only loses the numbers of the legend
        return page(request, f"{task['kind']}.html", task=task, n=len(targets), thresholds=thresholds,
                    title=task.get("config", {}).get("title") if task["kind"] == "images" else None)

    @app.get("/favicon.ico")
    def favicon():
        return Response(status_code=204)

    @app.get("/api/tasks")
    def api_tasks():
        return [{"name": t["name"], "kind": t["kind"]} for t in tk.list_tasks(ws)]

    @app.get("/api/tasks/{name}/items")
    def api_items(name: str):
        task, _ = task_of(name)
        if task["kind"] == "classes":
            return tk.classes_items(task, ws)
        out = {k: v for k, v in task.items() if k not in ("batch", "dedup_dir")}
        if task["kind"] == "labelling":
            # annotators see opaque positions, never ids or roles (controls must look like candidates)
            out["items"] = [{"target": it["target"], "class_name": it["class_name"], "gloss": it["gloss"],
                             "n": len(it["images"])} for it in task["items"]]
        return out

    @app.get("/api/tasks/{name}/thumbs")
    async def api_thumbs(name: str, label: int, size: int = THUMB_SIZES["grid"]):
        """A class's grid thumbnails in one answer, as data URLs: a grid of a few hundred images then costs one
        request instead of hundreds (a browser fetches at most six at a time from one host)."""
        task, _ = task_of(name)
        if task["kind"] != "classes" or not 16 <= size <= 512:
            raise HTTPException(404, "thumbnails by class are for class-browser tasks, 16 to 512 px")

        def collect():
            m = tk.image_dataset(task["dataset"], ws)
            ids = m.ids[m.labels == label]
            out = {}
            for i in ids:
                found = images.image(task["dataset"], i, size)
                if found is not None:
                    out[i] = f"data:{found[1]};base64," + base64.b64encode(found[0]).decode()
            return out

        return await run_in_threadpool(collect)

    @app.get("/api/tasks/{name}/state")
    def api_state(name: str, reviewer: str | None = None):
        task, _ = task_of(name)
        if task["kind"] == "labelling":
            # each annotator's votes are their own: a page never opens with someone else's answers
            if not reviewer:
                return {}
            mine = [e for e in log.events(name) if e.reviewer == reviewer or e.decision == "undo"]
            return {t: e.to_json() for t, e in fold(mine).items() if e.reviewer == reviewer}
        return {t: e.to_json() for t, e in log.state(name).items()}

    @app.post("/api/tasks/{name}/decisions")
    async def api_decide(name: str, d: DecisionIn):
        task, targets = task_of(name)
        if d.target not in targets:
            raise HTTPException(404, f"{d.target!r} is not an item of task {name!r}")
        try:
            tk.check_decision(task, d.decision, d.reason, d.crop)
            if task["kind"] == "labelling":
                tk.check_submission(task, d.target, d.note)
            if d.crop is not None:
                check_crop_inside(check_crop(d.crop), images.size(task["dataset"], d.target))
            pending = committer.submit(dict(reviewer=who(d.reviewer), task=name, target=d.target,
                                            decision=d.decision, reason=d.reason, crop=d.crop, note=d.note, key=d.key))
            e = await asyncio.wrap_future(pending)
        except ShiftlabError as e:
            raise HTTPException(400, str(e)) from None
        return e.to_json()

    positions = app.state.positions = Positions(tk.log_path(ws).parent / "positions.json")

    @app.get("/api/tasks/{name}/position")
    def api_position(name: str, given: str | None = Query(None, alias="reviewer", max_length=LIMITS["reviewer"])):
        task_of(name)
        by = reviewer or (given or "").strip()
        return {"reviewer": by, "position": positions.get(name, by) if by else None}

    @app.put("/api/tasks/{name}/position")
    def api_set_position(name: str, p: PositionIn):
        task_of(name)
        by = who(p.reviewer)
        positions.set(name, by, p.position)
        return {"reviewer": by, "position": p.position}

    @app.post("/api/tasks/{name}/undo")
    def api_undo(name: str, u: UndoIn):
        task_of(name)
        by = who(u.reviewer)
        try:
            if u.event_id is not None:
                e = log.event(u.event_id)
                if e.task != name:
                    raise HTTPException(404, f"event {u.event_id} is not in task {name!r}")
                ev = log.undo(u.event_id, reviewer=by, key=u.key)
            else:
                ev = log.undo_last(name, by, key=u.key)
        except ShiftlabError as e:
            raise HTTPException(400, str(e)) from None
        if ev is None:
            return JSONResponse({"undone": None})
        return {"undone": ev.supersedes, "target": ev.target, "event": ev.to_json()}

    # --- images ------------------------------------------------------------------------------------
    def send(found: tuple[bytes, str] | None) -> Response:
        if found is None:
            raise HTTPException(404, "no such image")
        return Response(found[0], media_type=found[1], headers={"Cache-Control": "private, max-age=3600"})

    async def fetch(dataset: str, image_id: str, size: int | None):
        # a memory hit is answered on the event loop; decoding or a disk read goes to a worker thread
        hit = images.in_memory(dataset, image_id, size)
        return send(hit if hit is not None else await run_in_threadpool(images.image, dataset, image_id, size))

    @app.get("/img/{dataset}/{image_id:path}")
    async def image(dataset: str, image_id: str, size: int | None = None):
        if size is not None and not 16 <= size <= 2048:
            raise HTTPException(400, "size: 16 to 2048 px")
        return await fetch(dataset, image_id, size)

    @app.get("/hitimg/{name}/{hit}/{pos}")
    async def hit_image(name: str, hit: str, pos: int, size: int | None = None):
        if size is not None and not 16 <= size <= 2048:
            raise HTTPException(400, "size: 16 to 2048 px")
        task, _ = task_of(name)
        it = next((i for i in task.get("items", []) if i.get("target") == hit), None)
        if task["kind"] != "labelling" or it is None or not 0 <= pos < len(it["images"]):
            raise HTTPException(404, "no such image")
        im = it["images"][pos]
        return await fetch(im["dataset"], im["id"], size)

    return app


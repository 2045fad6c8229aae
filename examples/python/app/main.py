"""The HTTP app: hello, a health check, notes in the database, and a slow route to try the drain.
Errors are JSON {"error": "..."}, as in the Node example."""
import asyncio
import json
import os
import secrets
import time
from datetime import datetime, timezone

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import text
from sqlalchemy.exc import OperationalError, ProgrammingError
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import db
from .settings import load

MAX_BODY = 64 * 1024
settings = load()
engine = db.make_engine(settings)
started = time.monotonic()
# Unique per process, also across containers (where every app is pid 1) sharing one data folder.
INSTANCE = f"{os.getpid()}-{secrets.token_hex(6)}"

app = FastAPI(title="hello-py", version=settings.version, docs_url=None, redoc_url=None, openapi_url=None)


class NoSchema(Exception):
    """The tables are not there: the migrations have not run."""


@app.exception_handler(StarletteHTTPException)
async def _http_error(_request, exc):
    return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)


@app.exception_handler(NoSchema)
async def _no_schema(_request, _exc):
    return JSONResponse({"error": "the database has no schema yet: run the migrations (alembic upgrade head)"}, status_code=503)


def _check(fn):
    try:
        fn()
        return {"ok": True}
    except Exception as error:  # a failed check is reported, not raised
        return {"ok": False, "error": str(error).splitlines()[0] if str(error) else type(error).__name__}


def _query(sql, **params):
    try:
        with engine.begin() as conn:
            return conn.execute(text(sql), params).mappings().all()
    except (OperationalError, ProgrammingError) as error:
        if "no such table" in str(error) or "does not exist" in str(error):
            raise NoSchema() from error
        raise


@app.get("/", response_class=PlainTextResponse)
def hello():
    return f"hello {settings.version} ({settings.environment})\n"


@app.get("/api/health")
def health(request: Request):
    def data_dir():
        # A name per request: checks run in worker threads, side by side within one process too.
        probe = settings.data_dir / f".health-{INSTANCE}-{secrets.token_hex(4)}"
        probe.write_text("ok")
        probe.unlink()

    revision = {}

    def database():
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            revision["at"] = db.schema_revision(conn)

    checks = {"database": _check(database)}
    if settings.is_sqlite:
        checks = {"dataDir": _check(data_dir), **checks}
    if settings.health_fail:
        checks["forced"] = {"ok": False, "error": "HEALTH_FAIL is set"}
    if settings.health_fail_proxied and request.headers.get("x-forwarded-for"):
        checks["forced"] = {"ok": False, "error": "HEALTH_FAIL_PROXIED is set"}
    ok = all(c["ok"] for c in checks.values())
    body = {
        "status": "ok" if ok else "fail",
        "timestamp": datetime.now(timezone.utc).isoformat(),
        "uptime": round(time.monotonic() - started, 3),
        "environment": settings.environment,
        "version": settings.version,
        # Reported, not checked: a new release starts before its migration runs (DEPLOY_MIGRATE runs
        # once it is healthy), and an old one may run on a newer schema after a rollback.
        "schema": revision.get("at"),
        "checks": checks,
    }
    return JSONResponse(body, status_code=200 if ok else 503)


@app.get("/api/notes")
def list_notes():
    return [dict(r) for r in _query("SELECT id, body, created_at FROM notes ORDER BY id DESC LIMIT 100")]


@app.get("/api/notes/count")
def count_notes():
    return {"count": _query("SELECT count(*) AS count FROM notes")[0]["count"]}


@app.post("/api/notes", status_code=201)
async def add_note(request: Request):
    if int(request.headers.get("content-length") or 0) > MAX_BODY:
        return JSONResponse({"error": "request body over 64 KiB"}, status_code=413)
    raw = await request.body()
    if len(raw) > MAX_BODY:
        return JSONResponse({"error": "request body over 64 KiB"}, status_code=413)
    try:
        data = json.loads(raw or b"null")
    except ValueError:
        return JSONResponse({"error": "body is not JSON"}, status_code=400)
    body = data.get("body") if isinstance(data, dict) else None
    if not isinstance(body, str) or not 1 <= len(body) <= 10_000:
        return JSONResponse({"error": "body must be a string of 1 to 10000 characters"}, status_code=400)
    now = datetime.now(timezone.utc).isoformat()
    # The insert runs in a worker thread: a database call must not block the event loop.
    rows = await asyncio.to_thread(
        lambda: _query("INSERT INTO notes (body, created_at) VALUES (:body, :now) RETURNING id, body, created_at", body=body, now=now)
    )
    return JSONResponse(dict(rows[0]), status_code=201)


@app.get("/slow", response_class=PlainTextResponse)
async def slow():
    await asyncio.sleep(settings.slow_ms / 1000)
    return "slow done\n"

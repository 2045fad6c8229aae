"""`python -m app`: serves the app with uvicorn on HOST:PORT. uvicorn drains on SIGTERM: it stops
accepting connections, closes idle keep-alive ones, lets in-flight requests finish, then exits 0."""
import os
import sys

from .settings import ROOT, SettingsError, load


def migrate(settings):
    """Alembic's upgrade to head, unless the database is at a revision this release does not know:
    a newer release migrated it and this one is a rollback, which runs on the newer schema as is."""
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from .db import make_engine, schema_revision

    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["configure_logger"] = False
    try:
        with make_engine(settings).connect() as conn:
            at = schema_revision(conn)
        known = {s.revision for s in ScriptDirectory.from_config(config).walk_revisions()}
        if at is not None and at not in known:
            print(f"the database is at revision {at}, newer than this release's migrations: left as it is", flush=True)
            return
        command.upgrade(config, "head")
    except Exception as error:
        print(f"migration failed: {error}", file=sys.stderr)
        sys.exit(1)
    print(f"migrations: at {ScriptDirectory.from_config(config).get_current_head()}", flush=True)


def main():
    try:
        settings = load()
    except SettingsError as error:
        print(error, file=sys.stderr)
        sys.exit(1)
    if os.environ.get("MIGRATE_ON_START") == "1":
        # For a runtime with no migration step of its own (DEPLOY_MIGRATE is the one to prefer: it
        # runs once per deploy, not once per start). Idempotent: at head already, Alembic does nothing.
        migrate(settings)
    import uvicorn

    try:
        from .main import app
    except Exception as error:  # e.g. an unusable DATA_DIR
        print(f"cannot start: {error}", file=sys.stderr)
        sys.exit(1)
    print(f"listening on http://{settings.host}:{settings.port} (version {settings.version}, env {settings.environment})", flush=True)
    # One process per slot; skiff runs two slots side by side during a deploy. Access logs off:
    # the slot's log file is for starts, stops and errors.
    uvicorn.run(app, host=settings.host, port=settings.port, access_log=False, log_level="info", proxy_headers=False)


main()

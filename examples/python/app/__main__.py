"""`python -m app`: serves the app with uvicorn on HOST:PORT. uvicorn drains on SIGTERM: it stops
accepting connections, closes idle keep-alive ones, lets in-flight requests finish, then exits 0."""
import os
import sys

from .settings import ROOT, SettingsError, load


def main():
    try:
        settings = load()
    except SettingsError as error:
        print(error, file=sys.stderr)
        sys.exit(1)
    if os.environ.get("MIGRATE_ON_START") == "1":
        # For a runtime with no migration step of its own (DEPLOY_MIGRATE is the one to prefer: it
        # runs once per deploy, not once per start). Idempotent: at head already, Alembic does nothing.
        from alembic import command
        from alembic.config import Config

        try:
            config = Config(str(ROOT / "alembic.ini"))
            config.attributes["configure_logger"] = False
            command.upgrade(config, "head")
        except Exception as error:
            print(f"migration failed: {error}", file=sys.stderr)
            sys.exit(1)
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

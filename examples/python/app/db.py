"""The database: one SQLAlchemy engine for SQLite (WAL mode, so readers and an online backup run
beside the writer) or PostgreSQL. The schema is Alembic's (migrations/), never created here."""
from sqlalchemy import create_engine, event, text


def make_engine(settings):
    """An engine for the settings' DATABASE_URL; SQLite's folder is made when missing."""
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(settings.database_url, future=True, connect_args={"check_same_thread": False, "timeout": 5})

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record):
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.close()

        return engine
    return create_engine(settings.database_url, future=True, pool_pre_ping=True, pool_size=5)


def schema_revision(conn):
    """The Alembic revision the database is at, None before the first migration."""
    try:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception:  # no alembic_version table yet
        conn.rollback()
        return None

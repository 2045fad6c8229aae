"""Alembic's runner: migrates the database the app uses, read from the same settings."""
from logging.config import fileConfig

from alembic import context

from app.db import make_engine
from app.settings import load

# `python -m app` runs the migrations in its own process and keeps its own logging.
if context.config.config_file_name is not None and context.config.attributes.get("configure_logger", True):
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)

engine = make_engine(load())
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()

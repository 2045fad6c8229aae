"""Settings from the environment, the way skiff passes them: PORT is the slot's port, DATA_DIR the
release's shared data folder (shared/data on the host, /data in a container), APP_VERSION and
APP_ENV what skiff deployed. A bad value stops the app at start with one line (see __main__.py)."""
import os
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class SettingsError(Exception):
    """A setting that cannot be used; its message names the variable and what it must be."""


def _whole_number(env, name, default, low, high, what):
    raw = env.get(name, str(default))
    if not re.fullmatch(r"\d+", raw) or not low <= int(raw) <= high:
        raise SettingsError(f"{name} must be {what}, not {raw!r}")
    return int(raw)


def _project_version():
    # The version in pyproject.toml, for a run outside skiff (skiff sets APP_VERSION).
    try:
        text = (ROOT / "pyproject.toml").read_text()
    except OSError:
        return "0.0.0"
    m = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
    return m.group(1) if m else "0.0.0"


@dataclass(frozen=True)
class Settings:
    port: int
    host: str
    data_dir: Path
    database_url: str
    version: str
    environment: str
    slow_ms: int
    health_fail: bool
    health_fail_proxied: bool

    @property
    def is_sqlite(self):
        return self.database_url.startswith("sqlite")


def load(env=None):
    """Reads the settings from `env` (the process environment by default)."""
    env = os.environ if env is None else env
    data_dir = Path(env.get("DATA_DIR") or "./data")
    database_url = env.get("DATABASE_URL") or f"sqlite:///{(data_dir / 'app.db').resolve()}"
    if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", database_url):
        # The URL is not echoed: it may hold a password.
        raise SettingsError("DATABASE_URL must start with sqlite:// or postgresql://")
    return Settings(
        port=_whole_number(env, "PORT", 8000, 1, 65535, "a number from 1 to 65535"),
        host=env.get("HOST") or "127.0.0.1",
        data_dir=data_dir,
        database_url=database_url,
        version=env.get("APP_VERSION") or _project_version(),
        environment=env.get("APP_ENV") or "development",
        slow_ms=_whole_number(env, "SLOW_MS", 1000, 0, 2**31 - 1, "a whole number of milliseconds"),
        health_fail=env.get("HEALTH_FAIL") == "1",
        health_fail_proxied=env.get("HEALTH_FAIL_PROXIED") == "1",
    )

"""hello-py: the Python example skiff deploys (FastAPI on uvicorn, notes in SQLite or PostgreSQL)."""

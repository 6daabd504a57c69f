"""HTTP API (FastAPI) and the web search page."""

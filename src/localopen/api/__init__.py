"""The HTTP face: the local server's APIs over app/serving (Starlette and uvicorn only here)."""

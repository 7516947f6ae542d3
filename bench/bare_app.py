"""The baseline: Flask's "hello world", served by the same gunicorn settings as the platform."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello() -> str:
    return "Hello, World!"

"""triggers: placeholder until the controller lands."""

from flask import Flask


def register(app: Flask) -> None:
    return None

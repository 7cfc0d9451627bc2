"""CLI verbs of this area (placeholder: the owning area fills this in)."""

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to the top-level `medlt` app."""

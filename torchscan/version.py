"""The package version (one place; ``pyproject.toml`` repeats it and a test compares them)."""

__version__ = "0.1.0"

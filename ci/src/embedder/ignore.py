"""The source directory's Ignore list: the same patterns as the repository's .dockerignore.

Kept free of dagger imports so that tests/test_dockerignore.py can load it on its own.
"""

SOURCE_IGNORE = [
    ".git",
    ".venv",
    ".env",
    ".cache",
    ".pytest_cache",
    ".ruff_cache",
    "**/__pycache__",
    "**/*.pyc",
    "ci/sdk",
    "ci/.venv",
    ".ci",
    ".dagger",
    "*.tar",
]

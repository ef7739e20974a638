"""The Dagger module's source Ignore list must equal .dockerignore's patterns."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_source_ignore_list_equals_dockerignore():
    spec = importlib.util.spec_from_file_location("ignore", ROOT / "ci/src/embedder/ignore.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    assert module.SOURCE_IGNORE == patterns

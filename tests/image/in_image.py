"""Run inside the built image by `image-checks` (``python /check/in_image.py``, its own interpreter and
environment; the image has no shell): the web stack imports, and the model, on the image's default engine and
precision, embeds the start check's texts and meets the contract against sentence-transformers. Prints one JSON
line; exits non-zero otherwise."""

import json
import logging
import sys

import app.main  # noqa: F401 - the service's whole import graph, as `python -m app` loads it
from app import startcheck
from app.config import Settings
from app.model import EmbeddingModel


def main() -> int:
    settings = Settings()
    model = EmbeddingModel(settings)
    model.load()
    model.warm_up()
    figure = startcheck.run(model, settings.precision, logging.getLogger("in-image"))
    engine = model.engine.describe()
    vector = model.embed(["one embedding inside the image"])[0]
    print(json.dumps({"engine": engine["engine"], "precision": figure["precision"], "dimensions": len(vector),
                      "min_cosine": figure["min_cosine"], "python": sys.version.split()[0]}))
    return 0 if figure["min_cosine"] >= startcheck.CONTRACT else 1


if __name__ == "__main__":
    raise SystemExit(main())

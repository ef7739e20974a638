"""embedder's Dagger module: build, test and ship the sentence-embedding image."""

from .main import Embedder as Embedder

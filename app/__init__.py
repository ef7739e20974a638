"""embedder: sentence embeddings (all-MiniLM-L6-v2) on ONNX Runtime.

Kept import-light on purpose: `app.export` (the model stage, with torch) and the service share this package.
"""

"""embedder: sentence embeddings on ONNX Runtime, from an exported model directory (app.embedding_meta).

Kept import-light on purpose: `app.export` (the model stage, with torch) and the service share this package.
"""

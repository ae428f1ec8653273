"""Models: one registry for every model and split part, its lifecycle, ONNX runtime sessions and drift."""

"""A minimal onnxruntime runtime for MLServer: what a user writes to serve an ONNX model with it.

Loaded by MLServer (its own venv, .tools/mlserver) from the model folder's model-settings.json,
for benchmarks/serve_vs_mlserver.py. One ORT thread per worker, as domicile's function uses.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OnnxRuntime(MLModel):  # type: ignore[misc]  # MLModel is Any here: MLServer is not in this venv
    async def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self._session = ort.InferenceSession(
            await get_model_uri(self._settings), options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self._outputs = [o.name for o in self._session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        features = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32)
        results = self._session.run(self._outputs, {self._input: features})
        pairs = zip(self._outputs, results, strict=True)
        outputs = [NumpyCodec.encode_output(name, np.asarray(r)) for name, r in pairs]
        return InferenceResponse(model_name=self.name, model_version=self.version, outputs=outputs)

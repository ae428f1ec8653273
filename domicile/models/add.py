"""Register a user's own ONNX classifier: read its graph, check it on validation data, record what serving needs.

`domicile models add FILE.onnx --name NAME --version VERSION --role edge|cloud --validation DATA.npz`
reads the model's one input (name, shape with a dynamic batch axis first, dtype) and its outputs:
a label output with a probabilities output (as skl2onnx writes them), or one `[N, C]` scores
output whose argmax is the label (softmax applied when the scores are not probabilities). It runs
the model in onnxruntime on the validation cases and records the accuracy, the drift baseline and,
for an edge model, the escalation threshold. Then it registers the file, and the validation data
(for `simulate` and `split partition`), under names of its own. Anything wrong is refused, naming
the field, before anything is written.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from domicile.errors import InputError
from domicile.models.build import CONFIDENT_ACCURACY_TARGET, choose_threshold
from domicile.models.drift import InputBaseline
from domicile.models.lifecycle import check_registrable, register
from domicile.models.registry import DataFile, ModelEntry, ModelMetrics, SplitSpec, TensorSpec
from domicile.models.runtime import Predictions, verified_model_bytes
from domicile.models.scores import are_probabilities
from domicile.models.validation import input_batch

# onnxruntime's type strings for the input dtypes a registered model may take.
ORT_DTYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int32)": "int32", "tensor(int64)": "int64",
}  # fmt: skip
_LABEL_TYPES = ("tensor(int64)", "tensor(int32)", "tensor(string)")
_SCORE_TYPES = ("tensor(float)", "tensor(double)", "tensor(float16)")
_SCORES_RANK = 2  # [N, C]
BASELINE_STATISTIC = "mean input value"
NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")  # the topology's names (a model is named in it)
VERSION = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+$")


@dataclass(frozen=True)
class AddRequest:
    """What `domicile models add` was asked; `labels` default to "0".."C-1", `jurisdictions` to all."""

    file: Path
    name: str
    version: str
    role: str  # edge | cloud | split
    validation: Path
    jurisdictions: tuple[str, ...]
    labels: tuple[str, ...] | None = None
    confident_accuracy: float = CONFIDENT_ACCURACY_TARGET
    description: str = ""


@dataclass(frozen=True)
class Outputs:
    scores: str  # the [N, C] output: probabilities, or logits
    label: str | None  # the label output, if the model has one
    width: int | None  # C, when the graph states it


@dataclass(frozen=True)
class Validation:
    blob: bytes
    x: np.ndarray
    y: np.ndarray


def _session(blob: bytes, path: Path) -> Any:
    import onnxruntime as ort

    try:
        return ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own types (InvalidProtobuf, Fail, ...) for what it cannot load
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError("FILE", f"{path.name} is not an ONNX model onnxruntime can load: {reason}") from exc


def input_spec(session: Any) -> TensorSpec:
    """The model's one input: a dynamic batch axis first, fixed sizes after it, a dtype we serve."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        names = ", ".join(repr(i.name) for i in inputs)
        raise InputError("inputs", f"the model has {len(inputs)} inputs ({names}); domicile serves models with one")
    tensor = inputs[0]
    key = f"inputs.{tensor.name}"
    if tensor.type not in ORT_DTYPES:
        raise InputError(f"{key}.dtype", f"{tensor.type} is not one of {', '.join(ORT_DTYPES)}")
    shape = list(tensor.shape)
    if not shape or isinstance(shape[0], int):
        first = "it has no axes" if not shape else f"its first axis is fixed at {shape[0]}"
        raise InputError(f"{key}.shape", f"has no batch axis ({first}); export it with a dynamic first axis")
    if len(shape) < _SCORES_RANK:
        raise InputError(f"{key}.shape", "has only a batch axis; a case needs at least one axis of its own")
    for axis, size in enumerate(shape[1:], start=1):
        if not isinstance(size, int) or size <= 0:
            raise InputError(f"{key}.shape", f"axis {axis} is dynamic ({size!r}); every case needs the same shape")
    return TensorSpec(name=tensor.name, shape=(-1, *shape[1:]), dtype=ORT_DTYPES[tensor.type])


def outputs_of(session: Any) -> Outputs:
    """A label output and an [N, C] probabilities output, or one [N, C] scores output; nothing else."""
    outputs = session.get_outputs()
    for out in outputs:
        if out.type.startswith(("seq(", "map(")):
            raise InputError(f"outputs.{out.name}", f"is a ZipMap ({out.type}); convert the model without it "
                             "(skl2onnx: options={id(model): {'zipmap': False}})")  # fmt: skip
    scores = [o for o in outputs if o.type in _SCORE_TYPES and len(o.shape) == _SCORES_RANK]
    labels = [o for o in outputs if o.type in _LABEL_TYPES and len(o.shape) == 1]
    if len(scores) == 1 and len(outputs) == 1:
        label = None
    elif len(scores) == 1 and len(labels) == 1 and len(outputs) == _SCORES_RANK:
        label = labels[0].name
    else:
        found = "; ".join(f"{o.name} {o.type} {list(o.shape)}" for o in outputs)
        raise InputError("outputs", "need a label output and an [N, C] probabilities output, or one [N, C] scores "
                         f"output; the model has {found}")  # fmt: skip
    width = scores[0].shape[1]
    return Outputs(scores[0].name, label, width if isinstance(width, int) else None)


def load_validation(path: Path, expected_sha256: str | None = None) -> Validation:
    """Arrays `x` and `y` of an .npz; with `expected_sha256` (a registered file), only if the bytes match."""
    try:
        blob = verified_model_bytes(path, expected_sha256) if expected_sha256 else path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError("--validation", f"{path} does not exist") from exc
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as data:
            missing = [key for key in ("x", "y") if key not in data.files]
            if missing:
                has = ", ".join(data.files) or "nothing"
                raise InputError(
                    f"--validation {missing[0]}", f"{path.name} has no array {missing[0]!r} (it has {has})"
                )
            return Validation(blob, np.asarray(data["x"]), np.asarray(data["y"]))
    except (ValueError, OSError) as exc:  # not an npz, or an object array that needs pickle
        raise InputError("--validation", f"{path.name} is not a NumPy .npz of arrays x and y ({exc})") from exc


def registered_validation(entry: ModelEntry, model_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The validation cases (as the model's input) and class indexes the registry keeps for `entry`, if any.

    The file is hash-checked against the entry; `split partition`, `split plan` and `simulate` read it.
    """
    ref = entry.validation_data
    if ref is None:
        return None
    data = load_validation(model_dir / ref.file, ref.sha256)
    x = input_batch(data.x, entry.input, "x")
    return x, label_indexes(data.y, entry.class_labels, len(x))


def label_indexes(y: np.ndarray, labels: tuple[str, ...], cases: int) -> np.ndarray:
    """`y` as class indexes: indexes already, or the labels themselves."""
    if y.ndim != 1 or len(y) != cases:
        raise InputError("--validation y", f"needs one label per case ({cases}), got shape {list(y.shape)}")
    if y.dtype.kind in "iu":
        if y.min() < 0 or y.max() >= len(labels):
            raise InputError("--validation y", f"label indexes must be 0..{len(labels) - 1}, found "
                             f"{int(y.min())}..{int(y.max())}")  # fmt: skip
        return y.astype(np.int64)
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({str(v) for v in y} - set(index))
    if unknown:
        raise InputError("--validation y", f"label {unknown[0]!r} is not one of the labels ({', '.join(labels)})")
    return np.asarray([index[str(v)] for v in y], dtype=np.int64)


def _run(session: Any, spec: TensorSpec, outputs: Outputs, batch: np.ndarray) -> tuple[Any, Any]:
    names = [outputs.scores, *([outputs.label] if outputs.label else [])]
    try:
        result = session.run(names, {spec.name: batch})
    except Exception as exc:  # the graph fails on its own declared input: say so, as the file's fault
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError("FILE", f"onnxruntime failed running the model on the validation cases: {reason}") from exc
    return result[0], (result[1] if outputs.label else None)


def _labels(request: AddRequest, width: int) -> tuple[str, ...]:
    labels = request.labels or tuple(str(i) for i in range(width))
    if len(labels) != width:
        raise InputError("--labels", f"{len(labels)} labels for a model that scores {width} classes")
    if len(set(labels)) != len(labels):
        raise InputError("--labels", "holds the same label twice")
    return labels


def _split_section(role: str, blob: bytes, spec: TensorSpec) -> SplitSpec | None:
    """A split model's candidate cuts (its graph's fixed-shape float tensors); `split partition` cuts it."""
    if role != "split":
        return None
    from domicile.split.graph import split_spec

    return split_spec(blob, spec.name)


def _check_names(request: AddRequest) -> None:
    if not NAME.match(request.name):
        raise InputError("--name", f"{request.name!r} is not 1-31 lower-case letters, digits or '-', a letter first")
    if not VERSION.match(request.version):
        raise InputError("--version", f"{request.version!r} is not a version like 1.0.0")
    if request.role not in ("edge", "cloud", "split"):
        raise InputError("--role", f"{request.role!r} is not edge, cloud or split")
    if not 0 < request.confident_accuracy <= 1:
        raise InputError("--confident-accuracy", f"{request.confident_accuracy} is not in (0, 1]")


def prepare(request: AddRequest) -> tuple[ModelEntry, bytes, bytes]:
    """The registry entry, the model's bytes and the validation data's bytes; nothing written."""
    _check_names(request)
    try:
        blob = request.file.read_bytes()
    except FileNotFoundError as exc:
        raise InputError("FILE", f"{request.file} does not exist") from exc
    session = _session(blob, request.file)
    spec, outputs = input_spec(session), outputs_of(session)
    data = load_validation(request.validation)
    batch = input_batch(data.x, spec, "--validation x")
    scores, label = _run(session, spec, outputs, batch)
    width = np.asarray(scores).reshape(len(batch), -1).shape[1]
    labels = _labels(request, width)
    y = label_indexes(data.y, labels, len(batch))
    kind = "probabilities" if are_probabilities(np.asarray(scores)) else "logits"
    entry = ModelEntry(
        name=request.name, version=request.version, role=request.role, file=f"{request.name}-{request.version}.onnx",
        sha256=hashlib.sha256(blob).hexdigest(), size_bytes=len(blob), input=spec, label_output=outputs.label,
        probabilities_output=outputs.scores, scores=kind, class_labels=labels,
        metrics=ModelMetrics(validation_accuracy=0.0), allowed_jurisdictions=request.jurisdictions,
        description=request.description, split=_split_section(request.role, blob, spec),
        validation_data=DataFile(file=f"{request.name}-{request.version}.validation.npz",
                                 sha256=hashlib.sha256(data.blob).hexdigest(), cases=len(batch)),
    )  # fmt: skip
    predictions = Predictions.from_outputs(entry, scores, label)
    correct = predictions.labels == y
    escalation = None
    if request.role == "edge":
        escalation = choose_threshold(predictions.confidence, correct, request.confident_accuracy)
    statistic = InputBaseline.from_training(batch).model_copy(update={"statistic": BASELINE_STATISTIC})
    finished = entry.model_copy(update={
        "metrics": ModelMetrics(validation_accuracy=round(float(np.mean(correct)), 6)),
        "escalation": escalation, "baseline": statistic,
    })  # fmt: skip
    return ModelEntry.model_validate(finished.model_dump()), blob, data.blob


def add_model(model_dir: Path, request: AddRequest) -> ModelEntry:
    """Check everything, then register the model and its validation data (first version: live)."""
    entry, blob, validation = prepare(request)
    check_registrable(model_dir, entry)
    files = {entry.validation_data.file: validation} if entry.validation_data else {}
    register(model_dir, entry, blob, files)
    return entry

"""Reading ONNX files safely and the facts panoedge needs from them (I/O, size, preprocessing)."""

from __future__ import annotations

from pathlib import Path

from panoedge.errors import DataError

_ELEM = {1: "float32", 10: "float16", 7: "int64", 6: "int32", 2: "uint8", 3: "int8"}


def load_onnx(path: str | Path, check: bool = True):
    """An ``onnx.ModelProto`` from ``path``; a missing, corrupt or non-ONNX file is a ``DataError``."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such ONNX file")
    try:
        proto = onnx.load(str(path))
    except Exception as e:  # protobuf raises DecodeError and friends for non-ONNX bytes
        raise DataError(f"{path}: not an ONNX model ({type(e).__name__}: {e})") from None
    if not proto.graph.node or not proto.graph.input:
        raise DataError(f"{path}: not an ONNX model (no graph inputs or nodes)")
    if check:
        try:
            onnx.checker.check_model(proto)
        except Exception as e:  # onnx.checker.ValidationError and protobuf errors
            raise DataError(f"{path}: fails the ONNX checker: {e}") from None
    return proto


def _value_info(vi) -> dict:
    t = vi.type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    return {"name": vi.name, "shape": shape, "dtype": _ELEM.get(t.elem_type, str(t.elem_type))}


def model_info(proto, path: str | Path = "<model>") -> dict:
    """``{"inputs", "outputs", "hw", "preprocess", "config", "export", "depth_kind"}`` of a panoedge-exported model.

    ``preprocess``/``config`` come from the ``panoedge.*`` metadata the exporter writes; a model
    without them (not exported by panoedge) is a ``DataError``, since its preprocessing is unknown.
    """
    init = {t.name for t in proto.graph.initializer}
    inputs = [_value_info(v) for v in proto.graph.input if v.name not in init]
    outputs = [_value_info(v) for v in proto.graph.output]
    meta = {p.key: p.value for p in proto.metadata_props}
    missing = [k for k in ("panoedge.preprocess", "panoedge.config") if k not in meta]
    if missing:
        raise DataError(f"{path}: no {', '.join(missing)} metadata; export the model with `panoedge export` "
                        "so its preprocessing travels with it")
    if len(inputs) != 1 or len(inputs[0]["shape"]) != 4:
        raise DataError(f"{path}: expected one (B, 3, H, W) input, got {inputs}")
    h, w = inputs[0]["shape"][2:]
    if not h or not w:
        raise DataError(f"{path}: input {inputs[0]['name']} has a dynamic height/width; export with a static size")
    from panoedge.errors import ConfigError
    from panoedge.safe_load import loads_json

    try:
        parsed = {key: loads_json(meta.get(f"panoedge.{key}", "{}"), f"{path}: metadata panoedge.{key}")
                  for key in ("preprocess", "config", "export")}
        default_kind = "metric" if "depth" in parsed["config"].get("heads", ()) else "none"  # exports before depth kinds
        depth_kind = (loads_json(meta["panoedge.depth_kind"], f"{path}: metadata panoedge.depth_kind")
                      if "panoedge.depth_kind" in meta else default_kind)
    except (ConfigError, AttributeError) as e:
        raise DataError(str(e) if isinstance(e, ConfigError) else f"{path}: panoedge.config metadata must be a JSON object") from None
    if not all(isinstance(v, dict) for v in parsed.values()) or not isinstance(depth_kind, str):
        raise DataError(f"{path}: panoedge.* metadata must be JSON objects (depth_kind a string)")
    return {"inputs": inputs, "outputs": outputs, "hw": (int(h), int(w)), **parsed, "depth_kind": depth_kind}


def tensor_names(proto) -> set[str]:
    """Every tensor name in the main graph (inputs, node outputs), for checking calibration caches."""
    names = {v.name for v in proto.graph.input}
    for node in proto.graph.node:
        names.update(o for o in node.output if o)
    return names - {t.name for t in proto.graph.initializer}

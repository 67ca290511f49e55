"""Student networks: the registry, ERP-aware blocks, summaries and ONNX export.

Example::

    from panoedge.models import create_student, export_student_onnx
    model = create_student("pano-small", num_classes=20)   # heads=("seg", "depth")
    out = model(image)        # image (B, 3, H, W), H and W multiples of 32
    out["seg"].shape, out["depth"].shape                    # (B, 20, H, W), (B, 1, H, W) metres
    export_student_onnx(model, "small.onnx", (256, 512))   # input "image", outputs "seg", "depth"

Importing this package registers the built-in students (``pano-nano``, ``pano-small``,
``pano-base``). :func:`export_student_onnx` folds batch-norm and writes ONNX (``onnx`` is
imported only when it is called).
"""

from panoedge.models.checkpoint import load_student, resolve_student_path, save_student
from panoedge.models.export import ALLOWED_ONNX_OPS, export_student_onnx, fold_batchnorm
from panoedge.models.registry import (
    StudentEntry,
    create_student,
    get_student_entry,
    list_students,
    register_student,
)
from panoedge.models.students import HEADS, PanoStudent, StudentConfig
from panoedge.models.summary import count_macs, count_parameters, model_summary, students_table

__all__ = [
    "ALLOWED_ONNX_OPS",
    "HEADS",
    "PanoStudent",
    "StudentConfig",
    "StudentEntry",
    "count_macs",
    "load_student",
    "resolve_student_path",
    "save_student",
    "count_parameters",
    "create_student",
    "export_student_onnx",
    "fold_batchnorm",
    "get_student_entry",
    "list_students",
    "model_summary",
    "register_student",
    "students_table",
]

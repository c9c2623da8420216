"""gpnn.core: the GPNN engine as a library (no server, no environment variables).

>>> from gpnn.core import generate, read_image
>>> samples = generate(read_image("photo.jpg"), samples=4, seed=0)
"""

from gpnn.core.imageio import (
    decode_image,
    decode_mask,
    encode_png,
    read_image,
    read_mask,
    write_image,
)
from gpnn.core.params import (
    PARAMS_BY_TASK,
    AnalogyParams,
    CollageParams,
    CommonParams,
    EditParams,
    GenerateParams,
    InpaintParams,
    RetargetParams,
    SearchMode,
    Task,
    params_for,
)
from gpnn.core.pnn import Progress
from gpnn.core.search import normalized_nn
from gpnn.core.tasks import (
    TASK_INPUTS,
    analogy,
    collage,
    edit,
    generate,
    inpaint,
    retarget,
    run_task,
)

__all__ = [
    "PARAMS_BY_TASK",
    "TASK_INPUTS",
    "AnalogyParams",
    "CollageParams",
    "CommonParams",
    "EditParams",
    "GenerateParams",
    "InpaintParams",
    "Progress",
    "RetargetParams",
    "SearchMode",
    "Task",
    "analogy",
    "collage",
    "decode_image",
    "decode_mask",
    "edit",
    "encode_png",
    "generate",
    "inpaint",
    "normalized_nn",
    "params_for",
    "read_image",
    "read_mask",
    "retarget",
    "run_task",
    "write_image",
]

"""What torch's weights-only unpickler may build from an nnU-Net checkpoint (no files)."""

from __future__ import annotations


def allow_numpy_values() -> None:
    """numpy scalars, dtypes and plain arrays (nnU-Net's training log holds them) join
    torch's weights-only allow list, process-wide: `safe_globals(...)` is a context that
    one thread's exit clears under another's load (Prefect runs per-case tasks on threads).
    Nothing here can call code: an object array's items still go through the same checks."""
    import numpy as np
    import torch

    dtypes = [
        type(np.dtype(t))
        for t in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "float16", "float32", "float64")
    ]
    torch.serialization.add_safe_globals(
        [np._core.multiarray.scalar, np._core.multiarray._reconstruct, np.ndarray, np.dtype, *dtypes]
    )

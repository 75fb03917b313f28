"""rhythm: the preplan-and-anchor rhythm of LLM attention and its RL credit.

Python bindings of the Rust crate ``rhythm-core`` (Li et al. 2025, "Attention
Illuminates LLM Reasoning"). numpy arrays in and out; every bad input raises
``ValueError`` with the same one-line message as the ``rhythm`` CLI.

>>> import numpy as np, rhythm
>>> n = 6
>>> maps = {0: np.tril(np.ones((2, n, n))) / np.arange(1, n + 1)[:, None]}
>>> r = rhythm.rhythm_from_maps(maps, response_start=2)
>>> r.n, len(r.spans)
(4, 2)
>>> rhythm.gamma("coupled", rhythm=r).shape
(4,)

Submodules ``rhythm.torch`` (a streamed attention probe for transformers
models) and ``rhythm.trl`` / ``rhythm.verl`` (trainer integrations) need
PyTorch and are imported on demand.
"""

from ._rust import (
    STRATEGIES,
    Params,
    Rhythm,
    Strategy,
    __version__,
    gamma,
    group_advantages,
    rhythm_from_maps,
    rhythm_from_summaries,
    sample_layers,
    shaped_advantages,
    summarize_maps,
    token_entropy,
)

__all__ = [
    "STRATEGIES",
    "Params",
    "Rhythm",
    "Strategy",
    "__version__",
    "gamma",
    "group_advantages",
    "rhythm_from_maps",
    "rhythm_from_summaries",
    "sample_layers",
    "shaped_advantages",
    "summarize_maps",
    "token_entropy",
]

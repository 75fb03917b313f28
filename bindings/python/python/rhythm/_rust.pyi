"""Type stubs of ``rhythm._rust``, the compiled binding of ``rhythm-core``."""

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypedDict, Union

import numpy as np
import numpy.typing as npt

__version__: str
STRATEGIES: tuple[str, ...]
"""The nine strategy names, in SPEC's table order."""

_HeadId = tuple[int, int]
"""A head as ``(layer, head)``."""

class _Summary(TypedDict, total=False):
    """Per-head summaries of one sequence (the format of ``rhythm.torch.probe``)."""

    response_start: int
    seq_len: int
    window: int
    horizon: tuple[int, int | None]
    proximity: int
    layers: list[int]
    span_num: npt.NDArray[np.float64]  # [L, H]
    waad: npt.NDArray[np.float64]  # [L, H, n]
    fai_sum: npt.NDArray[np.float64]  # [L, H, n]
    vert_sum: npt.NDArray[np.float64]  # [L, H, n]
    entropy: npt.NDArray[np.float64]  # [N], optional, ignored here
    logprobs: npt.NDArray[np.float64]  # [N], optional, ignored here

_MapArray = Union[npt.NDArray[np.float32], npt.NDArray[np.float64], npt.NDArray[np.float16]]
_Maps = Mapping[Union[int, str], Any]
"""``{layer: array [heads, N, N]}``; keys may be ``"attn.<layer>"`` (other strings are skipped)."""
_ArrayLike = Union[npt.ArrayLike, Sequence[float]]
_StrategyLike = Union["Strategy", str]
_ParamsLike = Union["Params", Mapping[str, Any]]
_GroupsLike = Union["Rhythm", Mapping[str, Sequence[_HeadId]]]

class Params:
    """Every knob of SPEC sections 3-8, validated (``ValueError`` names the field).

    ``Params(**fields)`` starts from SPEC's RL defaults. Immutable; use
    :meth:`replace` for a changed copy.
    """

    def __init__(
        self,
        *,
        window: int = 10,
        horizon: tuple[int, int | None] = (10, 50),
        q: float = 0.4,
        head_ratio: float = 0.3,
        receiver_ratio: float = 0.1,
        proximity: int = 4,
        k: int = 3,
        gamma_amp: float = 1.5,
        alpha: float = 0.5,
        tau_waad: float | None = None,
        tau_delta: float | None = None,
        seed: int = 0,
    ) -> None: ...
    @staticmethod
    def rl(**fields: Any) -> Params:
        """SPEC's RL defaults (window 10, horizon (10, 50), q 0.4, ...), with ``fields`` replaced."""
    @staticmethod
    def analysis(**fields: Any) -> Params:
        """SPEC's analysis defaults: RL's with horizon (1, None), FAI to the end."""
    def replace(self, **fields: Any) -> Params:
        """A validated copy with ``fields`` replaced."""
    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict; ``Params(**p.to_dict()) == p``."""
    @property
    def window(self) -> int: ...
    @property
    def horizon(self) -> tuple[int, int | None]:
        """``(lo, hi)``; ``hi`` ``None`` means to the end of the sequence."""
    @property
    def q(self) -> float: ...
    @property
    def head_ratio(self) -> float: ...
    @property
    def receiver_ratio(self) -> float: ...
    @property
    def proximity(self) -> int: ...
    @property
    def k(self) -> int: ...
    @property
    def gamma_amp(self) -> float: ...
    @property
    def alpha(self) -> float: ...
    @property
    def tau_waad(self) -> float | None: ...
    @property
    def tau_delta(self) -> float | None: ...
    @property
    def seed(self) -> int: ...
    def __eq__(self, other: object) -> bool: ...

class Strategy:
    """A credit strategy (SPEC section 8); ``str(s)`` is its CLI name."""

    NONE: ClassVar[Strategy]
    LOCAL: ClassVar[Strategy]
    GLOBAL: ClassVar[Strategy]
    COUPLED: ClassVar[Strategy]
    RANDOM: ClassVar[Strategy]
    ENTROPY: ClassVar[Strategy]
    LOCAL_BOTTOM: ClassVar[Strategy]
    GLOBAL_BOTTOM: ClassVar[Strategy]
    COUPLED_BOTTOM: ClassVar[Strategy]
    @staticmethod
    def parse(name: str) -> Strategy:
        """The strategy with CLI name ``name`` (e.g. ``"local-bottom"``)."""
    @staticmethod
    def all() -> list[Strategy]:
        """The nine strategies in SPEC's table order."""
    @property
    def needs_attention(self) -> bool: ...
    @property
    def needs_entropy(self) -> bool: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

class Rhythm:
    """One sequence's rhythm. Per-token arrays are indexed by ``t - response_start``;
    position arrays hold absolute positions, ascending."""

    @property
    def response_start(self) -> int: ...
    @property
    def n(self) -> int: ...
    @property
    def positions(self) -> npt.NDArray[np.int64]: ...
    @property
    def spans(self) -> list[tuple[int, int, float]]:
        """``(layer, head, span)`` of every candidate head."""
    @property
    def local_heads(self) -> list[_HeadId]: ...
    @property
    def global_heads(self) -> list[_HeadId]: ...
    @property
    def groups(self) -> dict[str, list[_HeadId]]:
        """``{"local": [...], "global": [...]}``, accepted as ``groups=``."""
    @property
    def receivers(self) -> list[_HeadId]: ...
    @property
    def kurtosis(self) -> list[tuple[int, int, float]]: ...
    @property
    def waad(self) -> npt.NDArray[np.float64]: ...
    @property
    def fai(self) -> npt.NDArray[np.float64]: ...
    @property
    def receiver_fai(self) -> npt.NDArray[np.float64]: ...
    @property
    def delta(self) -> npt.NDArray[np.float64]: ...
    @property
    def preplan(self) -> npt.NDArray[np.int64]: ...
    @property
    def anchors(self) -> npt.NDArray[np.int64]: ...
    @property
    def dominated(self) -> npt.NDArray[np.int64]: ...
    @property
    def intro(self) -> npt.NDArray[np.int64]: ...
    @property
    def tau_waad(self) -> float: ...
    @property
    def tau_delta(self) -> float: ...
    @property
    def params(self) -> Params: ...
    def gamma(
        self,
        strategy: _StrategyLike,
        entropy: _ArrayLike | None = None,
        params: _ParamsLike | None = None,
    ) -> npt.NDArray[np.float64]:
        """``gamma`` over this response (this rhythm's params unless given)."""
    def to_dict(self, gamma: _ArrayLike | None = None) -> dict[str, Any]:
        """The fields of ``rhythm score --json``, as plain Python values."""

def rhythm_from_maps(
    maps: _Maps,
    response_start: int,
    params: _ParamsLike | None = None,
    groups: _GroupsLike | None = None,
) -> Rhythm:
    """The rhythm from full maps ``{layer: [heads, N, N]}`` (validated, then
    streamed into summaries: the result equals ``rhythm score``'s)."""

def rhythm_from_summaries(
    summary: _Summary | Mapping[str, Any],
    params: _ParamsLike | None = None,
    groups: _GroupsLike | None = None,
) -> Rhythm:
    """The rhythm from per-head summaries (``rhythm.torch.probe`` format)."""

def summarize_maps(
    maps: _Maps,
    response_start: int,
    params: _ParamsLike | None = None,
) -> dict[str, Any]:
    """Per-head summaries of full maps, in the ``rhythm.torch.probe`` format."""

def gamma(
    strategy: _StrategyLike,
    n: int | None = None,
    rhythm: Rhythm | None = None,
    entropy: _ArrayLike | None = None,
    params: _ParamsLike | None = None,
) -> npt.NDArray[np.float64]:
    """Per-token credit scale of ``strategy`` (float64, length ``n``)."""

def group_advantages(rewards: _ArrayLike) -> npt.NDArray[np.float64]:
    """``(r - mean) / (std + 1e-6)`` over a group (population std; equal rewards give 0)."""

def shaped_advantages(advantage: float, gamma: _ArrayLike) -> npt.NDArray[np.float64]:
    """``gamma * advantage`` when ``advantage >= 0``, else ``advantage`` everywhere."""

def token_entropy(logits: _ArrayLike) -> npt.NDArray[np.float64]:
    """``H[t]`` = entropy of ``softmax(logits[t - 1])``, ``H[0] = 0`` (as ``rhythm score``)."""

def sample_layers(num_layers: int) -> list[int]:
    """SPEC section 2's sampled layers of a ``num_layers``-layer model (``--layers sampled``)."""

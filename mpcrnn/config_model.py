"""The network and its activations: ``[model]`` and ``[activation]`` (see :mod:`mpcrnn.config`
for how a setting is declared).  Split from :mod:`mpcrnn.config` to keep each module short."""

from __future__ import annotations

from dataclasses import dataclass

from mpcrnn.settings import check_choices, label, section, setting
from protocols.errors import ConfigError, expected_got

CELLS = ("rnn", "gru", "lstm")
TASKS = ("classify", "regress", "regress_steps", "lm")


@section("model")
@dataclass(frozen=True)
class ModelConfig:
    """The network; field names are torch's (``nn.GRU(input_size, hidden_size, num_layers)``),
    as in the model file and the run file's ``[model]``; the sizes of input and head come from
    ``[data]``."""

    cell: str = setting(
        "gru",
        choices=CELLS,
        help="Recurrent cell: rnn (Elman, tanh), gru or lstm (torch's equations and gate order).",
    )
    input_size: int = 12  # F per step ([data] n_features x frame; JV: 12)
    hidden_size: int = setting(32, help="H, the size of each layer's hidden state.")
    num_layers: int = setting(1, help="Stacked recurrent layers.")
    embedding_dim: int = setting(
        0,
        help="Text: D of a trainable embedding (V, D) on shares before the recurrent layers "
        "(0: none; numeric inputs).",
    )
    num_classes: int = 9  # C, classes of the head ([data] classes); 0: regress
    # classify (many-to-one, cross-entropy) | regress (many-to-one, MSE at the last valid step;
    # [data] target bounds) | regress_steps (per-step MSE) | lm (next-token cross-entropy at
    # every step, [data] kind text-lm: mpcrnn.language_model)
    task: str = "classify"
    output_size: int = 0  # regression outputs ([data] n_targets; regress_steps: per step; lm: V)

    def validate(self) -> None:
        check_choices(self)
        if self.task not in TASKS:
            raise ConfigError(expected_got("task", ", ".join(TASKS), self.task))
        for name in ("input_size", "hidden_size", "num_layers"):
            if getattr(self, name) < 1:
                raise ConfigError(expected_got(label(self, name), ">= 1", getattr(self, name)))
        if self.task == "classify" and self.num_classes < 2:
            raise ConfigError(expected_got("num_classes", ">= 2", self.num_classes))
        if self.task != "classify" and self.output_size < 1:
            raise ConfigError(expected_got("output_size", ">= 1", self.output_size))
        if self.task == "lm" and self.output_size != self.input_size:
            raise ConfigError(
                expected_got("output_size of a language model", self.input_size, self.output_size)
            )
        if self.embedding_dim < 0:
            raise ConfigError(
                expected_got(label(self, "embedding_dim"), ">= 0", self.embedding_dim)
            )

    @property
    def rnn_input_size(self) -> int:
        """What the first recurrent layer reads: the embedding's D, or input_size."""
        return self.embedding_dim or self.input_size

    @property
    def head_size(self) -> int:
        return self.num_classes if self.task == "classify" else self.output_size


@section("activation")
@dataclass(frozen=True)
class ActivationConfig:
    """The polynomial sigmoid/tanh (:mod:`protocols.arithmetic.polynomial`), run file only.
    Degree 23 at bound 8 (5 multiplication levels) errs by up to 0.0069 in tanh; 15 (4 levels,
    0.033) cost Elman RNNs 3 points against torch and 31 (5 levels, 0.0014) adds bytes for no
    measured gain (benchmarks/results/learning.md)."""

    degree: int = setting(
        23, flag=False, help="Odd degree (1..31) of the Chebyshev expansion of tanh."
    )
    bound: float = setting(
        8.0,
        flag=False,
        help="A power of two: tanh on [-bound, bound], sigmoid on [-2 bound, 2 bound].",
    )
    exact: bool = False  # plaintext only: torch's exact sigmoid/tanh (for parity tests)
    # c accumulates i*g over time steps (|c_t| <= t): with Adam it reached 14.6 on Japanese
    # Vowels (T = 29) and diverged a 2-layer LSTM past any interval; the clamp (one sign-bit
    # circuit per time step, 10 rounds) bounds it by construction, at an error of 1 - tanh(8)
    cell_clip: float = setting(
        8.0,
        flag=False,
        help="LSTM: the cell state clamped to [-cell_clip, cell_clip] before tanh (0: off).",
    )

    def validate(self) -> None:
        if not isinstance(self.degree, int) or self.degree % 2 == 0 or not 1 <= self.degree <= 31:
            raise ConfigError(expected_got(label(self, "degree"), "odd, 1..31", self.degree))
        if self.bound not in (1.0, 2.0, 4.0, 8.0, 16.0):
            raise ConfigError(
                expected_got(label(self, "bound"), "a power of two in 1..16", self.bound)
            )
        if not 0 <= self.cell_clip <= self.bound:  # tanh(c) is read on [-bound, bound]
            raise ConfigError(
                expected_got(
                    label(self, "cell_clip"), f"in [0, {self.bound:g}] (0: off)", self.cell_clip
                )
            )

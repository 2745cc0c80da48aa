"""Run configuration: frozen dataclasses, passed explicitly.

One vocabulary: each setting is declared once, on its field (:func:`mpcrnn.settings.setting`),
with its default, help and flag; its run-file key is the field's name, in the section its
class declares.  The run file (:mod:`launch.runfile`), the command-line flags
(:mod:`launch.options`) and the messages that name a setting are derived from these
declarations.  Fields declared with a bare default are not settings (derived from ``[data]``,
or internal).  [model] and [activation]: :mod:`mpcrnn.config_model`; [fedavg], [dp] and
[adversarial]: :mod:`mpcrnn.config_modes`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from mpcrnn.config_model import CELLS, TASKS, ActivationConfig, ModelConfig  # noqa: F401
from mpcrnn.config_modes import AdversarialConfig, DPConfig, FedAvgConfig
from mpcrnn.declaration import DataSpec
from mpcrnn.settings import check_choices, label, section, setting
from protocols.errors import ConfigError, expected_got
from protocols.network.parties import PROVIDERS

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "warmup", "cosine")
DEFAULT_LR = {"adam": 0.01, "adamw": 0.01, "sgd": 0.2}


@section("train")
@dataclass(frozen=True)
class TrainConfig:
    """The optimizer and the public schedule (:mod:`mpcrnn.train`).

    The defaults were chosen by the sweep in docs/approximations.md (benchmarks/learning_rows.py
    --sweep): RNN, GRU, LSTM x 1, 2 layers on Japanese Vowels and GRU, LSTM on GunPoint, 3 seeds
    each; ``clip_norm`` by benchmarks/one_bad_step.py (one garbage step), then checked on the
    same rows.  ``epochs``: the demo's schedule (Japanese Vowels, GRU: 93.8-95.4% over seeds
    0-2; cosine needs about 12 or more)."""

    epochs: int = setting(12, help="Passes over the pooled training rows.")
    batch_size: int = setting(32, help="Rows per step (public).")
    optimizer: str = setting(
        "adam",
        choices=OPTIMIZERS,
        help="Optimizer on shares: adam, adamw (decoupled weight decay) or sgd (momentum).",
    )
    lr: float | None = setting(
        None,
        help="Learning rate; default per optimizer: "
        + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items())
        + ".",
    )
    momentum: float = setting(0.9, help="SGD momentum (with DP-SGD 0.5 is safer: docs/dp.md).")
    beta1: float = setting(0.9, flag=False, help="Adam: first-moment decay.")
    beta2: float = setting(0.999, flag=False, help="Adam: second-moment decay.")
    eps: float = setting(
        1e-3,
        flag=False,
        help="Adam: m / (sqrt(v) + eps); at least 2^-13 on shares "
        "(protocols.arithmetic.adam.MIN_EPS).",
    )
    weight_decay: float = setting(
        0.0,
        flag=False,
        help="sgd, adam: + weight_decay theta in the gradient; adamw: theta *= 1 - lr "
        "weight_decay.",
    )
    clip_value: float = setting(
        1.0, flag=False, help="Clip every gradient entry to [-clip_value, clip_value] (0: off)."
    )
    # on by default so that one garbage step (a rare fixed-point failure on shares) cannot wreck
    # a run: docs/approximations.md "How the defaults were chosen"
    clip_norm: float = setting(
        1.0, flag=False, help="Then rescale the whole gradient to norm <= clip_norm (0: off)."
    )
    schedule: str = setting(
        "cosine",
        choices=SCHEDULES,
        help="Public learning-rate schedule: constant, warmup (linear) or cosine (warm-up, then "
        "cosine to 0).",
    )
    warmup_steps: int = setting(10, help="Linear warm-up steps (warmup, cosine).")
    seed: int = setting(0, help="Public seed: initialization and the batch schedule.")

    @property
    def step_lr(self) -> float:
        """The base learning rate: ``lr``, or the optimizer's default."""
        return DEFAULT_LR.get(self.optimizer, 0.01) if self.lr is None else self.lr

    def grad_bound(self) -> float:
        """A public bound on every entry of the clipped gradient (Adam on shares needs one)."""
        return self.clip_value if self.clip_value > 0 else self.clip_norm

    def validate(self) -> None:
        check_choices(self)
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(expected_got(label(self, name), ">= 1", getattr(self, name)))
        if not 0 < self.step_lr <= 10:
            raise ConfigError(expected_got(label(self, "lr"), "in (0, 10]", self.lr))
        if not 0 <= self.momentum < 1:
            raise ConfigError(expected_got(label(self, "momentum"), "in [0, 1)", self.momentum))
        if self.clip_value < 0 or self.clip_norm < 0:
            raise ConfigError(
                expected_got(
                    "[train] clip_value and clip_norm", ">= 0", (self.clip_value, self.clip_norm)
                )
            )
        if self.weight_decay < 0:
            raise ConfigError(expected_got(label(self, "weight_decay"), ">= 0", self.weight_decay))
        if self.warmup_steps < 0:
            raise ConfigError(expected_got(label(self, "warmup_steps"), ">= 0", self.warmup_steps))
        if self.optimizer in ("adam", "adamw"):
            self._validate_adam()
        if not (isinstance(self.seed, int) and 0 <= self.seed < 2**63):
            raise ConfigError(
                expected_got(label(self, "seed"), "an integer in [0, 2^63)", self.seed)
            )

    def _validate_adam(self) -> None:
        from protocols.arithmetic.adam import MIN_EPS

        if not (0 < self.beta1 < 1 and 0 < self.beta2 < 1):
            raise ConfigError(
                expected_got("[train] beta1 and beta2", "in (0, 1)", (self.beta1, self.beta2))
            )
        if not MIN_EPS <= self.eps <= 1:
            raise ConfigError(
                expected_got(
                    f"{label(self, 'eps')} with optimizer {self.optimizer}",
                    f"in [{MIN_EPS:.3g}, 1] (fixed point: 2^-16 resolution)",
                    self.eps,
                )
            )
        if not 0 < self.grad_bound() <= 64:
            raise ConfigError(
                expected_got(
                    "[train] clip_value or clip_norm with optimizer " + self.optimizer,
                    "in (0, 64] (Adam on shares needs a public bound on the gradient)",
                    (self.clip_value, self.clip_norm),
                )
            )


MODES = ("mpc", "fedavg")


@section("run")
@dataclass(frozen=True)
class RunConfig:
    """Everything all parties must agree on (its digest is compared before any data is shared).
    The run file's ``[run]``; the other sections are its config fields, ``[data]`` is ``spec``
    and ``[identities]`` is ``identities``."""

    model: ModelConfig = field(default_factory=ModelConfig)
    activation: ActivationConfig = field(default_factory=ActivationConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    spec: DataSpec | None = None  # [data]; None: the built-in demo's
    parties: int = setting(3, help="Data parties (organizations); the dealer is not counted.")
    provider: str = setting(
        "TTP",
        choices=PROVIDERS,
        parse=str.upper,
        help="TTP: a dealer process makes the triples (secure). HE: the 2 data parties make "
        "them with homomorphic encryption, no dealer. TFP: party 0 makes them (INSECURE "
        "simulation).",
    )
    he: str = setting(
        "bfv n=8192 q=60+60+60+38 t=3x59 sigma=40",
        flag=False,
        help="provider HE: the BFV parameters (protocols.randomness.he_context.HeParams.parse); "
        "checked for 128-bit security.",
    )
    frac_bits: int = 16  # f: fixed point at scale 2^f
    reveal_to: tuple[int, ...] = setting(
        (), help="Ranks that receive the final weights (the flag repeats); empty: all parties."
    )
    reveal_metrics: bool = setting(
        False, help="Also open the pooled training accuracy (one number, ledgered)."
    )
    mode: str = setting(
        "mpc",
        choices=MODES,
        help="mpc: train on secret shares, open only the final weights. fedavg: train locally, "
        "average on shares, open every round's average (faster, reveals more).",
    )
    fedavg: FedAvgConfig = field(default_factory=FedAvgConfig)
    dp: DPConfig = field(default_factory=DPConfig)  # DP-SGD inside MPC; off by default
    # the network (protocols.network.channels): every process's pinned certificate fingerprint,
    # rank order, the dealer last ([identities]); or the insecure plaintext transport
    identities: tuple[str, ...] = ()
    insecure_plaintext_transport: bool = setting(
        False,
        help="INSECURE: plain TCP, no identities, no encryption (tests, demos). Hashed into the "
        "run config.",
    )
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)

    def he_params(self):
        """The BFV parameters of ``--provider he`` (checked: two parties, 128-bit security)."""
        from protocols.network.parties import PartySpec
        from protocols.randomness.he_context import HeParams

        PartySpec(0, self.parties, "file:///-", self.provider).validate_role()
        return HeParams.parse(self.he)

    def receivers(self) -> tuple[int, ...]:
        return self.reveal_to or tuple(range(self.parties))

    @property
    def fedavg_rounds(self) -> int:
        """R for ``--mode fedavg``: ``[fedavg] rounds``, or one round per training epoch."""
        return self.fedavg.rounds or self.train.epochs

    def validate(self) -> None:
        self.model.validate()
        self.train.validate()
        check_choices(self)
        if not isinstance(self.parties, int) or self.parties < 2:
            raise ConfigError(
                expected_got(
                    label(self, "parties"),
                    ">= 2",
                    self.parties,
                    "One organization alone can train on its own rows in plaintext "
                    "(mpcrnn rehearse); MPC needs at least two",
                )
            )
        if any(not 0 <= r < self.parties for r in self.reveal_to):
            raise ConfigError(
                expected_got(label(self, "reveal_to"), f"in 0..{self.parties - 1}", self.reveal_to)
            )
        if self.provider == "HE":
            self.he_params()  # ConfigError: not 2 parties, another syntax, below 128-bit
        if self.mode == "fedavg":
            self.fedavg.validate()
            if set(self.receivers()) != set(range(self.parties)):
                raise ConfigError(
                    expected_got(
                        "[run] reveal_to with mode fedavg",
                        "all parties (every party trains from each round's opened average)",
                        self.reveal_to,
                    )
                )
        self.activation.validate()
        self.dp.validate()
        self.adversarial.validate()
        self._validate_combination()

    def _validate_combination(self) -> None:
        """What the sections cannot do together, and the ring's range."""
        self._validate_regression()
        if self.adversarial.enabled and (self.mode != "mpc" or self.dp.enabled):
            raise ConfigError(
                expected_got(
                    label(self.adversarial, "method"),
                    "none, unless mode mpc without DP-SGD (adversarial training runs on "
                    "shares, with summed gradients)",
                    f"{self.adversarial.method} with mode {self.mode}"
                    + (" and DP-SGD" if self.dp.enabled else ""),
                )
            )
        if self.adversarial.enabled and self.model.embedding_dim:
            raise ConfigError(
                expected_got(label(self.adversarial, "method"), "none with an embedding", "text")
            )
        if self.dp.enabled and self.mode != "mpc":
            raise ConfigError(
                expected_got(
                    f"{label(self, 'mode')} with DP-SGD", "mpc (DP-SGD runs on shares)", self.mode
                )
            )
        from protocols.arithmetic.fixed_point import FixedPoint

        # gate pre-activations up to 2B (sigmoid columns) multiply each other at scale 2^(2f)
        FixedPoint(self.frac_bits).check_range(
            (2 * self.activation.bound) ** 2, "gate products", failure_per_element=2.0**-20
        )
        if self.spec is not None and self.spec.input_size != self.model.input_size:
            raise ConfigError(
                expected_got("model input size", self.spec.input_size, self.model.input_size)
            )

    def _validate_regression(self) -> None:
        """What a regression task or a language model refuses, in one line each."""
        if self.model.task == "classify":
            return
        task = "a language model" if self.model.task == "lm" else "a regression task"
        if self.adversarial.enabled:
            raise ConfigError(
                expected_got(
                    label(self.adversarial, "method") + f" with {task}",
                    "none (adversarial training and `mpcrnn attack` are built on the "
                    "cross-entropy and robust accuracy of a classifier)",
                    self.adversarial.method,
                )
            )
        if self.reveal_metrics:
            own = "held-out bits per character" if self.model.task == "lm" else "test RMSE"
            raise ConfigError(
                expected_got(
                    label(self, "reveal_metrics") + f" with {task}",
                    f"false (it opens a pooled training accuracy; {task} reports each "
                    f"party's own {own} instead)",
                    True,
                )
            )

    def to_json(self) -> dict:
        return json.loads(json.dumps(asdict(self), default=list))

    def digest(self) -> str:
        """SHA-256 of everything agreed, the pinned identities and the transport included."""
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()

    def checkpoint_digest(self) -> str:
        """SHA-256 of what a checkpoint depends on: the agreed configuration without the
        network (``mpcrnn train`` makes fresh throw-away identities for every run, resume too)."""
        body = self.to_json()
        body.pop("identities", None)
        body.pop("insecure_plaintext_transport", None)
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


# the run file's sections, in the order the reference lists them ([identities] and [data]:
# launch.runfile)
SECTIONS = (
    RunConfig,
    ModelConfig,
    ActivationConfig,
    TrainConfig,
    FedAvgConfig,
    DPConfig,
    AdversarialConfig,
)

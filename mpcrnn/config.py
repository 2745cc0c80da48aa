"""Run configuration: frozen dataclasses, passed explicitly.  Every default is explained inline.

One vocabulary: these dataclasses are the only place a setting is named and given its default.
The run file (:mod:`launch.runfile`) has one section per dataclass and one key per field, the
field's name unless the field declares its run-file key (``file_key``: torch's and Opacus's
names stay in code and model files, the run file keeps its short keys: ``hidden``, ``layers``,
``parties``, ``epsilon``, ``noise``, ``insecure_plaintext_transport``); :func:`file_keys` lists
them.  Command-line flags and their defaults are read from here too (:mod:`launch.options`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import TYPE_CHECKING

from protocols.errors import ConfigError, expected_got

if TYPE_CHECKING:
    from mpcrnn.declaration import DataSpec

CELLS = ("rnn", "gru", "lstm")


def file_key(key: str | None, default=MISSING, **kw):
    """A field whose run-file key is ``key`` (None: not in the run file)."""
    return field(default=default, metadata={"key": key}, **kw)


def file_keys(cls) -> dict[str, str]:
    """{run-file key: field name} of a config dataclass (keys in field order)."""
    out = {}
    for f in fields(cls):
        key = f.metadata.get("key", f.name)
        if key is not None:
            out[key] = f.name
    return out


def default_of(cls, name: str):
    """The default of field ``name`` of a config dataclass (the one place it is written)."""
    (f,) = (f for f in fields(cls) if f.name == name)
    return f.default if f.default is not MISSING else f.default_factory()


@dataclass(frozen=True)
class ModelConfig:
    """The network; field names are torch's (``nn.GRU(input_size, hidden_size, num_layers)``),
    as in the model file.  Run file ``[model]``: cell, hidden, layers; the rest from ``[data]``."""

    cell: str = "gru"  # rnn (Elman, tanh) | gru | lstm, torch's equations and gate order
    input_size: int = file_key(None, 12)  # F per step ([data] n_features x frame; JV: 12)
    hidden_size: int = file_key("hidden", 32)  # H
    num_layers: int = file_key("layers", 1)  # stacked layers
    num_classes: int = file_key(None, 9)  # C, classes of the head ([data] classes); 0: regress
    task: str = file_key(None, "classify")  # classify (many-to-one, cross-entropy) | regress
    output_size: int = file_key(None, 0)  # regression outputs per step (task="regress")

    def validate(self) -> None:
        if self.cell not in CELLS:
            raise ConfigError(expected_got("cell", "/".join(CELLS), self.cell))
        if self.task not in ("classify", "regress"):
            raise ConfigError(expected_got("task", "classify or regress", self.task))
        for name in ("input_size", "hidden_size", "num_layers"):
            if getattr(self, name) < 1:
                raise ConfigError(expected_got(name, ">= 1", getattr(self, name)))
        if self.task == "classify" and self.num_classes < 2:
            raise ConfigError(expected_got("num_classes", ">= 2", self.num_classes))
        if self.task == "regress" and self.output_size < 1:
            raise ConfigError(expected_got("output_size", ">= 1", self.output_size))

    @property
    def head_size(self) -> int:
        return self.num_classes if self.task == "classify" else self.output_size


@dataclass(frozen=True)
class ActivationConfig:
    """The polynomial sigmoid/tanh (:mod:`protocols.arithmetic.polynomial`).  Run file
    ``[activation]``:
    degree, bound, cell_clip.  Default degree 23 at bound 8 (5 multiplication levels) errs by
    up to 0.0069 in tanh; 15 (4 levels, 0.033) cost Elman RNNs 3 points against torch and 31
    (5 levels, 0.0014) adds bytes for no measured gain (README "Learning off the demo")."""

    degree: int = 23  # odd degree of the Chebyshev expansion of tanh; 23 -> 5 levels
    bound: float = 8.0  # power of two: tanh on [-bound, bound], sigmoid on [-2 bound, 2 bound]
    # plaintext only: torch's exact sigmoid/tanh (for parity tests); never in a run file
    exact: bool = file_key(None, False)
    # LSTM: tanh(clamp(c, -cell_clip, cell_clip)) of the cell state (0: no clamp).  c accumulates
    # i*g over time steps (|c_t| <= t): with Adam it reached 14.6 on Japanese Vowels (T = 29) and
    # diverged a 2-layer LSTM past any interval; the clamp (one sign-bit circuit per time step,
    # 10 rounds) bounds it by construction, at an error of 1 - tanh(8) = 2.3e-7
    cell_clip: float = 8.0

    def validate(self) -> None:
        if not isinstance(self.degree, int) or self.degree % 2 == 0 or not 1 <= self.degree <= 31:
            raise ConfigError(expected_got("[activation] degree", "odd, 1..31", self.degree))
        if self.bound not in (1.0, 2.0, 4.0, 8.0, 16.0):
            raise ConfigError(
                expected_got("[activation] bound", "a power of two in 1..16", self.bound)
            )
        if not 0 <= self.cell_clip <= self.bound:  # tanh(c) is read on [-bound, bound]
            raise ConfigError(
                expected_got(
                    "[activation] cell_clip", f"in [0, {self.bound:g}] (0: off)", self.cell_clip
                )
            )


OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "warmup", "cosine")
DEFAULT_LR = {"adam": 0.01, "adamw": 0.01, "sgd": 0.2}


@dataclass(frozen=True)
class TrainConfig:
    """The optimizer and the public schedule (:mod:`mpcrnn.train`).  Run file: ``[train]``."""

    # the demo schedule (Japanese Vowels, GRU: 93.8-95.4% over seeds 0-2; cosine needs >= ~12)
    epochs: int = 12
    # Defaults below (adam, lr 0.01, eps 1e-3, clip_value 1, cosine with 10 warm-up steps) were
    # chosen by the sweep in README "Defaults" (benchmarks/learning_rows.py --sweep): RNN, GRU,
    # LSTM x 1, 2 layers on Japanese Vowels and GRU, LSTM on GunPoint, 3 seeds each; clip_norm 1
    # by benchmarks/one_bad_step.py (one garbage step), then checked on the same rows
    batch_size: int = 32
    optimizer: str = "adam"  # adam | adamw (decoupled weight decay) | sgd (momentum); on shares
    lr: float | None = None  # None: the optimizer's default (DEFAULT_LR: adam 0.01, sgd 0.2)
    momentum: float = 0.9  # sgd only
    beta1: float = 0.9  # adam: first-moment decay
    beta2: float = 0.999  # adam: second-moment decay
    eps: float = (
        1e-3  # adam: m / (sqrt(v) + eps); >= 2^-13 on shares (protocols.arithmetic.adam.MIN_EPS)
    )
    weight_decay: float = 0.0  # sgd/adam: + wd theta in the gradient; adamw: theta *= 1 - lr_t wd
    clip_value: float = 1.0  # clip every gradient entry to [-c, c] on shares (0: off)
    # then rescale the whole gradient to norm <= c on shares (0: off).  On by default so that one
    # garbage step (a rare fixed-point failure on shares) cannot wreck a run: README "Defaults"
    clip_norm: float = 1.0
    # public lr schedule: constant | warmup (linear) | cosine (warm-up, then cosine to 0)
    schedule: str = "cosine"
    warmup_steps: int = 10  # linear warm-up steps for "warmup" and "cosine"
    seed: int = 0  # public: initialization and the batch schedule

    @property
    def step_lr(self) -> float:
        """The base learning rate: ``lr``, or the optimizer's default."""
        return DEFAULT_LR.get(self.optimizer, 0.01) if self.lr is None else self.lr

    def grad_bound(self) -> float:
        """A public bound on every entry of the clipped gradient (Adam on shares needs one)."""
        return self.clip_value if self.clip_value > 0 else self.clip_norm

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(
                expected_got("epochs and batch_size", ">= 1", (self.epochs, self.batch_size))
            )
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(expected_got("optimizer", " | ".join(OPTIMIZERS), self.optimizer))
        if not 0 < self.step_lr <= 10:
            raise ConfigError(expected_got("learning rate", "in (0, 10]", self.lr))
        if not 0 <= self.momentum < 1:
            raise ConfigError(expected_got("momentum", "in [0, 1)", self.momentum))
        if self.clip_value < 0 or self.clip_norm < 0:
            raise ConfigError(
                expected_got("clip_value and clip_norm", ">= 0", (self.clip_value, self.clip_norm))
            )
        if self.weight_decay < 0:
            raise ConfigError(expected_got("weight_decay", ">= 0", self.weight_decay))
        if self.schedule not in SCHEDULES:
            raise ConfigError(expected_got("schedule", " | ".join(SCHEDULES), self.schedule))
        if self.warmup_steps < 0:
            raise ConfigError(expected_got("warmup_steps", ">= 0", self.warmup_steps))
        if self.optimizer in ("adam", "adamw"):
            from protocols.arithmetic.adam import MIN_EPS

            if not (0 < self.beta1 < 1 and 0 < self.beta2 < 1):
                raise ConfigError(
                    expected_got("beta1 and beta2", "in (0, 1)", (self.beta1, self.beta2))
                )
            if not MIN_EPS <= self.eps <= 1:
                raise ConfigError(
                    expected_got(
                        "adam eps",
                        f"in [{MIN_EPS:.3g}, 1] (fixed point: 2^-16 resolution)",
                        self.eps,
                    )
                )
            if not 0 < self.grad_bound() <= 64:
                raise ConfigError(
                    expected_got(
                        "clip_value or clip_norm with optimizer " + self.optimizer,
                        "in (0, 64] (Adam on shares needs a public bound on the gradient)",
                        (self.clip_value, self.clip_norm),
                    )
                )
        if not (isinstance(self.seed, int) and 0 <= self.seed < 2**63):
            raise ConfigError(
                expected_got("seed (--seed / [train] seed)", "an integer in [0, 2^63)", self.seed)
            )


ACCOUNTANTS = ("rdp", "prv")  # opacus.accountants.RDPAccountant / PRVAccountant


@dataclass(frozen=True)
class DPConfig:
    """DP-SGD inside MPC (:mod:`mpcrnn.dp`).  Public: in the run file and its digest.

    Enabled: exactly one of ``noise_multiplier`` (epsilon is reported) or ``target_epsilon``
    (sigma is chosen by Opacus's ``get_noise_multiplier``).  Sampling is Poisson with rate
    q = 1 / ceil(N / batch_size) over ceil(N / batch_size) steps per epoch (Opacus's
    DPDataLoader convention; expected batch q N), see :func:`mpcrnn.dp.poisson_plan`.
    """

    enabled: bool = file_key(None, False)  # on when the run file sets epsilon or noise
    clip: float = 1.0  # C: each example's gradient to L2 norm <= C (the sensitivity)
    # sigma: noise N(0, sigma^2 C^2) on the clipped sum (run file: noise)
    noise_multiplier: float | None = file_key("noise", None)
    # or: the smallest sigma spending at most this epsilon (run file: epsilon)
    target_epsilon: float | None = file_key("epsilon", None)
    delta: float = 1e-5  # the delta of (epsilon, delta); keep it below 1/N
    accountant: str = "rdp"  # rdp | prv (opacus.accountants)

    def validate(self) -> None:
        if not self.enabled:
            return
        if not (isinstance(self.clip, (int, float)) and self.clip > 0 and self.clip < float("inf")):
            raise ConfigError(
                expected_got("DP clipping norm C (--dp-clip)", "a finite number > 0", self.clip)
            )
        if (self.noise_multiplier is None) == (self.target_epsilon is None):
            raise ConfigError(
                expected_got(
                    "DP noise setting",
                    "exactly one of --dp-noise or --dp-epsilon",
                    "both" if self.noise_multiplier is not None else "neither",
                )
            )
        if self.noise_multiplier is not None and not 0 <= self.noise_multiplier < float("inf"):
            raise ConfigError(
                expected_got(
                    "DP noise multiplier (--dp-noise)",
                    "a finite number >= 0",
                    self.noise_multiplier,
                )
            )
        if self.target_epsilon is not None and not 0 < self.target_epsilon < float("inf"):
            raise ConfigError(
                expected_got(
                    "DP target epsilon (--dp-epsilon)", "a finite number > 0", self.target_epsilon
                )
            )
        if not 0 < self.delta < 1:
            raise ConfigError(expected_got("DP delta (--dp-delta)", "in (0, 1)", self.delta))
        if self.accountant not in ACCOUNTANTS:
            raise ConfigError(
                expected_got("DP accountant", " or ".join(ACCOUNTANTS), self.accountant)
            )


MODES = ("mpc", "fedavg")
WEIGHTINGS = ("rows", "equal")


@dataclass(frozen=True)
class FedAvgConfig:
    """``--mode fedavg`` (:mod:`mpcrnn.fedavg`): R rounds; in each, every party trains locally in
    plain torch for E epochs from the global model, and the weighted mean of the models is
    computed on shares and opened to all parties.  Local training uses TrainConfig's batch size,
    optimizer (Adam by default, as in --mode mpc), learning rate, weight decay and clipping.
    Public: in the run file and its digest."""

    # R: opened global models, one per round; 0: one round per training epoch (--epochs), so
    # the epoch count set per data set governs fedavg too (R = 10 fixed reached 93.5-93.8% on
    # Japanese Vowels RNN / LSTM x2 where R = 20 epochs gave 95.7%, pooled torch Adam ~95.5%)
    rounds: int = 0
    local_epochs: int = 2  # E: local passes over a party's own rows per round
    weighting: str = "rows"  # rows: weights = public row counts | equal: 1 per party
    update_clip: float = 0.0  # bound each party's update norm ||theta_i - theta|| (0: off)

    def validate(self) -> None:
        if self.rounds < 0 or self.local_epochs < 1:
            raise ConfigError(
                expected_got(
                    "fedavg rounds and local_epochs",
                    ">= 0 (0: one per epoch) and >= 1",
                    (self.rounds, self.local_epochs),
                )
            )
        if self.weighting not in WEIGHTINGS:
            raise ConfigError(
                expected_got("fedavg weighting", " or ".join(WEIGHTINGS), self.weighting)
            )
        if not 0 <= self.update_clip < float("inf"):
            raise ConfigError(
                expected_got("fedavg update_clip", "a finite number >= 0", self.update_clip)
            )


ADVERSARIAL = ("none", "fgsm", "pgd")


@dataclass(frozen=True)
class AdversarialConfig:
    """Adversarial training on shares (:mod:`mpcrnn.adversarial`).  Public: in the run file and
    its digest.  Perturbations are L-infinity, in scaled feature units (the declared bounds map
    to [-1, 1]), on valid time steps only."""

    method: str = "none"  # none | fgsm | pgd
    eps: float = 0.1  # radius of the perturbation ball
    steps: int = 10  # pgd: gradient steps
    alpha: float | None = None  # pgd: step size; None: eps / 4 (follows --adv-eps)
    mix: float = 0.5  # share of the loss on perturbed rows: (1 - mix) L(x) + mix L(x_adv)

    @property
    def enabled(self) -> bool:
        return self.method != "none"

    @property
    def step_size(self) -> float:
        """PGD's step: ``alpha``, or ``eps / 4`` when not set."""
        return self.eps / 4 if self.alpha is None else self.alpha

    def validate(self) -> None:
        if self.method not in ADVERSARIAL:
            raise ConfigError(
                expected_got(
                    "adversarial method (--adversarial)", " | ".join(ADVERSARIAL), self.method
                )
            )
        if not (isinstance(self.eps, (int, float)) and 0 < self.eps <= 1):
            raise ConfigError(
                expected_got("--adv-eps (scaled feature units)", "in (0, 1]", self.eps)
            )
        if not (isinstance(self.steps, int) and 1 <= self.steps <= 100):
            raise ConfigError(expected_got("--adv-steps", "an integer in 1..100", self.steps))
        if self.alpha is not None and not (
            isinstance(self.alpha, (int, float)) and 0 < self.alpha <= self.eps
        ):
            raise ConfigError(
                expected_got("--adv-alpha", f"in (0, eps = {self.eps:g}]", self.alpha)
            )
        if not (isinstance(self.mix, (int, float)) and 0 < self.mix <= 1):
            raise ConfigError(expected_got("--adv-mix", "in (0, 1]", self.mix))


@dataclass(frozen=True)
class RunConfig:
    """Everything all parties must agree on (its digest is compared before any data is shared)."""

    # the run file's [model], [activation], [train], [data], [fedavg], [dp], [adversarial]; the
    # rest is [run]
    model: ModelConfig = file_key(None, default_factory=ModelConfig)
    activation: ActivationConfig = file_key(None, default_factory=ActivationConfig)
    train: TrainConfig = file_key(None, default_factory=TrainConfig)
    spec: DataSpec | None = file_key(None, None)  # [data]; None: the built-in demo's
    world_size: int = file_key("parties", 3)  # data parties, the dealer not counted
    provider: str = "TTP"  # TTP: a dealer process makes the triples | TFP: party 0 (insecure)
    # HE: the two data parties make them with BFV (protocols.randomness.he_context.HeParams.parse)
    he: str = "bfv n=8192 q=60+60+60+38 t=3x59 sigma=40"
    frac_bits: int = file_key(None, 16)  # f: fixed point at scale 2^f
    reveal_to: tuple[int, ...] = ()  # ranks receiving the final weights; empty: all parties
    reveal_metrics: bool = False  # open the final training accuracy (ledgered)
    mode: str = "mpc"  # mpc: train on shares | fedavg: local training + secure averaging
    fedavg: FedAvgConfig = file_key(None, default_factory=FedAvgConfig)
    dp: DPConfig = file_key(None, default_factory=DPConfig)  # DP-SGD inside MPC; off by default
    # the network (protocols.network.channels): every process's pinned certificate fingerprint, rank
    # order, the dealer last (the run file's [identities]); or the insecure plaintext transport
    identities: tuple[str, ...] = file_key(None, ())
    insecure_transport: bool = file_key("insecure_plaintext_transport", False)
    # mpcrnn.adversarial; off by default
    adversarial: AdversarialConfig = file_key(None, default_factory=AdversarialConfig)

    def he_params(self):
        """The BFV parameters of ``--provider he`` (checked: two parties, 128-bit security)."""
        from protocols.network.parties import PartySpec
        from protocols.randomness.he_context import HeParams

        PartySpec(0, self.world_size, "file:///-", self.provider).validate_role()
        return HeParams.parse(self.he)

    def receivers(self) -> tuple[int, ...]:
        return self.reveal_to or tuple(range(self.world_size))

    @property
    def fedavg_rounds(self) -> int:
        """R for ``--mode fedavg``: ``[fedavg] rounds``, or one round per training epoch."""
        return self.fedavg.rounds or self.train.epochs

    def validate(self) -> None:
        self.model.validate()
        self.train.validate()
        if not isinstance(self.world_size, int) or self.world_size < 2:
            raise ConfigError(
                expected_got(
                    "data parties (--parties / [run] parties)",
                    ">= 2",
                    self.world_size,
                    "One organization alone can train on its own rows in plaintext "
                    "(mpcrnn rehearse); MPC needs at least two",
                )
            )
        if any(not 0 <= r < self.world_size for r in self.reveal_to):
            raise ConfigError(
                expected_got("--reveal-to ranks", f"in 0..{self.world_size - 1}", self.reveal_to)
            )
        if self.mode not in MODES:
            raise ConfigError(expected_got("mode", " or ".join(MODES), self.mode))
        if self.provider == "HE":
            self.he_params()  # ConfigError: not 2 parties, another syntax, below 128-bit
        if self.mode == "fedavg":
            self.fedavg.validate()
            if set(self.receivers()) != set(range(self.world_size)):
                raise ConfigError(
                    expected_got(
                        "--reveal-to with --mode fedavg",
                        "all parties (every party trains from each round's opened average)",
                        self.reveal_to,
                    )
                )
        self.activation.validate()
        self.dp.validate()
        self.adversarial.validate()
        if self.adversarial.enabled and (self.mode != "mpc" or self.dp.enabled):
            raise ConfigError(
                expected_got(
                    "--adversarial",
                    "--mode mpc without --dp-* (adversarial training runs on "
                    "shares, with summed gradients)",
                    f"mode {self.mode}" + (" with DP" if self.dp.enabled else ""),
                )
            )
        if self.dp.enabled and self.mode != "mpc":
            raise ConfigError(
                expected_got("mode with --dp-*", "mpc (DP-SGD runs on shares)", self.mode)
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
        body.pop("insecure_transport", None)
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

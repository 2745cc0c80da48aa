"""The run file's optional sections: ``[fedavg]``, ``[dp]`` and ``[adversarial]`` (re-exported
by :mod:`mpcrnn.config`, which declares the rest).  Public: in the run file and its digest."""

from __future__ import annotations

from dataclasses import dataclass

from mpcrnn.settings import check_choices, label, section, setting
from protocols.errors import ConfigError, expected_got

WEIGHTINGS = ("rows", "equal")


@section("fedavg")
@dataclass(frozen=True)
class FedAvgConfig:
    """``--mode fedavg`` (:mod:`mpcrnn.fedavg`): R rounds; in each, every party trains locally in
    plain torch for E epochs from the global model, and the weighted mean of the models is
    computed on shares and opened to all parties.  Local training uses TrainConfig's batch size,
    optimizer (Adam by default, as in --mode mpc), learning rate, weight decay and clipping."""

    # R = 0 follows the epoch count set per data set (R = 10 fixed reached 93.5-93.8% on
    # Japanese Vowels RNN / LSTM x2 where R = 20 epochs gave 95.7%, pooled torch Adam ~95.5%)
    rounds: int = setting(
        0, help="fedavg: rounds, each opens one average; 0: one per training epoch."
    )
    local_epochs: int = setting(2, help="fedavg: local passes over a party's own rows per round.")
    weighting: str = setting(
        "rows",
        choices=WEIGHTINGS,
        help="fedavg: weight each party by its (public) row count, or equally.",
    )
    update_clip: float = setting(
        0.0, help="fedavg: bound each party's update norm on shares (0: off)."
    )

    def validate(self) -> None:
        check_choices(self)
        if self.rounds < 0:
            raise ConfigError(
                expected_got(label(self, "rounds"), ">= 0 (0: one per epoch)", self.rounds)
            )
        if self.local_epochs < 1:
            raise ConfigError(expected_got(label(self, "local_epochs"), ">= 1", self.local_epochs))
        if not 0 <= self.update_clip < float("inf"):
            raise ConfigError(
                expected_got(label(self, "update_clip"), "a finite number >= 0", self.update_clip)
            )


ACCOUNTANTS = ("rdp", "prv")  # opacus.accountants.RDPAccountant / PRVAccountant


@section("dp", flag_prefix="dp-")
@dataclass(frozen=True)
class DPConfig:
    """DP-SGD inside MPC (:mod:`mpcrnn.dp`).

    Enabled: exactly one of ``noise`` (epsilon is reported) or ``epsilon`` (sigma is chosen by
    Opacus's ``get_noise_multiplier``).  Sampling is Poisson with rate q = 1 / ceil(N /
    batch_size) over ceil(N / batch_size) steps per epoch (Opacus's DPDataLoader convention;
    expected batch q N), see :func:`mpcrnn.dp.poisson_plan`.
    """

    enabled: bool = False  # not a setting: on when the run file or a flag sets epsilon or noise
    epsilon: float | None = setting(
        None, help="DP-SGD: target epsilon; sigma from Opacus's get_noise_multiplier."
    )
    noise: float | None = setting(
        None,
        help="DP-SGD: the noise multiplier sigma instead (noise N(0, sigma^2 C^2) on the clipped "
        "sum); the spent epsilon is reported.",
    )
    delta: float = setting(1e-5, help="DP-SGD: the delta of (epsilon, delta); keep it below 1/N.")
    clip: float = setting(
        1.0, help="DP-SGD: C, each example's gradient clipped to L2 norm C (the sensitivity)."
    )
    accountant: str = setting(
        "rdp", choices=ACCOUNTANTS, help="DP-SGD: Opacus accountant (opacus.accountants)."
    )

    def validate(self) -> None:
        if not self.enabled:
            return
        check_choices(self)
        if not (isinstance(self.clip, (int, float)) and 0 < self.clip < float("inf")):
            raise ConfigError(expected_got(label(self, "clip"), "a finite number > 0", self.clip))
        if (self.noise is None) == (self.epsilon is None):
            raise ConfigError(
                expected_got(
                    "DP-SGD's noise",
                    "exactly one of [dp] noise or [dp] epsilon",
                    "both" if self.noise is not None else "neither",
                )
            )
        if self.noise is not None and not 0 <= self.noise < float("inf"):
            raise ConfigError(
                expected_got(label(self, "noise"), "a finite number >= 0", self.noise)
            )
        if self.epsilon is not None and not 0 < self.epsilon < float("inf"):
            raise ConfigError(
                expected_got(label(self, "epsilon"), "a finite number > 0", self.epsilon)
            )
        if not 0 < self.delta < 1:
            raise ConfigError(expected_got(label(self, "delta"), "in (0, 1)", self.delta))


ADVERSARIAL = ("none", "fgsm", "pgd")


@section("adversarial", flag_prefix="adv-")
@dataclass(frozen=True)
class AdversarialConfig:
    """Adversarial training on shares (:mod:`mpcrnn.adversarial`).  Perturbations are
    L-infinity, in scaled feature units (the declared bounds map to [-1, 1]), on valid time
    steps only."""

    method: str = setting(
        "none",
        flag="--adversarial",
        choices=ADVERSARIAL,
        help="Adversarial training on shares: FGSM or PGD perturbations.",
    )
    eps: float = setting(
        0.1, help="Perturbation radius, L-infinity, in scaled feature units (in (0, 1])."
    )
    steps: int = setting(10, help="PGD: gradient steps.")
    alpha: float | None = setting(None, help="PGD: step size; default eps / 4.")
    mix: float = setting(
        0.5, help="Share of the loss on perturbed rows: (1 - mix) L(x) + mix L(x_adv)."
    )

    @property
    def enabled(self) -> bool:
        return self.method != "none"

    @property
    def step_size(self) -> float:
        """PGD's step: ``alpha``, or ``eps / 4`` when not set."""
        return self.eps / 4 if self.alpha is None else self.alpha

    def validate(self) -> None:
        check_choices(self)
        if not (isinstance(self.eps, (int, float)) and 0 < self.eps <= 1):
            raise ConfigError(
                expected_got(label(self, "eps"), "in (0, 1] (scaled feature units)", self.eps)
            )
        if not (isinstance(self.steps, int) and 1 <= self.steps <= 100):
            raise ConfigError(
                expected_got(label(self, "steps"), "an integer in 1..100", self.steps)
            )
        if self.alpha is not None and not (
            isinstance(self.alpha, (int, float)) and 0 < self.alpha <= self.eps
        ):
            raise ConfigError(
                expected_got(label(self, "alpha"), f"in (0, eps = {self.eps:g}]", self.alpha)
            )
        if not (isinstance(self.mix, (int, float)) and 0 < self.mix <= 1):
            raise ConfigError(expected_got(label(self, "mix"), "in (0, 1]", self.mix))

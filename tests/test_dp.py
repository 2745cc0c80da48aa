"""DP-SGD inside MPC (mpcrnn.dp, protocols.arithmetic.joint_noise) against plaintext references and
Opacus.

Tolerances:
* mirror (float64, exact activations) vs torch.func per-row gradients and Opacus grad samples:
  1e-10; the clipped, summed, /E gradient vs Opacus's DPOptimizer (noise 0): 1e-6 absolute
  (Opacus divides by ||g|| + 1e-6, we by ||g||).
* shares (f = 16, polynomial activations) vs the mirror (same polynomials): per-example clipped
  gradients 5e-3, weights after DP training 5e-3 (measured 4.7e-4 and 1.7e-4: fixed-point
  truncations, the norm clip's Newton steps, CrypTen's softmax before the per-example BPTT).
* statistical tests: fixed seeds; each two-sided test has false-failure probability 1e-6 for a
  random seed, and a test function's union over its k tests is stated next to it.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from mpcrnn.backend import PlainBackend
from mpcrnn.config import ActivationConfig, DPConfig, ModelConfig, TrainConfig
from mpcrnn.model import export_state_dicts, forward_backward, init_params
from mpcrnn.train import Dataset, masks, sgd_step

MPCRNN = str(Path(sys.executable).with_name("mpcrnn"))
ALPHA = 1e-6  # false-failure probability of each statistical test


def _batch(cell="gru", layers=1, n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    cfg = ModelConfig(cell=cell, input_size=3, hidden_size=4, num_layers=layers, num_classes=3)
    x = torch.rand(n, 5, 3, generator=g, dtype=torch.float64) * 2 - 1
    lengths = torch.tensor([5, 3, 1, 5, 4, 2, 5, 5, 1, 2, 3, 4][:n])
    y = torch.arange(n) % 3
    return cfg, x, lengths, y


def _per_example(B, cfg, params, x, lengths, y):
    onehot = torch.nn.functional.one_hot(y, cfg.num_classes).double()
    m = masks(lengths, x.shape[1]).transpose(0, 1)
    grads, _ = forward_backward(B, cfg, params, x.transpose(0, 1), m, onehot, per_example=True)
    return grads


def _flat(grads, names):
    n = grads[names[0]].shape[0]
    return torch.cat([grads[k].reshape(n, -1) for k in names], 1)


# ---------------------------------------------------------------- (a) per-example gradients


@pytest.mark.filterwarnings("ignore:Full backward hook")
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_per_example_grads_match_torch_func_and_opacus_grad_samples(cell):
    """Mirror per_example=True (exact activations) == torch.func.grad of each row's loss alone
    (per row: vmap cannot batch torch's fused RNN kernels) == Opacus GradSampleModule on its DP
    layer loaded with the same weights; all 1e-10.  Rows of different lengths, 2 layers."""
    from opacus import GradSampleModule
    from opacus.layers import DPGRU, DPLSTM, DPRNN
    from torch.func import functional_call, grad

    cfg, x, lengths, y = _batch(cell, layers=2)
    params = init_params(cfg, 1)
    ours = _per_example(PlainBackend(ActivationConfig(exact=True)), cfg, params, x, lengths, y)
    model = export_state_dicts(cfg, params).double()
    named = {f"rnn.{k}": v.detach() for k, v in model.rnn.named_parameters()}
    named.update({f"fc.{k}": v.detach() for k, v in model.fc.named_parameters()})

    def loss(p, xi, li, yi):
        return torch.nn.functional.cross_entropy(
            functional_call(model, p, (xi[None], li[None])), yi[None], reduction="sum"
        )

    for r in range(len(y)):
        ref = grad(loss)(named, x[r], lengths[r], y[r])
        for k in params:
            torch.testing.assert_close(
                ours[k][r], ref[k if k.startswith("fc.") else f"rnn.{k}"], atol=1e-10, rtol=0, msg=k
            )
    dp_layer = {"rnn": DPRNN, "gru": DPGRU, "lstm": DPLSTM}[cell](
        3, 4, 2, batch_first=True
    ).double()
    dp_layer.load_state_dict(model.rnn.state_dict())  # torch's key names and layout
    model.rnn = dp_layer
    gsm = GradSampleModule(model, loss_reduction="sum")
    torch.nn.functional.cross_entropy(gsm(x, lengths), y, reduction="sum").backward()
    for name, p in gsm.named_parameters():
        k = name.removeprefix("_module.").removeprefix("rnn.")
        torch.testing.assert_close(ours[k], p.grad_sample, atol=1e-10, rtol=0, msg=k)


@pytest.mark.filterwarnings("ignore:Full backward hook")
def test_clipped_sum_matches_opacus_dp_optimizer_without_noise():
    """dp_step (mirror, exact activations, sigma = 0) == Opacus's DPOptimizer step (per-sample
    clip to C', sum, / expected batch size, SGD lr 1): the whole DP gradient, clip included.
    C' lies between the rows' norms, so some rows are clipped and some are not."""
    from opacus import GradSampleModule
    from opacus.layers import DPGRU
    from opacus.optimizers import DPOptimizer

    from mpcrnn import dp as DP

    cfg, x, lengths, y = _batch("gru", n=6)
    params = init_params(cfg, 1)
    names = list(params)
    rows = _per_example(PlainBackend(ActivationConfig(exact=True)), cfg, params, x, lengths, y)
    norms = _flat(rows, names).norm(dim=1)
    c = float(norms.median())
    assert (norms < c).any() and (norms > c).any()
    E = 4.0
    plan = DP.DPPlan(E / 12, 2, 1, 12, 0.0, c, c, 3, sum(v.numel() for v in params.values()), 16)
    tcfg = TrainConfig(optimizer="sgd", lr=1.0, momentum=0.0, clip_value=0.0, schedule="constant")
    B = PlainBackend(ActivationConfig(exact=True))
    new, _ = DP.dp_step(
        B,
        params,
        rows,
        {k: torch.zeros_like(v) for k, v in params.items()},
        tcfg,
        plan,
        DP.plain_noise(0.0, [torch.Generator().manual_seed(0)], 16),
    )
    model = export_state_dicts(cfg, params).double()
    dp_layer = DPGRU(3, 4, 1, batch_first=True).double()
    dp_layer.load_state_dict(model.rnn.state_dict())
    model.rnn = dp_layer
    gsm = GradSampleModule(model, loss_reduction="mean")
    opt = DPOptimizer(
        torch.optim.SGD(gsm.parameters(), lr=1.0),
        noise_multiplier=0.0,
        max_grad_norm=c,
        expected_batch_size=int(E),
        loss_reduction="mean",
    )
    torch.nn.functional.cross_entropy(gsm(x, lengths), y, reduction="mean").backward()
    opt.step()
    for name, p in gsm.named_parameters():
        k = name.removeprefix("_module.").removeprefix("rnn.")
        torch.testing.assert_close(new[k], p.detach(), atol=1e-6, rtol=0, msg=k)
        assert (new[k] - params[k]).abs().max() > 1e-4  # a real step happened


def clipped_rows_party(session, c):
    from mpcrnn.backend import SharedBackend
    from protocols.arithmetic.reveal import reveal
    from protocols.arithmetic.sharing import public, share

    s = session
    cfg, x, lengths, y = _batch("gru", n=6)
    src = s.world_size - 1

    def sh(v):
        return share(s, v if s.rank == src else None, src=src, shape=tuple(v.shape))

    onehot = torch.nn.functional.one_hot(y, 3).double()
    B = SharedBackend(s, ActivationConfig())
    params = {k: public(s, v) for k, v in init_params(cfg, 1).items()}
    grads, _ = forward_backward(
        B,
        cfg,
        params,
        sh(x).transpose(0, 1),
        sh(masks(lengths, 5)).transpose(0, 1),
        sh(onehot),
        per_example=True,
    )
    flat = _flat(grads, list(params))
    everyone = tuple(range(s.world_size))
    return (
        reveal(s, flat, to=everyone, what="per-example grads", why="test"),
        reveal(s, B.clip_rows(flat, c), to=everyone, what="clipped", why="test"),
    )


def _mirror_rows(c):
    from protocols.arithmetic.norm_clip import clip_rows_to_norm_plain

    cfg, x, lengths, y = _batch("gru", n=6)
    params = init_params(cfg, 1)
    flat = _flat(
        _per_example(PlainBackend(ActivationConfig()), cfg, params, x, lengths, y), list(params)
    )
    return flat, clip_rows_to_norm_plain(flat, c)


def test_per_example_clipped_grads_on_three_parties_match_mirror(parties):
    """3 parties + dealer: per-example gradients (N, D) and their clip on shares vs the mirror
    (same polynomials, float64): 5e-3; every clipped row's norm <= C (1 + 1e-3)."""
    flat_ref, _ = _mirror_rows(1.0)
    c = float(flat_ref.norm(dim=1).median())
    flat_ref, clipped_ref = _mirror_rows(c)
    for flat, clipped in parties(
        clipped_rows_party, world_size=3, provider="TTP", args=(c,), timeout_s=120
    ):
        torch.testing.assert_close(flat, flat_ref, atol=5e-3, rtol=0)
        torch.testing.assert_close(clipped, clipped_ref, atol=5e-3, rtol=0)
        assert (clipped.norm(dim=1) <= c * (1 + 1e-3)).all()
    assert (flat_ref.norm(dim=1) > c * 1.05).any() and (flat_ref.norm(dim=1) < c * 0.95).any()


# ---------------------------------------------------------------- (b) noise off == plain training


def _poisson_data(n=12, T=5):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, T, 3, generator=g, dtype=torch.float64) * 2 - 1
    lengths = torch.tensor([5, 3, 1, 5, 4, 2, 5, 5, 1, 2, 3, 4][:n])
    y = torch.nn.functional.one_hot(torch.arange(n) % 3, 3).double()
    return x, lengths, y


DP_MCFG = ModelConfig(cell="gru", input_size=3, hidden_size=4, num_classes=3)
DP_TCFG = TrainConfig(
    optimizer="sgd",
    epochs=2,
    batch_size=4,
    clip_value=0.0,
    lr=0.2,
    momentum=0.9,
    schedule="constant",
)


def _plain_on_batches(B, batches, expected_batch):
    """Non-DP training (summed batch gradient, sgd_step) on the given batches, divided by E."""
    x, lengths, y = _poisson_data()
    m = masks(lengths, x.shape[1])
    params = init_params(DP_MCFG, 0)
    vel = {k: torch.zeros_like(v) for k, v in params.items()}
    for idx in batches:
        idx = torch.as_tensor(idx)
        if len(idx):
            grads, _ = forward_backward(
                B, DP_MCFG, params, x[idx].transpose(0, 1), m[idx].transpose(0, 1), y[idx]
            )
        else:
            grads = {k: torch.zeros_like(v) for k, v in params.items()}
        params, vel = sgd_step(B, params, grads, vel, DP_TCFG, expected_batch)
    return params


def _noise_off_plan(world_size):
    from mpcrnn import dp as DP

    D = sum(v.numel() for v in init_params(DP_MCFG, 0).values())
    return DP.make_plan(DPConfig(enabled=True, clip=1e6, noise=0.0), DP_TCFG, 12, D, world_size, 16)


@pytest.mark.parametrize("exact", [True, False])
def test_noise_off_dp_equals_plain_training_on_the_same_batches_mirror(exact):
    """sigma = 0 and a clip no row reaches: DP-SGD (per-example grads, clip, sum, / E) ==
    plain SGD with the batch-summed gradient / E on the same Poisson batches, to 1e-12."""
    from mpcrnn import dp as DP

    x, lengths, y = _poisson_data()
    plan = _noise_off_plan(3)
    B = PlainBackend(ActivationConfig(exact=exact))
    got, _, batches = DP.train_dp(
        B,
        DP_MCFG,
        DP_TCFG,
        plan,
        Dataset(x, masks(lengths, 5), y),
        init_params(DP_MCFG, 0),
        DP.plain_noise(0.0, [torch.Generator().manual_seed(i) for i in range(3)], 16),
        77,
    )
    assert (
        len(batches) == 2 * plan.steps_per_epoch and len({len(b) for b in batches}) > 1
    )  # Poisson: sizes vary
    want = _plain_on_batches(B, batches, plan.expected_batch)
    for k in want:
        torch.testing.assert_close(got[k], want[k], atol=1e-12, rtol=0, msg=k)


def test_dp_runs_the_default_cosine_schedule_past_its_warmup():
    """The step count reaches the learning-rate schedule (it once got the noisy gradient sum
    instead, and the cosine schedule failed at the first step after warm-up)."""
    from dataclasses import replace

    from mpcrnn import dp as DP
    from mpcrnn.train import lr_at

    x, lengths, y = _poisson_data()
    tcfg = replace(DP_TCFG, schedule="cosine", warmup_steps=1)
    plan = _noise_off_plan(3)
    seen = []
    B = PlainBackend(ActivationConfig())
    DP.train_dp(
        B,
        DP_MCFG,
        tcfg,
        plan,
        Dataset(x, masks(lengths, 5), y),
        init_params(DP_MCFG, 0),
        DP.plain_noise(0.0, [torch.Generator().manual_seed(i) for i in range(3)], 16),
        77,
        progress=seen.append,
    )
    total = 2 * plan.steps_per_epoch
    assert len(seen) == total > tcfg.warmup_steps and lr_at(tcfg, total, total) < tcfg.lr


def dp_train_party(session, sigma, clip, seed):
    rank = session.rank
    from mpcrnn import dp as DP
    from mpcrnn.backend import SharedBackend
    from protocols.arithmetic.reveal import reveal
    from protocols.arithmetic.sharing import public, share

    s = session
    x, lengths, y = _poisson_data()

    def sh(v):
        return share(s, v if s.rank == 1 else None, src=1, shape=tuple(v.shape))

    data = Dataset(sh(x), sh(masks(lengths, 5)), sh(y))
    D = sum(v.numel() for v in init_params(DP_MCFG, 0).values())
    plan = DP.make_plan(
        DPConfig(enabled=True, clip=clip, noise=sigma), DP_TCFG, 12, D, s.world_size, 16
    )
    params = {k: public(s, v) for k, v in init_params(DP_MCFG, 0).items()}
    noise = DP.shared_noise(s, plan.noise_std, torch.Generator().manual_seed(seed + rank))
    before = s.stats.total_rounds
    params, _, batches = DP.train_dp(
        SharedBackend(s, ActivationConfig()), DP_MCFG, DP_TCFG, plan, data, params, noise, 77
    )
    rounds = s.stats.total_rounds - before
    everyone = tuple(range(s.world_size))
    return (
        {k: reveal(s, v, to=everyone, what=k, why="test") for k, v in params.items()},
        batches,
        rounds,
        s.ledger.to_json(),
    )


def test_noise_off_dp_on_three_parties_equals_plain_training(parties):
    """3 parties + dealer, 2 epochs of Poisson batches, sigma 0, a clip no row reaches: equals
    plain (non-DP) mirror training on the same batches, 5e-3; nothing opened during training."""
    off = parties(dp_train_party, world_size=3, provider="TTP", args=(0.0, 1e6, 0), timeout_s=150)
    want = _plain_on_batches(
        PlainBackend(ActivationConfig()), off[0][1], _noise_off_plan(3).expected_batch
    )
    for opened, _batches, _, ledger in off:
        for k in want:
            torch.testing.assert_close(opened[k], want[k], atol=5e-3, rtol=0, msg=k)
        assert [e["what"] for e in ledger] == list(
            want
        )  # only the test's own openings, after training


def test_dp_with_noise_on_three_parties_matches_mirror_with_the_same_draws(parties):
    """Noise on (sigma 1, C 0.3, each party's generator seeded): equals the mirror DP run with the
    same three generators (so the joint noise is exactly the sum of the parties' draws), 5e-3,
    and differs clearly from the noise-free run."""
    from mpcrnn import dp as DP

    x, lengths, y = _poisson_data()
    on = parties(dp_train_party, world_size=3, provider="TTP", args=(1.0, 0.3, 40), timeout_s=150)
    D = sum(v.numel() for v in init_params(DP_MCFG, 0).values())
    plan = DP.make_plan(DPConfig(enabled=True, clip=0.3, noise=1.0), DP_TCFG, 12, D, 3, 16)
    gens = [torch.Generator().manual_seed(40 + r) for r in range(3)]
    mirror, _, _ = DP.train_dp(
        PlainBackend(ActivationConfig()),
        DP_MCFG,
        DP_TCFG,
        plan,
        Dataset(x, masks(lengths, 5), y),
        init_params(DP_MCFG, 0),
        DP.plain_noise(plan.noise_std, gens, 16),
        77,
    )
    for opened, _, _, _ in on:
        for k in mirror:
            torch.testing.assert_close(opened[k], mirror[k], atol=5e-3, rtol=0, msg=k)
    plain = _plain_on_batches(PlainBackend(ActivationConfig()), on[0][1], plan.expected_batch)
    assert (
        max((on[0][0][k] - plain[k]).abs().max() for k in plain) > 0.05
    )  # the noise changed the model


# ---------------------------------------------------------------- (c) joint noise


NOISE_N = 200_000
NOISE_STD = 0.8  # s = sigma C


def noise_party(session):
    rank = session.rank
    from protocols.arithmetic.joint_noise import joint_gaussian
    from protocols.arithmetic.reveal import reveal

    s = session
    z = joint_gaussian(s, (NOISE_N,), NOISE_STD, torch.Generator().manual_seed(1000 + rank))
    rounds = s.stats.total_rounds
    return reveal(s, z, to=tuple(range(s.world_size)), what="joint noise", why="test"), rounds


def _chi2_variance_ok(sample: torch.Tensor, var: float, alpha: float = ALPHA) -> tuple[bool, float]:
    """Two-sided chi-square test of Var(sample) == var (known mean 0): sum z^2 / var ~ chi2(n)."""
    from scipy.stats import chi2

    n = sample.numel()
    stat = float((sample.double() ** 2).sum()) / var
    return chi2.ppf(alpha / 2, n) <= stat <= chi2.ppf(1 - alpha / 2, n), stat / n


def test_joint_noise_variance_and_one_party_removed(parties):
    """3 parties (no dealer needed: zero rounds).  (1) The opened noise is exactly the sum of
    the parties' own draws (regenerated from their seeds here, 1e-9).  (2) Var(z) matches
    p/(p-1) s^2, chi-square, two-sided.  (3) For each party j, z - z_j has variance s^2 (two-sided,
    so in particular not below the target).  (4) Mean 0 (z-test).  5 tests at 1e-6 each: union
    false-failure probability 5e-6 for a random seed; with these fixed seeds it is deterministic."""
    from scipy.stats import norm

    from protocols.arithmetic.joint_noise import own_draw

    outs = parties(noise_party, world_size=3, provider="TFP", timeout_s=60)
    z, rounds = outs[0]
    assert rounds == 0  # the noise costs no communication
    own = [
        own_draw((NOISE_N,), NOISE_STD, 3, 16, torch.Generator().manual_seed(1000 + r))
        for r in range(3)
    ]
    torch.testing.assert_close(z, sum(own), atol=1e-9, rtol=0)
    ok, ratio = _chi2_variance_ok(z, 1.5 * NOISE_STD**2)
    assert ok, ratio
    for j in range(3):
        ok, ratio = _chi2_variance_ok(z - own[j], NOISE_STD**2)
        assert ok, (j, ratio)
    zstat = float(z.mean()) / (math.sqrt(1.5) * NOISE_STD / math.sqrt(NOISE_N))
    assert abs(zstat) < norm.ppf(1 - ALPHA / 2), zstat


def test_os_entropy_normals_are_standard():
    """The real-run sampler (Box-Muller on os.urandom, no seed): variance 1 (chi-square) and
    tails (|z| > 3 rate, binomial).  Unseeded, so this test can fail by chance: 2e-6 in total."""
    from scipy.stats import binom

    from protocols.arithmetic.joint_noise import standard_normal

    z = standard_normal((200_000,), None)
    ok, ratio = _chi2_variance_ok(z, 1.0)
    assert ok, ratio
    p3 = 2 * 0.0013498980316301  # P(|Z| > 3)
    k = int((z.abs() > 3).sum())
    assert binom.ppf(ALPHA / 2, z.numel(), p3) <= k <= binom.ppf(1 - ALPHA / 2, z.numel(), p3), k


def test_laplace_scores_scale():
    """predict --dp-epsilon: noise = released - true is Laplace(0, 2/epsilon): Kolmogorov-Smirnov
    against scipy's Laplace, p-value > 1e-6 (seeded)."""
    from scipy.stats import kstest, laplace

    from mpcrnn.dp import laplace_scores

    probs = torch.softmax(
        torch.randn(20_000, 9, generator=torch.Generator().manual_seed(2), dtype=torch.float64), 1
    )
    out = laplace_scores(probs, 0.5, torch.Generator().manual_seed(3))
    res = kstest((out - probs).reshape(-1).numpy(), laplace(scale=2 / 0.5).cdf)
    assert res.pvalue > ALPHA, res


# ---------------------------------------------------------------- (d) accounting = Opacus


# PRV's epsilon and its sigma search (both ours and Opacus's) take ~4 s: `slow`, out of
# `make test-fast`; RDP stays in it
@pytest.mark.parametrize("accountant", ["rdp", pytest.param("prv", marks=pytest.mark.slow)])
def test_epsilon_and_sigma_equal_opacus_called_directly(accountant):
    """Our epsilon == Opacus's accountant stepped by hand (as PrivacyEngine does); our sigma ==
    get_noise_multiplier; the sigma chosen for a target spends at most the target."""
    from opacus.accountants import PRVAccountant, RDPAccountant
    from opacus.accountants.utils import get_noise_multiplier

    from mpcrnn import dp as DP

    q, steps = DP.poisson_rate(270, 32)
    assert (q, steps) == (1 / 9, 9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        acc = {"rdp": RDPAccountant, "prv": PRVAccountant}[accountant]()
        for _ in range(6 * steps):
            acc.step(noise_multiplier=1.1, sample_rate=q)
        want = acc.get_epsilon(delta=1e-5)
        sigma_want = get_noise_multiplier(
            target_epsilon=3.0,
            target_delta=1e-5,
            sample_rate=q,
            steps=6 * steps,
            accountant=accountant,
        )
    assert DP.epsilon_spent(1.1, q, 6 * steps, 1e-5, accountant) == want
    sigma = DP.noise_for_epsilon(3.0, 1e-5, q, 6 * steps, accountant)
    assert sigma == sigma_want
    assert 2.9 <= DP.epsilon_spent(sigma, q, 6 * steps, 1e-5, accountant) <= 3.0


def test_report_states_both_epsilons_from_opacus():
    """The report's epsilon is Opacus's for (sigma, q, steps); the schedule-aware epsilon is
    Opacus's at q = 1 over the most steps any row took part in (counted here independently)."""
    from opacus.accountants import RDPAccountant

    from mpcrnn import dp as DP

    dpc = DPConfig(enabled=True, clip=1.0, epsilon=3.0)
    plan = DP.make_plan(dpc, TrainConfig(epochs=3, batch_size=32), 270, 4713, 3, 16)
    batches = [
        b
        for e in range(3)
        for b in DP.poisson_batches(270, plan.sample_rate, plan.steps_per_epoch, 5, e)
    ]
    rep = DP.report(dpc, plan, batches)
    k = max(sum(int(r in set(b.tolist())) for b in batches) for r in range(270))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        a = RDPAccountant()
        a.history = [(plan.noise_multiplier, 1.0, k)]
        aware = a.get_epsilon(delta=1e-5)
    assert rep["epsilon_vs_schedule_aware_party"]["max_steps_of_any_row"] == k
    assert rep["epsilon_vs_schedule_aware_party"]["epsilon"] == pytest.approx(aware, rel=1e-12)
    assert rep["epsilon"] <= 3.0 < rep["epsilon_vs_schedule_aware_party"]["epsilon"]
    assert rep["sampling"]["method"] == "poisson" and rep["sampling"]["steps"] == 27
    assert rep["clip_applied"] < rep["clip_norm"] == 1.0
    assert rep["noise"]["std_left_after_any_one_party_subtracts_its_own"] == pytest.approx(
        plan.noise_multiplier
    )
    sizes = np.array([len(b) for b in batches])  # Poisson membership: mean q N, binomial
    from scipy.stats import binom

    total = int(sizes.sum())
    n_trials = 270 * len(batches)
    assert (
        binom.ppf(ALPHA / 2, n_trials, plan.sample_rate)
        <= total
        <= binom.ppf(1 - ALPHA / 2, n_trials, plan.sample_rate)
    )


# ---------------------------------------------------------------- end to end: run_training with DP


def run_dp_party(session):
    rank = session.rank
    import collections
    import inspect

    from crypten.mpc import MPCTensor
    from crypten.mpc.primitives import ArithmeticSharedTensor, BinarySharedTensor

    from mpcrnn import data as D
    from mpcrnn.config import RunConfig
    from mpcrnn.secure import run_training

    opened = (
        collections.Counter()
    )  # every CrypTen opening, by (class, function, caller), as in test_security
    for cls in (ArithmeticSharedTensor, BinarySharedTensor, MPCTensor):
        for name in ("reveal", "reveal_batch", "get_plain_text"):
            if hasattr(cls, name):
                orig = inspect.getattr_static(cls, name)
                fn = orig.__func__ if isinstance(orig, staticmethod) else orig

                def wrapper(*a, _fn=fn, _key=(cls.__name__, name), **k):
                    opened[(*_key, inspect.stack()[1].function)] += 1
                    return _fn(*a, **k)

                setattr(
                    cls, name, staticmethod(wrapper) if isinstance(orig, staticmethod) else wrapper
                )
    spec = D.JAPANESE_VOWELS_SPEC
    part = D.scale_features(D.split_rows(D.japanese_vowels("train"), [6, 6, 6], 0)[rank], spec)
    part = D.SequenceData(
        part.x[:, :6], np.minimum(part.lengths, 6), part.y, part.classes
    )  # T = 6: fast
    spec6 = D.DataSpec(**{**spec.__dict__, "max_len": 6})
    cfg = RunConfig(
        model=ModelConfig(hidden_size=4),
        train=TrainConfig(epochs=1, batch_size=6),
        spec=spec6,
        dp=DPConfig(enabled=True, clip=1.0, epsilon=8.0),
        reveal_to=(0, 1),
    )
    s = session
    result = run_training(s, cfg, part)
    return (
        result["dp"],
        s.ledger.to_json(),
        result["params"] is not None,
        dict(opened),
        dict(s.stats.rounds),
    )


def test_run_training_with_dp_opens_only_the_final_weights_and_reports(parties):
    """run_training with --dp-epsilon 8 (3 parties + dealer): the ledger holds only the final
    weights, CrypTen opened only masked values inside its protocol steps (if any), the norm
    clip's comparisons ran as our masked sign-bit openings, and every party computed the same
    public dp report."""
    from test_security import CRYPTEN_MASKED_OPENINGS

    outs = parties(run_dp_party, world_size=3, provider="TTP", timeout_s=150)
    for rank, (rep, ledger, got_model, crypten_open, kinds) in enumerate(outs):
        assert got_model == (rank in (0, 1))
        assert set(crypten_open) <= CRYPTEN_MASKED_OPENINGS, crypten_open
        assert kinds["and"] > 0 and kinds["b2a"] > 0, (
            kinds
        )  # the clip's comparisons (XOR-masked openings)
        assert [e["what"] for e in ledger] == [
            f"final weight {k}"
            for k in (
                "weight_ih_l0",
                "weight_hh_l0",
                "bias_ih_l0",
                "bias_hh_l0",
                "fc.weight",
                "fc.bias",
            )
        ]
        assert rep == outs[0][0]  # every party computes the same public report
    rep = outs[0][0]
    assert (
        rep["epsilon"] <= 8.0
        and rep["delta"] == 1e-5
        and rep["accountant"].endswith("RDPAccountant")
    )
    assert rep["sampling"]["rows"] == 18 and rep["sampling"]["steps"] == 3
    for key in (
        "noise_multiplier",
        "clip_norm",
        "epsilon_vs_schedule_aware_party",
        "noise",
        "delta_excludes",
    ):
        assert key in rep


# ---------------------------------------------------------------- (e) CLI errors


def _check(args, pattern):
    proc = subprocess.run([MPCRNN, *args], check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), proc.stderr
    assert re.search(pattern, lines[-1]), lines[-1]


@pytest.mark.parametrize(
    "flags,pattern",
    [
        (
            ["--dp-epsilon", "-1"],
            r"\[dp\] epsilon \(--dp-epsilon\): expected a finite number > 0, got -1",
        ),
        (
            ["--dp-epsilon", "1", "--dp-noise", "1"],
            r"expected exactly one of \[dp\] noise \(--dp-noise\) or \[dp\] epsilon "
            r"\(--dp-epsilon\), got both",
        ),
        (
            ["--dp-delta", "1e-5"],
            r"expected \[dp\] epsilon \(--dp-epsilon\) or \[dp\] noise \(--dp-noise\)",
        ),
        (
            ["--dp-noise", "1", "--dp-clip", "0"],
            r"\[dp\] clip \(--dp-clip\): expected a finite number > 0, got 0",
        ),
        (
            ["--dp-epsilon", "1", "--dp-delta", "2"],
            r"\[dp\] delta \(--dp-delta\): expected in \(0, 1\), got 2",
        ),
        (
            ["--dp-noise", "nan"],
            r"\[dp\] noise \(--dp-noise\): expected a finite number >= 0, got nan",
        ),
    ],
)
def test_bad_dp_flags_train(flags, pattern, tmp_path, subprocesses):
    _check(
        ["train", "--out", str(tmp_path), "--hidden-size", "4", "--epochs", "1", *flags], pattern
    )


def test_bad_dp_flags_party_and_predict(tmp_path, subprocesses):
    _check(
        [
            "party",
            "--rank",
            "0",
            "--parties",
            "2",
            "--rendezvous",
            "tcp://127.0.0.1:1",
            "--data",
            "x.npz",
            "--dp-epsilon",
            "0",
        ],
        r"\[dp\] epsilon \(--dp-epsilon\): expected a finite number > 0, got 0",
    )
    _check(
        ["predict", "--model", "m.pt", "--data", "x.npz", "--dp-epsilon", "-2"],
        r"prediction epsilon \(--dp-epsilon\): expected a finite number > 0, got -2",
    )


def test_predict_with_dp_epsilon_releases_noisy_scores(tmp_path, subprocesses):
    """A real model file through ``mpcrnn predict --dp-epsilon``: noisy scores (not the softmax),
    predictions from them, and the per-query statement."""
    import json
    from dataclasses import asdict

    from mpcrnn import data as D

    spec = D.JAPANESE_VOWELS_SPEC
    cfg = ModelConfig(hidden_size=4)
    params = init_params(cfg, 0)
    path = tmp_path / "m.pt"
    torch.save(
        {
            "model_config": asdict(cfg),
            "activation": asdict(ActivationConfig()),
            "spec": asdict(spec),
            "state_dict": {k: v.float() for k, v in params.items()},
        },
        path,
    )
    rows = D.split_rows(D.japanese_vowels("test"), [5], 0)[0]
    D.write_npz(rows, tmp_path / "d.npz")
    out = subprocesses.run(
        [
            MPCRNN,
            "predict",
            "--model",
            str(path),
            "--data",
            str(tmp_path / "d.npz"),
            "--dp-epsilon",
            "2",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    scores = torch.tensor(res["scores"])
    assert scores.shape == (5, 9) and len(res["predictions"]) == 5
    assert res["dp"]["epsilon_per_query"] == 2 and res["dp"]["laplace_scale"] == 1.0
    assert (
        res["dp"]["epsilon_all_queries_basic_composition"] == 10
        and "per-query" in res["dp"]["note"]
    )
    assert (scores.sum(1) - 1).abs().max() > 1e-3  # noise was added (softmax rows sum to 1)
    assert [res["predictions"][i] for i in range(5)] == [
        spec.classes[int(j)] for j in scores.argmax(1)
    ]


def test_dp_rows_benchmark_smoke(tmp_path, subprocesses):
    """benchmarks/dp_rows.py --smoke, so the DP rows of the harness cannot rot: one Opacus and one
    mpcrnn-DP row at epsilon 8, both spending at most 8 with the same sigma."""
    import json

    root = Path(__file__).resolve().parents[1]
    res = subprocesses.run(
        [
            sys.executable,
            str(root / "benchmarks" / "dp_rows.py"),
            "--smoke",
            "--out",
            str(tmp_path),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    rows = json.loads((tmp_path / "dp_rows.json").read_text())["data"]
    assert [r["row"].split()[0] for r in rows] == ["Opacus", "mpcrnn-DP"]
    assert all(r["epsilon"] <= 8.0 and 0.0 <= r["test_accuracy"] <= 1.0 for r in rows)
    assert rows[0]["noise_multiplier"] == rows[1]["noise_multiplier"]
    assert "| mpcrnn-DP" in (tmp_path / "dp_rows.md").read_text()

"""DP-SGD on text: the first system of the brief (an Embedding -> LSTM classifier) on the SMS
demo's data at epsilon 3 and 8: mpcrnn-DP's plaintext mirror and, with ``--mpc``, mpcrnn-DP on
shares (3 parties + dealer), next to Opacus on the same model.

Run as a file::

    .venv/bin/python benchmarks/text_dp_rows.py --seeds 0 1 2 [--mpc] [--epsilons 3 8]

Same data (``--demo sms``: 500 train / 500 test rows, V = 96, max_len 40), model (Embedding 16
+ LSTM 32 + Linear, the same initial weights), optimizer (Adam lr 0.05, 6 epochs) and privacy
parameters on every row: delta 1e-5, clip C = 1 per example, Poisson sampling at
q = 1 / ceil(N / B) for ceil(N / B) steps an epoch, sigma from Opacus's get_noise_multiplier
(RDP accountant).  Opacus: ``nn.Embedding`` + ``opacus.layers.DPLSTM`` + ``nn.Linear`` on token
ids, float32, exact activations, its own Poisson sampler (same q, other draws).  mpcrnn-DP:
one-hot rows times the embedding table (the same function), the run's polynomials, noise of
total variance p / (p - 1) = 1.5 times Opacus's (docs/dp.md).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import common
import numpy as np
import torch

DELTA = 1e-5


def _config(seed: int, epsilon: float):
    from launch.runfile import build
    from mpcrnn.text_demo import with_demo_settings

    raw = {
        "run": {"insecure_plaintext_transport": True},
        "model": {"cell": "lstm"},
        "dp": {"epsilon": epsilon, "delta": DELTA},
    }
    return build(with_demo_settings(raw), {"seed": seed})


def _data(cfg, seed: int, work: Path):
    from mpcrnn import data as D
    from mpcrnn.secure import concat
    from mpcrnn.text_demo import write_sms_party_files

    train_files, test_files, _ = write_sms_party_files(cfg.parties, seed, work)

    def load(fs):
        return D.scale_features(concat([D.load_party_file(f, cfg.spec) for f in fs]), cfg.spec)

    return train_files, test_files, load(train_files), load(test_files)


def mirror_row(cfg, tr, te, seed: int) -> dict:
    """mpcrnn-DP in plaintext: the mirror of the run on shares (polynomials, joint noise)."""
    from mpcrnn.backend import PlainBackend
    from mpcrnn.dp import make_plan, plain_noise, train_dp
    from mpcrnn.model import init_params
    from mpcrnn.train import plain_dataset, predict_plain

    params = init_params(cfg.model, cfg.train.seed)
    n_params = sum(v.numel() for v in params.values())
    plan = make_plan(cfg.dp, cfg.train, len(tr.y), n_params, cfg.parties, cfg.frac_bits)
    gens = [torch.Generator().manual_seed(10_000 * seed + r) for r in range(cfg.parties)]
    B = PlainBackend(cfg.activation)
    ds = plain_dataset(tr.x, tr.lengths, tr.y, cfg.model)
    noise = plain_noise(plan.noise_std, gens, cfg.frac_bits)
    params, _, _ = train_dp(B, cfg.model, cfg.train, plan, ds, params, noise, seed)
    pred = predict_plain(B, cfg.model, params, te.x, te.lengths).argmax(1).numpy()
    return {"accuracy": float((pred == te.y).mean()), "sigma": plan.noise_multiplier}


class _OpacusText(torch.nn.Module):
    """Embedding + DPLSTM + Linear on token ids: the exported model's function."""

    def __init__(self, exported) -> None:
        from opacus.layers import DPLSTM

        super().__init__()
        self.embedding = torch.nn.Embedding(*exported.embedding.weight.shape)
        self.embedding.load_state_dict(exported.embedding.state_dict())
        rnn = exported.rnn
        self.rnn = DPLSTM(rnn.input_size, rnn.hidden_size, rnn.num_layers, batch_first=True)
        self.rnn.load_state_dict(rnn.state_dict())
        self.fc = exported.fc

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.embedding(ids))
        idx = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, out.shape[-1])
        return self.fc(out.gather(1, idx).squeeze(1))


def opacus_row(cfg, tr, te, seed: int) -> dict:
    from opacus import PrivacyEngine

    from mpcrnn.model import export_state_dicts, init_params

    model = _OpacusText(export_state_dicts(cfg.model, init_params(cfg.model, cfg.train.seed)))
    ids = torch.as_tensor(tr.x.argmax(-1))  # one-hot rows -> token ids (padding: id 0, unread)
    ds = torch.utils.data.TensorDataset(ids, torch.as_tensor(tr.lengths), torch.as_tensor(tr.y))
    loader = torch.utils.data.DataLoader(ds, batch_size=cfg.train.batch_size)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    with warnings.catch_warnings():  # Opacus warns that secure_mode is off: fine for a baseline
        warnings.simplefilter("ignore")
        engine = PrivacyEngine(accountant=cfg.dp.accountant)
        torch.manual_seed(seed)
        model, opt, loader = engine.make_private_with_epsilon(
            module=model,
            optimizer=opt,
            data_loader=loader,
            target_epsilon=cfg.dp.epsilon,
            target_delta=cfg.dp.delta,
            epochs=cfg.train.epochs,
            max_grad_norm=cfg.dp.clip,
            poisson_sampling=True,
        )
        for _ in range(cfg.train.epochs):
            for x, lengths, y in loader:
                opt.zero_grad()
                if len(y):
                    torch.nn.functional.cross_entropy(model(x, lengths), y).backward()
                opt.step()
        spent = engine.get_epsilon(cfg.dp.delta)
    model.eval()
    with torch.no_grad():
        test_ids = torch.as_tensor(te.x.argmax(-1))
        pred = model(test_ids, torch.as_tensor(te.lengths)).argmax(1).numpy()
    return {"accuracy": float((pred == te.y).mean()), "sigma": opt.noise_multiplier, "eps": spent}


def mpc_row(cfg, train_files, test_files, work: Path) -> dict:
    from launch.launcher import launch_local

    t0 = time.perf_counter()
    reports = launch_local(cfg, train_files, test_files, str(work), show_progress=False)
    tests = [r["local_test"] for r in reports if "local_test" in r]
    right = sum(t["accuracy_exact"] * t["rows"] for t in tests)
    dp = next(r["dp"] for r in reports if "dp" in r)
    return {
        "accuracy": right / sum(t["rows"] for t in tests),
        "epsilon": dp["epsilon"],
        "seconds": time.perf_counter() - t0,
    }


def markdown(rows: list[dict]) -> str:
    lines = [
        "Test accuracy on the 500 balanced test rows (chance 50%), delta 1e-5, C = 1, "
        "Embedding 16 + LSTM 32, Adam lr 0.05, 6 epochs of Poisson batches (q = 1/16).",
        "",
        "| epsilon | seed | sigma | Opacus (plaintext) | mpcrnn-DP mirror | mpcrnn-DP on shares "
        "| shares s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mpc = r.get("mpc")
        lines.append(
            f"| {r['epsilon']:g} | {r['seed']} | {r['mirror']['sigma']:.3f} "
            f"| {100 * r['opacus']['accuracy']:.1f}% | {100 * r['mirror']['accuracy']:.1f}% | "
            + (f"{100 * mpc['accuracy']:.1f}% | {mpc['seconds']:.0f} |" if mpc else "- | - |")
        )
    for eps in sorted({r["epsilon"] for r in rows}):
        acc = {
            k: [r[k]["accuracy"] for r in rows if r["epsilon"] == eps] for k in ("opacus", "mirror")
        }
        lines.append(
            f"| {eps:g} | mean | | {100 * np.mean(acc['opacus']):.1f}% "
            f"| {100 * np.mean(acc['mirror']):.1f}% | | |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], parents=[common.parent(smoke=False, seeds=(0, 1, 2))]
    )
    ap.add_argument("--epsilons", nargs="+", type=float, default=[3.0, 8.0])
    ap.add_argument("--mpc", action="store_true", help="also on shares (minutes per run)")
    ap.add_argument("--mpc-seeds", nargs="+", type=int, default=[0], help="seeds run on shares")
    args = common.parse(ap)
    torch.set_num_threads(1)
    rows = []
    for eps in args.epsilons:
        for seed in args.seeds:
            cfg = _config(seed, eps)
            work = Path(tempfile.mkdtemp(prefix="mpcrnn-textdp-"))
            train_files, test_files, tr, te = _data(cfg, seed, work)
            row = {"epsilon": eps, "seed": seed}
            row["opacus"] = opacus_row(cfg, tr, te, seed)
            row["mirror"] = mirror_row(cfg, tr, te, seed)
            if args.mpc and seed in args.mpc_seeds:
                row["mpc"] = mpc_row(cfg, train_files, test_files, work)
            rows.append(row)
            print(row, flush=True)
            common.write_results("text_dp_rows", markdown(rows), rows, args, "DP-SGD on text")
    print((Path(args.out) / "text_dp_rows.md").read_text())


if __name__ == "__main__":
    main()

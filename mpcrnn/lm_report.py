"""The run report of a language model (``[data] kind = "text-lm"``): held-out bits per
character pooled from the parties' own evaluation sums, and (demo) the plaintext baselines and
generated samples.

Pooled as accuracy is: each party evaluates the opened model on its own test text and reports
two sums (bits, predicted tokens); the report adds them.  A party's text never leaves it.
"""

from __future__ import annotations

from mpcrnn.text_lm import pooled_bpc

SAMPLE_TOKENS = 120  # the demo's generated samples
SAMPLE_TEMPERATURE = 0.8


def test_metrics(cfg, parties: list[dict], summary: dict, echo) -> None:
    """``MPC model test bits per character ...`` from every party's ``local_test`` sums."""
    tests = [p["local_test"] for p in parties if "local_test" in p]
    if not tests:
        return
    tokens = sum(t["tokens"] for t in tests)
    exact, poly = pooled_bpc(tests, "bits_exact"), pooled_bpc(tests, "bits_polynomial")
    who = "FedAvg" if cfg.mode == "fedavg" else "MPC"
    summary["test_bits_per_char"] = {
        "tokens": tokens,
        f"{who.lower()}_model_exact_activations": exact,
        f"{who.lower()}_model_polynomial": poly,
    }
    echo(
        f"  {who} model test bits per character ({tokens} predicted tokens, pooled from each "
        f"party's local evaluation): {exact:.3f} (torch, exact activations), {poly:.3f} "
        "(polynomial)"
    )


def baseline(cfg, summary: dict, train_files, test_files, echo) -> dict:
    """The demo's plaintext mirror and torch-exact model on the pooled rows (same seed and
    schedule), tested on the pooled test files; then a sample of each model's text."""
    from mpcrnn import data as D
    from mpcrnn.model import export_state_dicts
    from mpcrnn.secure import concat, evaluate_local, train_plain_mirror

    pooled = [
        concat([D.load_party_file(f, cfg.spec) for f in files])
        for files in (train_files, [f for f in test_files or () if f])
    ]
    cell = cfg.model.cell
    exact_params = train_plain_mirror(cfg, pooled[0], exact=True)
    exact = pooled_bpc(
        [evaluate_local(cfg, exact_params, pooled[1], polynomial=False)], "bits_exact"
    )
    if cfg.mode == "fedavg":
        out = {"centralized_plaintext_exact": exact}
        echo(
            f"  centralized plaintext (all rows pooled, torch-exact {cell.upper()}, "
            f"{cfg.train.epochs} epochs): {exact:.3f} bits per character"
        )
    else:
        mirror = evaluate_local(cfg, train_plain_mirror(cfg, pooled[0], exact=False), pooled[1])
        out = {
            "plaintext_mirror_polynomial": pooled_bpc([mirror], "bits_polynomial"),
            f"plaintext_exact_{cell}": exact,
        }
        echo(
            f"  plaintext, same seed and schedule: {out['plaintext_mirror_polynomial']:.3f} "
            f"(mirror, polynomial), {exact:.3f} (torch {cell.upper()}, exact) bits per character"
        )
    models = [p["model_file"] for p in summary["parties"] if "model_file" in p]
    if models:
        from mpcrnn.model_file import read_model_file

        plain = export_state_dicts(cfg.model, exact_params).double()
        out["samples"] = samples(cfg, read_model_file(models[0])[2], plain, echo)
    return out


def samples(cfg, mpc_model, plain_model, echo, prompt: str = "\n") -> dict:
    """The same prompt, seed and temperature on the MPC model and the plaintext model."""
    from mpcrnn.language_model import generate
    from mpcrnn.text import tokenizer_for

    tok = tokenizer_for(cfg.spec)
    out = {}
    for name, model in (("mpc", mpc_model), ("plaintext", plain_model)):
        ids = generate(model, tok.encode(prompt), SAMPLE_TOKENS, SAMPLE_TEMPERATURE, seed=0)
        out[name] = tok.decode(ids)
        echo(f"  sample ({name} model, temperature {SAMPLE_TEMPERATURE}, seed 0):")
        echo("    | " + out[name].replace("\n", "\n    | "))
    return out

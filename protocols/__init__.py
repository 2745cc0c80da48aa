"""MPC building blocks on CrypTen, with no knowledge of RNNs.

Layers (a lower layer never imports a higher one)::

    launch     CLI and the party launcher: wires processes   (imports mpcrnn, protocols)
    mpcrnn     cells, model, losses, optimizers, training     (imports protocols)
    protocols  this package                                   (imports neither)

The package is four concerns, one folder each (CrypTen's ``mpc/``, ``communicator/`` and
``mpc/provider/`` are the model), from the bottom up::

    (glue, top level)
    errors          typed errors (ProtocolError: a broken invariant; PartyError: a lost peer)
    runtime         the one door to CrypTen: torch-2.x shim, fast config, version checks
    stats           rounds/bytes counters, by kind
    session         the per-party state every protocol takes: MpcSession

    network/        the run's network
      identity        keys, self-signed certificates and their pinned fingerprints (keygen)
      handshake       who is on the other end of a connection: hellos, pins, mutual TLS 1.3
      channels        the run's network: rendezvous and one connection per pair of processes
      links           framed messages over those connections (masked openings, everything else)
      heartbeat       liveness: one byte per peer every 2 s on a connection of its own
      communicator    CrypTen's communicator over the links (no torch.distributed)
      public_exchange public metadata between the data parties (digest, counts, epochs)
      parties         joining a run (mesh, communicator, seeds) with timeouts

    randomness/     correlated randomness (where a new provider goes)
      requests        typed randomness requests (mask, product, AND, wraps, bit, mask product)
      provider        the interface that answers them: one method per kind, one dispatch
      streams         the seeds and PRG streams each data party shares with the dealer
      triples         a party's randomness: from the dealer (TTP, step plans) or party 0 (TFP)
      dealer          the dealer process: its answers and its loop
      dealer_checks   the dealer's bounds on what party 0 may ask
      crypten_rng     CrypTen's secret draws from AES-CTR streams
      he_triples      --provider he: the two data parties make every kind themselves
      he_context      BFV parameters, keys and SEAL's bytes (TenSEAL's sealapi)
      he_crt          Z_2^64 <-> residues of the plaintext primes, and the statistical masks
      he_products     exact products of one party's operand and the other's, under BFV
      he_matmul       a step's matrix products stacked by shared operand, cheaper orientation
      he_slots        a step's elementwise products: shared masks encrypted once, squares halved
      he_workers      those products on a party's own worker processes
      ot_extension    random OT extension (IKNP) and AND triples from it
      he_prefetch     the next step's HE randomness on a thread, over its own links
      he_crypten      CrypTen's own operations take their tuples from he_triples

    arithmetic/     computing on shares
      fixed_point     encoding and the ring's safe range
      sharing         secret-sharing a party's own values; public constants (held by party 0)
      reveal          the only place values are opened; the reveal ledger
      truncation      batched truncation after products
      multiply        batched Beaver products (Product); a fixed operand opened once
      polynomial      odd Chebyshev tanh/sigmoid, fitted in numpy, evaluated on shares
      sign_bit        [x < 0] on shares: carry-save + Kogge-Stone adder on XOR shares, B2A
      comparison      ReLU, bucket bits, row max, argmax (the sign-bit circuit; CrypTen's)
      softmax         row-wise softmax: batched exp and bounded reciprocal
      norm_clip       each row scaled to norm <= c (wide-range inverse square root)
      adam            Adam's moments and step on shares
      secure_average  weighted mean of one vector per party (FedAvg's secure aggregation)
      joint_noise     Gaussian noise summed from every party's own draw (DP-SGD)

Across folders: ``network.parties`` receives the dealer's seeds (``randomness.streams``) while
joining, and ``randomness.dealer`` counts wraps with ``arithmetic.truncation``; nothing in
``protocols`` imports ``mpcrnn`` or ``launch``.

One training run, from a party's data file to the released weights (module at each hop)::

    launch/cli.py          ``mpcrnn train``: the run file, one process per party + the dealer
    launch/launcher.py     starts them (launch/start_method.py: from a fork server with torch
                           imported), watches exit codes, names a failing party
    launch/party.py        a party: reads and validates ITS OWN file (mpcrnn/data.py), joins
                           the run (protocols/network/parties.py: channels.py + handshake.py
                           -> links.py -> communicator.py; heartbeat.py; randomness/streams.py:
                           the dealer's seeds), and opens its session (protocols/session.py);
                           the dealer runs protocols/randomness/dealer.py
    mpcrnn/secure.py       run_training: agree on public metadata (network/public_exchange.py),
                           share every party's rows (protocols/arithmetic/sharing.py), then train
    mpcrnn/train.py        the loop; each step, on shares:
      mpcrnn/backend.py      begin_step: the step's randomness in one dealer round trip
                             (protocols/randomness/triples.py, requests.py; the dealer: dealer.py)
      mpcrnn/model.py,       forward and backward through time: products
      mpcrnn/cells.py        (protocols/arithmetic/multiply.py: open masked values with
                             reveal.py over links.py, then truncation.py), activations
                             (polynomial.py),
                             the loss (softmax.py, comparison.py)
      mpcrnn/train.py        clipping (norm_clip.py, comparison.py) and the update (SGD, or
                             adam.py; DP noise: joint_noise.py via mpcrnn/dp.py)
    mpcrnn/secure.py       the final weights opened to the receivers: protocols/arithmetic/reveal.py
                           (reveal, recorded in the ledger)
    launch/party.py        writes the model file (mpcrnn/model_file.py) and the report

Nothing runs at import time.
"""

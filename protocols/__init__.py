"""MPC building blocks on CrypTen, with no knowledge of RNNs.

Layering (lower never imports higher)::

    launch     CLI, party launcher                          (imports mpcrnn, protocols)
    mpcrnn     cells, losses, optimizer, training, export    (imports protocols)
    protocols  this package:
        errors        typed errors                           (no imports)
        runtime       the one door to CrypTen: torch-2.x shim, fast config, version checks
        fixed_point   encoding and the ring's safe range
        stats         rounds/bytes counters
        identity      keys, self-signed certificates and their pinned fingerprints (keygen)
        channels      the run's network: one mutual-TLS 1.3 connection per pair of processes,
                      pinned certificates, rendezvous and membership (which bytes go where)
        links         framed messages over those connections (masked openings, everything else)
        communicator  CrypTen's communicator over the links (no torch.distributed)
        public_exchange  public metadata between the data parties (digest, counts, epochs)
        reveal        the only place values are opened; the reveal ledger
        triples       dealer (TTP, bulk) and first-party (TFP) randomness
        dealer        the dealer process loop
        truncation    batched truncation after products
        multiply      batched Beaver multiplication (one round for many products); a fixed
                      operand (the recurrent weight) opened once for all its products
        sharing       secret-sharing a party's own values
        polynomial    odd polynomial tanh/sigmoid, fitted and evaluated on shares
        sign_bit      [x < 0] on shares: carry-save + Kogge-Stone adder on XOR shares, B2A
        comparison    ReLU (value clipping), bucket bits and the row max, on the sign-bit circuit
        softmax       row-wise softmax: batched exp and bounded reciprocal
        norm_clip     each row scaled to norm <= c (wide-range inverse square root)
        secure_average  weighted mean of one vector per party (FedAvg's secure aggregation)
        joint_noise   Gaussian noise summed from every party's own draw (DP-SGD)
        parties       joining a run (the mesh, CrypTen's communicator, seeds) with timeouts
        session       the per-party state passed to every protocol

Nothing runs at import time.
"""

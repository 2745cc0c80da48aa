"""The run's network: identities, mutual TLS, one connection per pair of processes, framed
messages, liveness, CrypTen's communicator over those links, and joining a run."""

"""Correlated randomness: typed requests, the provider interface that answers them, the PRG
streams shared with the dealer, a party's source of triples, the dealer process, and the
dealer-free provider of two data parties (``he_*``: homomorphic encryption, OT extension)."""

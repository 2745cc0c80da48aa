"""Correlated randomness: typed requests, the provider interface that answers them, the PRG
streams shared with the dealer, a party's source of triples, and the dealer process.  A new
provider (homomorphic encryption, say) goes here."""

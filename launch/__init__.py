"""Process wiring and the command line: the top layer (imports mpcrnn and protocols, never the
reverse)."""

"""A BitTorrent toolkit: pure protocol core (app.core), thin I/O (app.io), click CLI (app.cli)."""

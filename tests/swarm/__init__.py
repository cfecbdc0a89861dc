"""Swarm scenarios: our client among real libtorrent peers, opentracker and our own seeders."""

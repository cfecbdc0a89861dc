"""The DHT (BEP 5, with BEP 32 IPv6 and BEP 43 read-only nodes), pure: codec,
routing table, tokens and the iterative lookup. No socket and no clock: the
I/O layer (app.io.dht) passes `now` in and sends what these decide."""

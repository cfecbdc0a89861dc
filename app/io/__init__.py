"""The thin I/O edge: sockets, HTTP, UDP, files and the clock. Decisions live in app.core."""

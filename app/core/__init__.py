"""The pure protocol core: bytes and values in, values out. No sockets, no disk, no clock."""

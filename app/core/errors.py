"""The project's own error types. The CLI turns any of them into one `Error: ...` line."""


class TorrentError(Exception):
    """Base class: anything wrong with input that is not a bug in this program."""


class BencodeError(TorrentError):
    """Bytes that are not valid bencode."""


class MetainfoError(TorrentError):
    """A torrent (or fetched info dict) with missing, ill-typed or unsafe fields."""


class MagnetError(TorrentError):
    """A magnet link we cannot use."""


class TrackerError(TorrentError):
    """A tracker that failed, refused, or answered something we cannot parse."""


class ProtocolError(TorrentError):
    """A peer that broke the wire protocol; the connection to it is dropped."""


class NoPeersError(TorrentError):
    """No peer could give us what we need."""

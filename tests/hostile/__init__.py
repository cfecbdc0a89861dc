"""Hostile input and faults: bad local input, hostile peers and trackers, disk faults."""

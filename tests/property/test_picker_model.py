"""PiecePicker against a model swarm: random picks, deliveries in any order, timeouts,
ignored cancels, disconnects and corrupting peers, then a drain phase.

Peers here are honest about the protocol: each answers every request it was sent
(at most once per request), unless it saw a cancel first or dropped the request.
So the picker must never call one of their blocks "unrequested" (ProtocolError),
every completed piece must hold the bytes that were sent, and in the end every piece
must arrive. Blame must be exact: a failed piece that came from one peer names that
peer at once; one that came from several names nobody until a good copy verifies,
and then exactly the corrupting peers whose blocks were in the bad copy.

Each property runs EXAMPLES examples (derandomized; HYPOTHESIS_EXPLORE=1 draws fresh ones).
"""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from app.core.picker import PiecePicker
from app.core.pieces import Block
from support.properties import given_tests, property_settings

EXAMPLES = 200          # examples per property in this module
PROPERTIES = 1          # @given tests below (kept in step by test_property_count)
SETTINGS = property_settings(EXAMPLES)

BLOCK = 4
MAX_STEPS = 80
PEERS = ("p0", "p1", "p2", "p3")


def content(index: int, size: int, start: int = 0) -> bytes:
    """The true bytes [start, size) of piece `index`."""
    return bytes((index * 37 + j * 11 + 5) % 256 for j in range(start, size))


class ModelPeer:
    def __init__(self, name: str, has: list[bool], bad: bool) -> None:
        self.name, self.has, self.bad = name, has, bad
        self.queue: list[Block] = []     # requests sent to it and not yet answered

    def answer(self, block: Block) -> bytes:
        data = content(block.index, block.begin + block.length, block.begin)
        return bytes(b ^ 0xFF for b in data) if self.bad else data


class Swarm:
    def __init__(self, sizes: list[int], rng: random.Random) -> None:
        self.sizes = sizes
        self.picker = PiecePicker(sizes, block_size=BLOCK, max_active_pieces=3, rng=rng)
        self.peers: dict[str, ModelPeer] = {}
        self.verified: dict[int, bytes] = {}
        self.ever_joined: set[str] = set()
        self.sources: dict[int, dict[int, str]] = {}     # who sent each stored block
        self.suspects: dict[int, set[str]] = {}          # liars in the last failed mixed copy
        self.liars: dict[int, set[str]] = {}             # liars in any failed copy
        self.bad_names: set[str] = set()

    def join(self, peer: ModelPeer) -> None:
        self.peers[peer.name] = peer
        self.ever_joined.add(peer.name)
        if peer.bad:
            self.bad_names.add(peer.name)
        self.picker.peer_has([i for i, h in enumerate(peer.has) if h])

    def leave(self, name: str) -> None:
        peer = self.peers.pop(name)
        self.picker.release(name)
        self.picker.peer_has([i for i, h in enumerate(peer.has) if h], delta=-1)

    def pick(self, name: str, count: int) -> None:
        peer = self.peers[name]
        pending = set(self.picker.outstanding.get(name, ()))
        blocks = self.picker.pick(name, peer.has, count)
        assert len(blocks) <= count
        assert len(set(blocks)) == len(blocks)
        for b in blocks:
            assert peer.has[b.index], "asked a peer for a piece it does not have"
            assert b.index not in self.picker.done
            assert b.begin % BLOCK == 0 and 0 < b.length <= BLOCK
            assert b.begin + b.length <= self.sizes[b.index]
            assert b not in pending, f"{b} requested again from {name} while still outstanding"
        peer.queue += blocks

    def deliver(self, name: str, slot: int, cancel_obeyed: list[bool]) -> None:
        peer = self.peers[name]
        block = peer.queue.pop(slot % len(peer.queue))
        outcome = self.picker.on_block(name, block.index, block.begin, peer.answer(block))
        if not outcome.duplicate:
            self.sources.setdefault(block.index, {})[block.begin] = name
        for (other, cancelled), obey in zip(outcome.cancels, cancel_obeyed + [False] * 99):
            assert other != name and cancelled == block
            if obey and other in self.peers and cancelled in self.peers[other].queue:
                self.peers[other].queue.remove(cancelled)
        if outcome.piece is not None:
            self.check_piece(outcome.index, outcome.piece)

    def check_piece(self, index: int, piece: bytes) -> None:
        assert len(piece) == self.sizes[index]
        senders = set(self.sources.pop(index).values())
        if piece == content(index, self.sizes[index]):
            blamed = self.picker.verified(index, piece)
            # at least the liars of the last mixed copy, and never an honest peer
            assert self.suspects.pop(index, set()) <= blamed <= self.liars.pop(index, set())
            self.verified[index] = piece
        else:
            assert senders & self.bad_names
            self.liars.setdefault(index, set()).update(senders & self.bad_names)
            blamed = self.picker.failed(index, piece)
            if len(senders) == 1:
                assert blamed == senders
            else:
                assert blamed == set()
                self.suspects[index] = senders & self.bad_names
        for name in blamed & set(self.peers):      # the caller bans them
            self.leave(name)

    def timeout(self, name: str, which: list[bool], peer_forgets: bool) -> None:
        mine = sorted(self.picker.outstanding.get(name, ()))
        chosen = [b for b, w in zip(mine, which) if w]
        self.picker.release(name, chosen)
        if peer_forgets:
            for b in chosen:
                if b in self.peers[name].queue:
                    self.peers[name].queue.remove(b)

    def check_invariants(self) -> None:
        p = self.picker
        assert not (p.done & set(p.active)) and not (p.verifying & set(p.active))
        assert not (p.done & p.missing) and not (set(p.active) & p.missing)
        for name, blocks in p.outstanding.items():
            if name in self.peers:
                assert Counter(blocks) <= Counter(self.peers[name].queue)


@st.composite
def scenarios(draw):
    sizes = draw(st.lists(st.integers(1, 3 * BLOCK + 2), min_size=1, max_size=6))
    peers = []
    for name in PEERS:
        has = draw(st.lists(st.booleans(), min_size=len(sizes), max_size=len(sizes)))
        peers.append((name, has, draw(st.integers(0, 4)) == 0))
    return sizes, peers, draw(st.integers(0, 2**32 - 1))


@SETTINGS
@given(scenarios(), st.data())
def test_picker_against_a_model_swarm(scenario, data):
    sizes, peer_specs, seed = scenario
    swarm = Swarm(sizes, random.Random(seed))
    for name, has, bad in peer_specs:
        swarm.join(ModelPeer(name, has, bad))

    for _ in range(data.draw(st.integers(0, MAX_STEPS))):
        action = data.draw(st.sampled_from(["pick", "pick", "deliver", "deliver", "deliver",
                                            "timeout", "choke", "leave"]))
        names = sorted(swarm.peers)
        if not names:
            break
        name = data.draw(st.sampled_from(names))
        if action == "pick":
            swarm.pick(name, data.draw(st.integers(1, 5)))
        elif action == "deliver" and swarm.peers[name].queue:
            swarm.deliver(name, data.draw(st.integers(0, 50)),
                          data.draw(st.lists(st.booleans(), max_size=4)))
        elif action == "timeout":
            swarm.timeout(name, data.draw(st.lists(st.booleans(), max_size=8)), data.draw(st.booleans()))
        elif action == "choke":
            # the swarm withdraws everything on CHOKE; a choking peer drops its queue, and
            # blocks it sent before the CHOKE arrived before it (TCP keeps order)
            swarm.timeout(name, [True] * 1000, peer_forgets=True)
        elif action == "leave":
            swarm.leave(name)
        swarm.check_invariants()

    # drain: whoever is left may still answer what it was asked (and must not be refused),
    # then one honest seeder with everything finishes the download
    for name in sorted(swarm.peers):
        while name in swarm.peers and swarm.peers[name].queue:   # a failed piece may ban it
            swarm.deliver(name, 0, [True] * 4)
    for name in sorted(swarm.peers):
        swarm.leave(name)
    swarm.join(ModelPeer("seed", [True] * len(sizes), bad=False))
    for _ in range(4 * sum(-(-s // BLOCK) for s in sizes) + 10):
        if swarm.picker.complete:
            break
        swarm.pick("seed", 8)
        while swarm.peers["seed"].queue:
            swarm.deliver("seed", 0, [True] * 4)
        swarm.check_invariants()
    assert swarm.picker.complete
    assert swarm.verified == {i: content(i, s) for i, s in enumerate(sizes)}
    assert swarm.picker.bytes_left() == 0


def test_property_count():
    assert len(given_tests(globals())) == PROPERTIES

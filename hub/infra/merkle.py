"""RFC 9162 Merkle tree hashing, inclusion and consistency proofs (section 2.1).

Pure functions: no database. A tree is reached through ``perfect(level, index)``,
the hash of the complete subtree of ``2**level`` leaves starting at leaf
``index * 2**level`` (level 0: the leaf hashes). The log stores exactly those
(:mod:`hub.infra.tlog`), so any root and any proof costs O(log² n) lookups.

The leaf of the event at log position ``p`` is ``p`` (8 bytes, big-endian)
followed by the event's digest (:func:`hub.infra.chain.event_digest`): the
position is bound into the leaf, so a proof shows *where* an event is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

Perfect = Callable[[int, int], bytes]
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_input(position: int, digest: bytes) -> bytes:
    return position.to_bytes(8, "big") + bytes(digest)


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class Tree:
    """MTH of any range ``[lo, hi)`` from the perfect subtrees, memoised."""

    def __init__(self, perfect: Perfect) -> None:
        self.perfect = perfect
        self.memo: dict[tuple[int, int], bytes] = {}

    def hash(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and lo % n == 0:
            return self.perfect(n.bit_length() - 1, lo // n)
        key = (lo, hi)
        if key not in self.memo:
            k = _split(n)
            self.memo[key] = node_hash(self.hash(lo, lo + k), self.hash(lo + k, hi))
        return self.memo[key]

    def root(self, size: int) -> bytes:
        return self.hash(0, size)

    def inclusion(self, index: int, size: int) -> list[bytes]:
        """PATH(index, D[0:size]), leaf side first (RFC 9162 2.1.3.1)."""
        if not 0 <= index < size:
            raise ValueError(f"leaf {index} is not in a tree of size {size}")
        path: list[bytes] = []
        lo, hi = 0, size
        while hi - lo > 1:
            k = _split(hi - lo)
            if index < lo + k:
                path.append(self.hash(lo + k, hi))
                hi = lo + k
            else:
                path.append(self.hash(lo, lo + k))
                lo = lo + k
        path.reverse()
        return path

    def consistency(self, old: int, new: int) -> list[bytes]:
        """PROOF(old, D[0:new]) (RFC 9162 2.1.4.1); empty when old is 0 or equals new."""
        if not 0 <= old <= new:
            raise ValueError(f"no consistency proof from size {old} to size {new}")
        if old == 0 or old == new:
            return []
        out: list[bytes] = []
        self._subproof(old, 0, new, True, out)
        return out

    def _subproof(self, m: int, lo: int, hi: int, complete: bool, out: list[bytes]) -> None:
        n = hi - lo
        if m == n:
            if not complete:
                out.append(self.hash(lo, hi))
            return
        k = _split(n)
        if m <= k:
            self._subproof(m, lo, lo + k, complete, out)
            out.append(self.hash(lo + k, hi))
        else:
            self._subproof(m - k, lo + k, hi, False, out)
            out.append(self.hash(lo, lo + k))


class MemoryTree(Tree):
    """A tree held in memory (tests, and checking a tree recomputed from the events)."""

    def __init__(self, leaves: Sequence[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [[]]
        super().__init__(lambda level, index: self.levels[level][index])
        for leaf in leaves:
            self.append(leaf)

    def append(self, leaf: bytes) -> None:
        self.levels[0].append(leaf)
        level, index = 0, len(self.levels[0]) - 1
        while index % 2 == 1:
            parent = node_hash(self.levels[level][index - 1], self.levels[level][index])
            level, index = level + 1, index // 2
            if len(self.levels) == level:
                self.levels.append([])
            self.levels[level].append(parent)
        self.memo.clear()


class Accumulator:
    """The root of a growing tree in O(log n) memory: the perfect subtrees on its right edge."""

    def __init__(self) -> None:
        self.size = 0
        self.stack: list[bytes] = []  # largest (leftmost) first

    def append(self, leaf: bytes) -> None:
        self.stack.append(leaf)
        self.size += 1
        size = self.size
        while size % 2 == 0:
            right = self.stack.pop()
            self.stack[-1] = node_hash(self.stack[-1], right)
            size //= 2

    def root(self) -> bytes:
        if not self.stack:
            return EMPTY_ROOT
        root = self.stack[-1]
        for left in reversed(self.stack[:-1]):
            root = node_hash(left, root)
        return root


def root_from_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes | None:
    """The root an inclusion proof leads to (RFC 9162 2.1.3.2); None if the proof has the wrong shape."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None


def verify_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes) -> bool:
    return root_from_inclusion(index, size, leaf, path) == root


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]) -> bool:
    """RFC 9162 2.1.4.2."""
    if old < 0 or new < old:
        return False
    if old == new:
        return not path and old_root == new_root
    if old == 0:
        return not path
    path = list(path)
    if old & (old - 1) == 0:
        path.insert(0, old_root)
    if not path:
        return False
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root

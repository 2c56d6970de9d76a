"""A prolly tree: a sorted map ``path -> FileEntry`` stored as content-addressed nodes.

Node boundaries depend only on the keys (a node ends after an entry whose key hashes to a
boundary at that level), so the same set of entries always gives the same nodes whatever the
history. Hence:

- an edit rewrites only the nodes on the paths to the edited keys (O(log n) nodes);
- two trees share every node outside their differences, and :func:`diff` skips equal nodes;
- lookups, range scans and range totals seek by key.
"""

from __future__ import annotations

import bisect
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import msgpack

from haathi.errors import Corrupt
from haathi.tree.entry import FileEntry, NodeRef

FANOUT_BITS = 6  # about 64 entries per node
_MASK = (1 << FANOUT_BITS) - 1
_CACHE_NODES = 4096
SCAN_AHEAD = 64  # nodes read ahead at most by a scan (a level's worth, about)

Entry = FileEntry | NodeRef


@dataclass(frozen=True, slots=True)
class Node:
    level: int
    entries: tuple[Entry, ...]
    keys: list[str] = field(init=False, repr=False, compare=False)  # for bisection

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", [e.key for e in self.entries])

    @property
    def last_key(self) -> str:
        return self.entries[-1].key

    def totals(self) -> tuple[int, int]:
        if self.level == 0:
            return len(self.entries), sum(e.size for e in self.entries)
        count = size = 0
        for r in self.entries:
            assert isinstance(r, NodeRef)
            count += r.count
            size += r.size
        return count, size


def encode_node(node: Node) -> bytes:
    out = msgpack.packb([node.level, [e.encode() for e in node.entries]], use_bin_type=True)
    assert isinstance(out, bytes)
    return out


def decode_node(data: bytes, digest: bytes) -> Node:
    try:
        level, raw = msgpack.unpackb(data, raw=False)
        cls = FileEntry if level == 0 else NodeRef
        return Node(level, tuple(cls.decode(r) for r in raw))
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise Corrupt(f"tree node {digest.hex()} cannot be decoded", blob=digest.hex()) from exc


class BlobSink(Protocol):
    """Where new nodes are written (a BlobWriter, or an in-memory overlay)."""

    def put(self, data: bytes | memoryview) -> bytes: ...


class NodeStore:
    """Reads nodes through a blob reader with a bounded cache of decoded nodes; with
    ``read_blobs`` (many blobs in order, read together), a scan reads the nodes ahead."""

    def __init__(
        self,
        read_blob: Callable[[bytes], bytes],
        read_blobs: Callable[[Sequence[bytes]], Iterator[bytes]] | None = None,
    ) -> None:
        self._read_blob = read_blob
        self._read_blobs = read_blobs
        self._cache: OrderedDict[bytes, Node] = OrderedDict()
        self.overlay: dict[bytes, bytes] = {}

    def _keep(self, digest: bytes, node: Node) -> Node:
        self._cache[digest] = node
        self._cache.move_to_end(digest)
        if len(self._cache) > _CACHE_NODES:
            self._cache.popitem(last=False)
        return node

    def get(self, digest: bytes) -> Node:
        node = self._cache.get(digest)
        if node is not None:
            self._cache.move_to_end(digest)
            return node
        data = self.overlay.get(digest)
        if data is None:
            data = self._read_blob(digest)
        return self._keep(digest, decode_node(data, digest))

    def scan(self, digests: Sequence[bytes]) -> Iterator[Node]:
        """The nodes of ``digests`` in order, those not at hand read ahead in groups that grow
        as the caller goes on (1, 2, 4, ... up to SCAN_AHEAD): a seek that stops early reads
        little, a long scan reads a group at a time (on S3, a GET or two, not one a node)."""
        group, i = 1, 0
        while i < len(digests):
            ahead = digests[i : i + group]
            if self._read_blobs is not None:
                wanted = [d for d in ahead if d not in self._cache and d not in self.overlay]
                if len(wanted) > 1:
                    for d, data in zip(wanted, self._read_blobs(wanted), strict=True):
                        self._keep(d, decode_node(data, d))
            for d in ahead:
                yield self.get(d)
            i += len(ahead)
            group = min(2 * group, SCAN_AHEAD)

    def put(self, node: Node, sink: BlobSink) -> NodeRef:
        data = encode_node(node)
        digest = sink.put(data)
        self._keep(digest, node)  # (bounded: a tree of millions of files is built through it)
        count, size = node.totals()
        return NodeRef(node.last_key, digest, count, size)


class OverlaySink:
    """Keeps new nodes in memory (used to read an open commit without writing anything)."""

    def __init__(self, store: NodeStore) -> None:
        self.store = store

    def put(self, data: bytes | memoryview) -> bytes:
        from haathi.storage.blobs import digest_of

        digest = digest_of(data)
        self.store.overlay[digest] = bytes(data)
        return digest


def is_boundary(level: int, key: str) -> bool:
    """Whether ``key`` ends a node at ``level`` (about one key in ``2**FANOUT_BITS``).

    Each level salts a real hash, so the levels' boundaries are independent. (CRC32 seeded
    with the level does not do: CRC is affine, so for a key already ending a node below, the
    test at a higher level depended only on the key's length, and internal nodes never split.)
    """
    salt = level.to_bytes(16, "little")
    digest = hashlib.blake2b(key.encode(), digest_size=4, salt=salt).digest()
    return int.from_bytes(digest, "little") & _MASK == 0


def _chunk_level(
    entries: Sequence[Entry], level: int, store: NodeStore, sink: BlobSink
) -> list[NodeRef]:
    """Cut a level's entries into nodes at key boundaries; returns refs to the new nodes."""
    refs: list[NodeRef] = []
    start = 0
    for i, e in enumerate(entries):
        if is_boundary(level, e.key):
            refs.append(store.put(Node(level, tuple(entries[start : i + 1])), sink))
            start = i + 1
    if start < len(entries):
        refs.append(store.put(Node(level, tuple(entries[start:])), sink))
    return refs


def _build_up(refs: list[NodeRef], level: int, store: NodeStore, sink: BlobSink) -> bytes | None:
    """Stack levels over ``refs`` (nodes of ``level - 1``) until one node remains."""
    while len(refs) > 1:
        refs = _chunk_level(refs, level, store, sink)
        level += 1
    return refs[0].digest if refs else None


def build(entries: Sequence[FileEntry], store: NodeStore, sink: BlobSink) -> bytes | None:
    """Build the tree of ``entries`` (sorted by path, unique); None for the empty tree."""
    return _build_up(_chunk_level(entries, 0, store, sink), 1, store, sink)


def _collapse(root: bytes | None, store: NodeStore) -> bytes | None:
    while root is not None:
        node = store.get(root)
        if node.level == 0 or len(node.entries) != 1:
            return root
        child = node.entries[0]
        assert isinstance(child, NodeRef)
        root = child.digest
    return None


def _locate(
    store: NodeStore, root: bytes, level: int, key: str, strict: bool
) -> tuple[Node, bool] | None:
    """The node at ``level`` holding the first entry >= key (> key if strict).

    Returns the node and whether it is the rightmost node of its level, or None when no entry
    at that level follows ``key`` (only possible with ``strict``).
    """
    node = store.get(root)
    rightmost = True
    while node.level > level:
        keys = node.keys
        i = bisect.bisect_right(keys, key) if strict else bisect.bisect_left(keys, key)
        if i >= len(keys):
            if strict:
                return None
            i = len(keys) - 1
        rightmost = rightmost and i == len(keys) - 1
        ref = node.entries[i]
        assert isinstance(ref, NodeRef)
        node = store.get(ref.digest)
    return node, rightmost


def _merge(
    entries: Sequence[Entry],
    edits: Sequence[tuple[str, Entry | None]],
    lo: int,
    hi: int,
) -> list[Entry]:
    """Apply ``edits[lo:hi]`` (sorted; None deletes) to sorted ``entries``."""
    out: list[Entry] = []
    i = 0
    n = len(entries)
    for j in range(lo, hi):
        key, value = edits[j]
        while i < n and entries[i].key < key:
            out.append(entries[i])
            i += 1
        if i < n and entries[i].key == key:
            i += 1
        if value is not None:
            out.append(value)
    out.extend(entries[i:])
    return out


def apply(
    root: bytes | None,
    edits: Sequence[tuple[str, FileEntry | None]],
    store: NodeStore,
    sink: BlobSink,
) -> bytes | None:
    """Return the root of ``root`` with ``edits`` applied (sorted by key; None deletes).

    Only the nodes covering edited keys (and at most one neighbour per run, when a boundary
    key disappears) are read and rewritten, level by level.
    """
    if root is None:
        return build([v for _, v in edits if v is not None], store, sink)
    if not edits:
        return root
    height = store.get(root).level
    level_edits: list[tuple[str, Entry | None]] = list(edits)
    level = 0
    while level <= height:
        up: dict[str, NodeRef | None] = {}
        i = 0
        while i < len(level_edits):
            found = _locate(store, root, level, level_edits[i][0], strict=False)
            assert found is not None
            node, rightmost = found
            consumed = [node]
            j = i
            while j < len(level_edits) and (rightmost or level_edits[j][0] <= node.last_key):
                j += 1
            merged = _merge(node.entries, level_edits, i, j)
            i = j
            last = node.last_key
            while merged and not rightmost and not is_boundary(level, merged[-1].key):
                nxt = _locate(store, root, level, last, strict=True)
                assert nxt is not None
                node, rightmost = nxt
                consumed.append(node)
                j = i
                while j < len(level_edits) and (rightmost or level_edits[j][0] <= node.last_key):
                    j += 1
                merged = merged + _merge(node.entries, level_edits, i, j)
                i = j
                last = node.last_key
            for old in consumed:
                up[old.last_key] = None
            for ref in _chunk_level(merged, level, store, sink):
                up[ref.key] = ref
        level_edits = sorted(up.items())
        level += 1
    # Above the old root: the old root's entry was replaced by the new top nodes.
    tops = [v for _, v in level_edits if v is not None]
    assert all(isinstance(t, NodeRef) for t in tops)
    new_root = _build_up(tops, level, store, sink)  # type: ignore[arg-type]
    return _collapse(new_root, store)


def get(root: bytes | None, key: str, store: NodeStore) -> FileEntry | None:
    """Point lookup."""
    e = first_from(root, key, store)
    return e if e is not None and e.path == key else None


def first_from(root: bytes | None, start: str, store: NodeStore) -> FileEntry | None:
    """The first entry with key >= ``start`` (a seek: one node per level)."""
    if root is None:
        return None
    found = _locate(store, root, 0, start, strict=False)
    assert found is not None
    node, _ = found
    i = bisect.bisect_left(node.keys, start)
    if i == len(node.entries):
        return None  # only in the rightmost leaf: ``start`` is after every key
    e = node.entries[i]
    assert isinstance(e, FileEntry)
    return e


def iter_from(root: bytes | None, start: str, store: NodeStore) -> Iterator[FileEntry]:
    """Entries with key >= ``start``, in order (stop consuming to stop reading)."""
    if root is None:
        return

    def walk(node: Node) -> Iterator[FileEntry]:
        i = bisect.bisect_left(node.keys, start)
        if node.level == 0:
            for e in node.entries[i:]:
                assert isinstance(e, FileEntry)
                yield e
            return
        children = [ref.digest for ref in node.entries[i:] if isinstance(ref, NodeRef)]
        for child in store.scan(children):
            yield from walk(child)

    yield from walk(store.get(root))


def iter_prefix(root: bytes | None, prefix: str, store: NodeStore) -> Iterator[FileEntry]:
    for e in iter_from(root, prefix, store):
        if not e.path.startswith(prefix):
            return
        yield e


def totals(root: bytes | None, store: NodeStore) -> tuple[int, int]:
    """(file count, total bytes) of the whole tree, from the root's aggregates."""
    return (0, 0) if root is None else store.get(root).totals()


def range_totals(root: bytes | None, lo: str, hi: str, store: NodeStore) -> tuple[int, int]:
    """(file count, bytes) of entries with lo <= key < hi, using subtree aggregates."""
    if root is None:
        return 0, 0

    def walk(digest: bytes, left: str | None) -> tuple[int, int]:
        node = store.get(digest)
        if node.level == 0:
            sel = [e for e in node.entries if lo <= e.key < hi]
            return len(sel), sum(e.size for e in sel)
        count = size = 0
        prev = left
        for ref in node.entries:
            assert isinstance(ref, NodeRef)
            if prev is not None and prev >= hi:
                break
            if ref.key >= lo:
                if prev is not None and prev >= lo and ref.key < hi:
                    # Every key in (prev, ref.key] lies in [lo, hi).
                    count += ref.count
                    size += ref.size
                else:
                    c, s = walk(ref.digest, prev)
                    count += c
                    size += s
            prev = ref.key
        return count, size

    return walk(root, None)


def _expand(
    item: tuple[int, Entry], store: NodeStore, lo: str = "", hi: str | None = None
) -> list[tuple[int, Entry]]:
    """Children of a node ref that may hold keys in [lo, hi), in reverse order (for a stack);
    ``-1`` marks a file entry."""
    _, ref = item
    assert isinstance(ref, NodeRef)
    node = store.get(ref.digest)
    child_level = node.level - 1 if node.level > 0 else -1
    out: list[tuple[int, Entry]] = []
    for e in node.entries:
        if e.key < lo:  # a child's key is the last key below it: all of it lies before lo
            continue
        out.append((child_level, e))
        if hi is not None and e.key >= hi:  # later children hold only keys after this one
            break
    out.reverse()
    return out


def diff(
    old: bytes | None,
    new: bytes | None,
    store: NodeStore,
    lo: str = "",
    hi: str | None = None,
) -> Iterator[tuple[str, FileEntry | None, FileEntry | None]]:
    """Yield (path, old entry, new entry) for every differing path (with ``lo <= path < hi``
    when a range is given), in path order, skipping equal subtrees and subtrees outside the
    range."""

    def start(root: bytes | None) -> list[tuple[int, Entry]]:
        if root is None:
            return []
        node = store.get(root)
        return [(node.level, NodeRef(node.last_key, root, 0, 0))]

    def past(path: str) -> bool:
        return hi is not None and path >= hi

    a = start(old)
    b = start(new)
    while a or b:
        if a and b:
            (la, ea), (lb, eb) = a[-1], b[-1]
            if la >= 0 and lb >= 0:
                assert isinstance(ea, NodeRef) and isinstance(eb, NodeRef)
                if ea.digest == eb.digest:
                    a.pop()
                    b.pop()
                    continue
                if la >= lb:
                    a.extend(_expand(a.pop(), store, lo, hi))
                if lb >= la:
                    b.extend(_expand(b.pop(), store, lo, hi))
                continue
            if la >= 0:
                a.extend(_expand(a.pop(), store, lo, hi))
                continue
            if lb >= 0:
                b.extend(_expand(b.pop(), store, lo, hi))
                continue
            assert isinstance(ea, FileEntry) and isinstance(eb, FileEntry)
            if past(min(ea.path, eb.path)):  # both streams are past the range
                return
            if ea.path == eb.path:
                a.pop()
                b.pop()
                if ea != eb:
                    yield ea.path, ea, eb
            elif ea.path < eb.path:
                a.pop()
                yield ea.path, ea, None
            else:
                b.pop()
                yield eb.path, None, eb
        else:
            side = a or b
            level, e = side.pop()
            if level >= 0:
                side.extend(_expand((level, e), store, lo, hi))
                continue
            assert isinstance(e, FileEntry)
            if past(e.path):
                return
            yield (e.path, e, None) if side is a else (e.path, None, e)


def reachable(root: bytes | None, store: NodeStore) -> Iterator[tuple[bytes, Node]]:
    """Every node of the tree (for fsck and gc)."""
    if root is None:
        return
    stack = [root]
    while stack:
        d = stack.pop()
        node = store.get(d)
        yield d, node
        if node.level > 0:
            stack.extend(r.digest for r in node.entries if isinstance(r, NodeRef))

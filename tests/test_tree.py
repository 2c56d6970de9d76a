"""Properties of the prolly tree (``haathi.tree.prolly``), checked on real data.

The tree maps ``path -> FileEntry`` and is stored as content-addressed nodes. These tests pin
down what the rest of haathi relies on:

1. History independence: whatever sequence of edits produced a set of entries, the root is the
   one a fresh ``build`` of that set gives, and the tree is in canonical form.
2. Cheap edits: changing one file of a 100,000-file tree writes O(log n) nodes.
3. ``diff`` yields exactly the changed paths and skips shared subtrees, so it reads only the
   nodes around the changes.
4. Lookups, seeks, prefix scans and range totals agree with brute force on a sorted list, and
   read only O(log n) nodes (plus the nodes they return).

Everything runs against an in-memory blob store (a dict keyed by BLAKE3 digest). Most property
tests run with the real fanout (about 64 entries per node) and with tiny fanouts (2 and 4):
node boundaries come from ``is_boundary``, which reads the module's ``_MASK``, so a smaller mask
turns a few hundred keys into a tall tree that exercises every level of the algorithms.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from unittest.mock import patch

import blake3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from haathi.tree import prolly
from haathi.tree.entry import FileEntry, NodeRef
from haathi.tree.prolly import Node, NodeStore

# --------------------------------------------------------------------------------------------
# An in-memory blob store
# --------------------------------------------------------------------------------------------


class MemorySink:
    """A blob sink backed by a dict: ``put`` stores bytes under their BLAKE3 digest."""

    def __init__(self, blobs: dict[bytes, bytes] | None = None) -> None:
        self.blobs: dict[bytes, bytes] = {} if blobs is None else blobs
        self.puts = 0  # put() calls, including re-puts of blobs already stored
        self.new = 0  # puts of blobs that were not stored yet
        self.written = 0  # bytes passed to put()

    def put(self, data: bytes | memoryview) -> bytes:
        digest = blake3.blake3(data).digest()
        self.puts += 1
        self.written += len(data)
        if digest not in self.blobs:
            self.new += 1
            self.blobs[digest] = bytes(data)
        return digest

    def store(self) -> NodeStore:
        """A NodeStore reading this sink's blobs, with an empty node cache."""
        return NodeStore(read_blob=self.blobs.__getitem__)


class CountingReader:
    """A ``read_blob`` function that counts how many blobs are fetched."""

    def __init__(self, blobs: Mapping[bytes, bytes]) -> None:
        self.blobs = blobs
        self.reads = 0

    def __call__(self, digest: bytes) -> bytes:
        self.reads += 1
        return self.blobs[digest]


def counting_store(sink: MemorySink) -> tuple[NodeStore, CountingReader]:
    """A cold NodeStore (nothing cached) whose blob reads are counted."""
    reader = CountingReader(sink.blobs)
    return NodeStore(read_blob=reader), reader


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def make_entry(path: str, version: int = 0, size: int = 100, datum: str | None = None) -> FileEntry:
    """A file entry made of one chunk whose digest depends on the path and a version number."""
    digest = blake3.blake3(f"{path}@{version}".encode()).digest()
    return FileEntry.from_chunks(path, [(digest, size)], datum)


def path_of(d: int, f: int) -> str:
    return f"/d{d}/f{f}.txt"


Edits = list[tuple[str, FileEntry | None]]


def sorted_entries(entries: Mapping[str, FileEntry]) -> list[FileEntry]:
    return [entries[p] for p in sorted(entries)]


def applied(entries: Mapping[str, FileEntry], edits: Edits) -> dict[str, FileEntry]:
    """The brute-force model of ``prolly.apply``: a dict update."""
    out = dict(entries)
    for path, entry in edits:
        if entry is None:
            out.pop(path, None)
        else:
            out[path] = entry
    return out


def fresh_root(entries: Mapping[str, FileEntry]) -> bytes | None:
    """Root digest of a tree built from scratch, in a separate store."""
    sink = MemorySink()
    return prolly.build(sorted_entries(entries), sink.store(), sink)


@contextmanager
def fanout(bits: int | None) -> Iterator[None]:
    """Run with about ``2**bits`` entries per node (None: the real fanout)."""
    if bits is None:
        yield
        return
    with patch.object(prolly, "_MASK", (1 << bits) - 1):
        yield


FANOUTS = [
    pytest.param(None, id="fanout64"),
    pytest.param(2, id="fanout4"),
    pytest.param(1, id="fanout2", marks=pytest.mark.slow),  # the fast loop has 4 and 64
]

PROPERTY = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# 13 directories x 200 files: "/d1/..." and "/d10/..." share the prefix "/d1".
UNIVERSE = [path_of(d, f) for d in range(13) for f in range(200)]
paths = st.sampled_from(UNIVERSE)
DATUMS = [None, "datum-a", "datum-b"]


def random_entry(rnd: random.Random, path: str) -> FileEntry:
    return make_entry(path, rnd.randrange(4), rnd.randrange(1 << 40), rnd.choice(DATUMS))


@st.composite
def entry_maps(draw: st.DrawFn, max_size: int = 400) -> dict[str, FileEntry]:
    """Up to ``max_size`` entries: a tree of several leaves even at the real fanout.

    Hypothesis picks the size and drives the random choices (so failures replay and shrink);
    drawing hundreds of entries one by one would mostly give it tiny trees.
    """
    n = draw(st.integers(0, max_size), label="size")
    rnd = draw(st.randoms(use_true_random=False))
    return {p: random_entry(rnd, p) for p in rnd.sample(UNIVERSE, n)}


@st.composite
def edit_batches(draw: st.DrawFn, current: Mapping[str, FileEntry]) -> Edits:
    """A sorted, duplicate-free batch of puts and deletes against ``current``.

    Deletes target existing keys, keys that end a leaf (the boundary keys whose removal merges
    two nodes), absent keys (no-ops), or everything (emptying the tree); puts overwrite
    existing keys or add new ones.
    """
    rnd = draw(st.randoms(use_true_random=False))
    existing = sorted(current)
    leaf_ends = [p for p in existing if prolly.is_boundary(0, p)]

    def some(population: Sequence[str], most: int, label: str) -> list[str]:
        k = draw(st.integers(0, min(most, len(population))), label=label)
        return rnd.sample(population, k)

    batch: dict[str, FileEntry | None] = {}
    if existing and draw(st.integers(0, 7), label="wipe if 0") == 0:
        batch.update(dict.fromkeys(existing))
    batch.update(dict.fromkeys(some(existing, 60, "deletes")))
    batch.update(dict.fromkeys(some(leaf_ends, 10, "leaf-end deletes")))
    batch.update(dict.fromkeys(some(UNIVERSE, 10, "maybe-absent deletes")))
    for p in some(existing, 40, "overwrites") + some(UNIVERSE, 80, "puts"):
        batch[p] = random_entry(rnd, p)
    return sorted(batch.items())


# --------------------------------------------------------------------------------------------
# The canonical form
# --------------------------------------------------------------------------------------------


def levels(root: bytes | None, store: NodeStore) -> list[list[Node]]:
    """The tree's nodes, level by level from the root, each level left to right."""
    if root is None:
        return []
    out = [[store.get(root)]]
    while out[-1][0].level > 0:
        children = []
        for node in out[-1]:
            for ref in node.entries:
                assert isinstance(ref, NodeRef)
                children.append(store.get(ref.digest))
        out.append(children)
    return out


def assert_canonical(root: bytes | None, store: NodeStore) -> None:
    """The rules that make the tree a function of its entries alone.

    - every node of level L ends exactly at the first key that ``is_boundary(L, key)``; only the
      rightmost node of a level may end without one;
    - a node's ref carries the node's last key and its subtree's (count, bytes);
    - the root is the lowest level that has a single node (no root with a single child).
    """
    tree = levels(root, store)
    for depth, level_nodes in enumerate(tree):
        for i, node in enumerate(level_nodes):
            assert node.level == len(tree) - 1 - depth
            assert node.entries, "empty node"
            keys = node.keys
            assert keys == sorted(set(keys)), "keys not strictly increasing"
            inner = [k for k in keys[:-1] if prolly.is_boundary(node.level, k)]
            assert not inner, f"node continues past boundary key {inner[0]!r}"
            if i < len(level_nodes) - 1:
                assert prolly.is_boundary(node.level, keys[-1]), "node ends early"
                assert keys[-1] < level_nodes[i + 1].keys[0]
            if node.level > 0:
                for ref in node.entries:
                    assert isinstance(ref, NodeRef)
                    child = store.get(ref.digest)
                    assert child.level == node.level - 1
                    assert ref.key == child.last_key
                    assert (ref.count, ref.size) == child.totals()
    if tree:
        root_node = tree[0][0]
        assert root_node.level == 0 or len(root_node.entries) > 1, "root has a single child"


def assert_holds(root: bytes | None, entries: Mapping[str, FileEntry], sink: MemorySink) -> None:
    """``root`` is the canonical tree of ``entries``, every node of it is in ``sink``."""
    cold = sink.store()  # nothing cached: proves every node was really written
    assert root == fresh_root(entries)
    assert_canonical(root, cold)
    assert list(prolly.iter_from(root, "", cold)) == sorted_entries(entries)
    assert prolly.totals(root, cold) == (len(entries), sum(e.size for e in entries.values()))


# --------------------------------------------------------------------------------------------
# Node boundaries
# --------------------------------------------------------------------------------------------


def test_boundaries_at_different_levels_are_independent() -> None:
    """About one key in 64 ends a node, at every level, and independently across levels.

    Internal levels hold the keys that ended a node at the level below; if being a boundary at
    level 0 decided (or forbade) being one at level 1, internal nodes would never split (one
    huge root) or always split (single-entry nodes).
    """
    keys = [path_of(i // 1000, i) for i in range(100_000)]
    for level in range(4):
        share = sum(prolly.is_boundary(level, k) for k in keys) / len(keys)
        assert 1 / 80 < share < 1 / 50, (level, share)
    ends_leaf = [k for k in keys if prolly.is_boundary(0, k)]
    for level in range(1, 4):
        also = sum(prolly.is_boundary(level, k) for k in ends_leaf)
        assert len(ends_leaf) / 256 < also < len(ends_leaf) / 16, (level, also, len(ends_leaf))


# --------------------------------------------------------------------------------------------
# 1. History independence
# --------------------------------------------------------------------------------------------


def test_empty_tree_is_none() -> None:
    sink = MemorySink()
    store = sink.store()
    assert prolly.build([], store, sink) is None
    assert prolly.totals(None, store) == (0, 0)
    assert list(prolly.iter_from(None, "", store)) == []
    assert prolly.get(None, "/a", store) is None
    assert list(prolly.diff(None, None, store)) == []
    assert list(prolly.reachable(None, store)) == []
    assert sink.puts == 0


def test_build_writes_exactly_the_nodes_of_the_tree() -> None:
    entries = {p: make_entry(p) for p in (path_of(d, f) for d in range(10) for f in range(300))}
    sink = MemorySink()
    root = prolly.build(sorted_entries(entries), sink.store(), sink)
    nodes = dict(prolly.reachable(root, sink.store()))
    assert len(nodes) > 40  # a real multi-level tree: ~47 leaves under 1-2 levels
    assert set(nodes) == set(sink.blobs)
    assert sink.puts == len(nodes)
    assert_holds(root, entries, sink)


@pytest.mark.parametrize("bits", FANOUTS)
@PROPERTY
@given(data=st.data())
def test_apply_gives_the_same_root_as_a_fresh_build(bits: int | None, data: st.DataObject) -> None:
    """Any history of edit batches ends at the root that building the final set gives."""
    with fanout(bits):
        current = data.draw(entry_maps(), label="initial entries")
        sink = MemorySink()
        store = sink.store()
        root = prolly.build(sorted_entries(current), store, sink)
        assert_holds(root, current, sink)
        for n in range(data.draw(st.integers(1, 4), label="batches")):
            edits = data.draw(edit_batches(current), label=f"batch {n}")
            root = prolly.apply(root, edits, store, sink)
            current = applied(current, edits)
            assert_holds(root, current, sink)


@pytest.mark.parametrize("bits", FANOUTS)
def test_adding_then_removing_entries_restores_the_root(bits: int | None) -> None:
    """Order does not matter: building up one key at a time and tearing down in a shuffled
    order goes through the same roots as fresh builds."""
    rng = random.Random(1)
    with fanout(bits):
        all_paths = [path_of(d, f) for d in range(4) for f in range(50)]
        sink = MemorySink()
        store = sink.store()
        root: bytes | None = None
        current: dict[str, FileEntry] = {}
        for p in rng.sample(all_paths, len(all_paths)):
            current[p] = make_entry(p)
            root = prolly.apply(root, [(p, current[p])], store, sink)
            assert root == fresh_root(current)
        assert_holds(root, current, sink)
        for p in rng.sample(all_paths, len(all_paths)):
            del current[p]
            root = prolly.apply(root, [(p, None)], store, sink)
            assert root == fresh_root(current)
        assert root is None


@pytest.mark.parametrize(
    ("bits", "n_dirs"),
    [pytest.param(None, 80, id="fanout64"), pytest.param(2, 4, id="fanout4")],
)
def test_deleting_or_inserting_a_boundary_key_keeps_the_tree_canonical(
    bits: int | None, n_dirs: int
) -> None:
    """Removing the key that ends a node must merge that node with its right neighbour (at
    every level where the key ends a node); re-inserting it must split them again."""
    rng = random.Random(2)
    with fanout(bits):
        entries = {
            p: make_entry(p) for p in (path_of(d, f) for d in range(n_dirs) for f in range(250))
        }
        sink = MemorySink()
        store = sink.store()
        root = prolly.build(sorted_entries(entries), store, sink)
        tree = levels(root, store)
        assert len(tree) >= 3
        leaf_ends = {n.last_key for n in tree[-1][:-1]}
        higher_ends = {n.last_key for level_nodes in tree[:-1] for n in level_nodes[:-1]}
        assert higher_ends, "no key ends an internal node: nothing to merge above the leaves"
        assert higher_ends <= leaf_ends
        keys = sorted(higher_ends | set(rng.sample(sorted(leaf_ends), 40)))
        for key in keys:
            without = prolly.apply(root, [(key, None)], store, sink)
            smaller = {p: e for p, e in entries.items() if p != key}
            assert without == fresh_root(smaller), key
            assert prolly.apply(without, [(key, entries[key])], store, sink) == root, key
        assert_canonical(without, store)


# --------------------------------------------------------------------------------------------
# A 100,000-file tree (built once per module)
# --------------------------------------------------------------------------------------------

BIG = 100_000


@dataclass
class BigTree:
    entries: list[FileEntry]  # sorted by path
    blobs: dict[bytes, bytes]
    root: bytes
    nodes: int
    height: int

    def sink(self) -> MemorySink:
        """A private sink holding the tree (writes do not leak into other tests)."""
        return MemorySink(dict(self.blobs))

    def by_path(self) -> dict[str, FileEntry]:
        return {e.path: e for e in self.entries}


@pytest.fixture(scope="module")
def big() -> BigTree:
    entries = sorted(
        (make_entry(path_of(i // 1000, i), 0, i) for i in range(BIG)), key=lambda e: e.path
    )
    sink = MemorySink()
    root = prolly.build(entries, sink.store(), sink)
    assert root is not None
    store = sink.store()
    return BigTree(
        entries,
        sink.blobs,
        root,
        len(list(prolly.reachable(root, store))),
        len(levels(root, store)),
    )


def test_big_tree_has_log_n_levels_of_bounded_nodes(big: BigTree) -> None:
    tree = levels(big.root, MemorySink(big.blobs).store())
    assert big.nodes > 1000
    assert len(tree[-1]) > 1000  # ~1,600 leaves
    assert big.height >= 3  # leaves, ~25 level-1 nodes, a root
    assert max(len(n.entries) for level_nodes in tree for n in level_nodes) < 16 * 64


# --------------------------------------------------------------------------------------------
# 2. Cheap edits
# --------------------------------------------------------------------------------------------


def one_file_changes(big: BigTree) -> list[tuple[str, Edits]]:
    middle = big.entries[BIG // 2]
    return [
        ("modify", [(middle.path, make_entry(middle.path, 1, 7))]),
        ("add", [("/d50/new.txt", make_entry("/d50/new.txt"))]),
        ("delete", [(middle.path, None)]),
        ("delete last", [(big.entries[-1].path, None)]),
        ("add first", [("/a.txt", make_entry("/a.txt"))]),
    ]


def test_one_file_change_writes_log_n_nodes(big: BigTree) -> None:
    assert big.nodes > 1000  # ~1,600 leaves under a few internal nodes
    tree_bytes = sum(len(b) for b in big.blobs.values())
    for name, edits in one_file_changes(big):
        sink = big.sink()
        root = prolly.apply(big.root, edits, sink.store(), sink)
        assert root != big.root, name
        # Every blob handed to the sink counts, new or already stored.
        assert sink.puts < 20, (name, sink.puts)
        assert 0 < sink.new <= sink.puts
        assert sink.written < tree_bytes / 200, (name, sink.written)  # a few nodes' worth
        expected = sorted_entries(applied(big.by_path(), edits))
        fresh = MemorySink()
        assert root == prolly.build(expected, fresh.store(), fresh), name


def test_one_file_change_reads_log_n_nodes(big: BigTree) -> None:
    sink = big.sink()
    store, reader = counting_store(sink)
    path = big.entries[12_345].path
    prolly.apply(big.root, [(path, make_entry(path, 1))], store, sink)
    assert reader.reads <= 3 * big.height, reader.reads


# --------------------------------------------------------------------------------------------
# 3. Diff
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", FANOUTS)
@PROPERTY
@given(data=st.data())
def test_diff_yields_exactly_the_changed_paths(bits: int | None, data: st.DataObject) -> None:
    with fanout(bits):
        old = data.draw(entry_maps(), label="old entries")
        edits = data.draw(edit_batches(old), label="edits")
        new = applied(old, edits)
        sink = MemorySink()
        store = sink.store()
        old_root = prolly.build(sorted_entries(old), store, sink)
        new_root = prolly.apply(old_root, edits, store, sink)

        expected = [
            (p, old.get(p), new.get(p))
            for p in sorted(old.keys() | new.keys())
            if old.get(p) != new.get(p)
        ]
        assert list(prolly.diff(old_root, new_root, store)) == expected
        backwards = [(p, b, a) for p, a, b in expected]
        assert list(prolly.diff(new_root, old_root, sink.store())) == backwards
        assert list(prolly.diff(new_root, new_root, store)) == []


def test_diff_reports_metadata_only_changes() -> None:
    """An entry counts as modified when any field differs, not only its content hash."""
    paths_ = [path_of(0, f) for f in range(200)]
    old = {p: make_entry(p) for p in paths_}
    same_content = {
        paths_[3]: make_entry(paths_[3], datum="datum-a"),  # written by another datum
        paths_[7]: make_entry(paths_[7], size=5),  # same chunk digests, another size
        paths_[150]: old[paths_[150]].moved(paths_[150]),  # identical: not a change
    }
    assert same_content[paths_[3]].hash == old[paths_[3]].hash
    sink = MemorySink()
    store = sink.store()
    old_root = prolly.build(sorted_entries(old), store, sink)
    new_root = prolly.apply(old_root, sorted(same_content.items()), store, sink)
    assert list(prolly.diff(old_root, new_root, store)) == [
        (p, old[p], same_content[p]) for p in (paths_[3], paths_[7])
    ]


def test_diff_of_ten_changes_in_a_big_tree_reads_few_nodes(big: BigTree) -> None:
    rng = random.Random(10)
    picked = rng.sample(big.entries, 7)
    edits: Edits = [(e.path, make_entry(e.path, 1, 1)) for e in picked[:4]]  # modified
    edits += [(e.path, None) for e in picked[4:]]  # removed
    edits += [(p, make_entry(p)) for p in ("/d3/new.txt", "/d77/new.txt", "/z.txt")]  # added
    edits.sort(key=lambda e: e[0])
    sink = big.sink()
    new_root = prolly.apply(big.root, edits, sink.store(), sink)

    old = big.by_path()
    expected = [(p, old.get(p), e) for p, e in edits]
    store, reader = counting_store(sink)
    assert list(prolly.diff(big.root, new_root, store)) == expected
    assert reader.reads < 200, reader.reads
    # A full scan of both trees would read every node of each.
    assert reader.reads < big.nodes // 10


# --------------------------------------------------------------------------------------------
# 4. Lookups and scans versus brute force
# --------------------------------------------------------------------------------------------

probe_keys = st.one_of(
    paths,
    st.sampled_from(["", "/", "/d", "/d1", "/d1/", "/d10", "/d12/f59.txt", "/e", "\U0010ffff"]),
    st.text(alphabet="/.dft0123456789", max_size=10),
)


def brute_range(entries: Sequence[FileEntry], lo: str, hi: str) -> tuple[int, int]:
    sel = [e for e in entries if lo <= e.path < hi]
    return len(sel), sum(e.size for e in sel)


@pytest.mark.parametrize("bits", FANOUTS)
@PROPERTY
@given(data=st.data())
def test_lookups_and_scans_match_brute_force(bits: int | None, data: st.DataObject) -> None:
    with fanout(bits):
        entries = sorted_entries(data.draw(entry_maps(), label="entries"))
        keys = [e.path for e in entries]
        by_path = {e.path: e for e in entries}
        probes = st.sampled_from(keys) | probe_keys if keys else probe_keys
        sink = MemorySink()
        root = prolly.build(entries, sink.store(), sink)
        store = sink.store()
        for _ in range(5):
            key = data.draw(probes)

            # get: the entry at exactly that path
            assert prolly.get(root, key, store) == by_path.get(key)

            # iter_from: seeks to the first path >= key
            start = bisect.bisect_left(keys, key)
            assert list(prolly.iter_from(root, key, store)) == entries[start:]

            # iter_prefix: exactly the paths starting with the prefix, in order
            assert list(prolly.iter_prefix(root, key, store)) == [
                e for e in entries if e.path.startswith(key)
            ]

            # range_totals: (count, bytes) of lo <= path < hi, including empty/inverted ranges
            hi = data.draw(probes)
            assert prolly.range_totals(root, key, hi, store) == brute_range(entries, key, hi)
            assert prolly.range_totals(root, hi, key, store) == brute_range(entries, hi, key)


def test_a_scan_reads_nodes_ahead_in_growing_groups(big: BigTree) -> None:
    """Given a reader of many blobs at once (on S3: the nodes written together come in one
    GET), a scan of the whole tree reads its ~1,600 leaves in a few dozen groups, each node
    once; a short scan from a seek still reads about one node per level."""
    blobs = MemorySink(big.blobs).blobs
    groups: list[int] = []

    def read_many(digests: Sequence[bytes]) -> Iterator[bytes]:
        groups.append(len(digests))
        return iter([blobs[d] for d in digests])

    one = CountingReader(blobs)
    store = NodeStore(one, read_many)
    assert list(prolly.iter_from(big.root, "", store)) == big.entries
    assert one.reads + sum(groups) == big.nodes  # each node read once
    assert one.reads + len(groups) < big.nodes / 10
    assert max(groups) <= prolly.SCAN_AHEAD

    groups.clear()
    one = CountingReader(blobs)
    target = big.entries[77_777]
    ten = list(islice(prolly.iter_from(big.root, target.path, NodeStore(one, read_many)), 10))
    assert ten == big.entries[77_777:77_787]
    assert one.reads + sum(groups) <= big.height + 2


def test_seeks_in_a_big_tree_read_log_n_nodes(big: BigTree) -> None:
    sink = MemorySink(big.blobs)  # read-only below
    keys = [e.path for e in big.entries]

    def reads(fn: Callable[[NodeStore], object]) -> int:
        store, reader = counting_store(sink)
        fn(store)
        return reader.reads

    target = big.entries[77_777]
    assert prolly.get(big.root, target.path, sink.store()) == target
    assert reads(lambda s: prolly.get(big.root, target.path, s)) == big.height

    first_ten = big.entries[77_777:77_787]
    it = prolly.iter_from(big.root, target.path, sink.store())
    assert [next(it) for _ in range(10)] == first_ten
    # Ten entries from a seek: the path down to the first one, plus at most one more leaf.
    assert reads(lambda s: list(islice(prolly.iter_from(big.root, target.path, s), 10))) <= (
        big.height + 1
    )

    # 1,000 files of one directory: the leaves holding them, the path down to them, and the
    # next leaf (to see where the prefix ends) — not the other ~1,600 leaves.
    prefix = "/d42/"
    in_dir = [e for e in big.entries if e.path.startswith(prefix)]
    assert len(in_dir) == 1000
    assert list(prolly.iter_prefix(big.root, prefix, sink.store())) == in_dir
    leaves = levels(big.root, sink.store())[-1]
    holding = sum(any(k.startswith(prefix) for k in leaf.keys) for leaf in leaves)
    prefix_reads = reads(lambda s: list(prolly.iter_prefix(big.root, prefix, s)))
    assert prefix_reads <= holding + 2 * big.height
    assert prefix_reads < 60

    # Range totals over most of the tree use subtree aggregates: only the two edges are read.
    lo, hi = keys[1234], keys[98_765]
    expected = brute_range(big.entries, lo, hi)
    assert expected[0] == 98_765 - 1234
    assert prolly.range_totals(big.root, lo, hi, sink.store()) == expected
    # The root, then one node per level on the way down to each end of the range.
    assert reads(lambda s: prolly.range_totals(big.root, lo, hi, s)) <= 1 + 2 * (big.height - 1)
    assert prolly.totals(big.root, sink.store()) == (BIG, sum(range(BIG)))


def test_building_a_big_tree_keeps_a_bounded_number_of_nodes_in_memory() -> None:
    """The node store caches the nodes it writes as well as those it reads, a bounded number
    of them: building the tree of a million files holds a few thousand nodes, not all."""
    sink = MemorySink()
    store = sink.store()
    with fanout(1):  # about 2 entries per node: a few thousand entries make many nodes
        root = prolly.build([make_entry(f"/f{i:05}") for i in range(12_000)], store, sink)
    assert sink.new > prolly._CACHE_NODES
    assert len(store._cache) <= prolly._CACHE_NODES
    assert prolly.totals(root, store) == (12_000, 12_000 * 100)

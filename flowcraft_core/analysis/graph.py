"""Graph structure of a blueprint: entries, reachability, dominator loops (SPEC 3.1, 3.7).

One computation shared by the loader, the runtime compiler and the linter, so they cannot
disagree. Pure Python over integer arrays, iterative and near-linear:

* if blueprint order is already topological (checked in C), or Kahn's algorithm empties the
  graph, there are no cycles, hence no back edges, and dominators are skipped altogether;
* otherwise Tarjan runs only on what Kahn's algorithm leaves from both ends, and dominators
  (Cooper–Harvey–Kennedy) are computed inside each reachable cyclic SCC, where every back
  edge lies (see `_algorithms.find_loops`).

`predecessors` and `node_loops` are read-only views computed per lookup, so building the
structure of a 1,000,000-node chain does not build two more million-entry dicts.
Edges whose endpoints are not node ids are ignored: the loader reports them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress
from operator import lt
from types import MappingProxyType

from flowcraft_core.analysis._algorithms import Graph, Loops, cyclic_components, find_loops
from flowcraft_core.analysis._algorithms import reach as reach_from
from flowcraft_core.blueprint.model import Blueprint

from .._gc import gc_paused


@dataclass(frozen=True, slots=True)
class GraphStructure:
    """What the runtime, loader and linter need to know about a blueprint's graph.

    Nodes are named by id, edges by their index in `bp.edges`. Mappings are read-only.
    """

    node_ids: tuple[str, ...]
    #: Nodes named by some `config.fallback`.
    fallback_ids: frozenset[str]
    #: No incoming edge and not a fallback node, in blueprint order.
    start_ids: tuple[str, ...]
    #: Start nodes, then one entry per entered closed cycle (SPEC 3.1): its first node listed
    #: in `cycleEntryPoints` (list order); cycles ordered by their first node.
    entry_ids: tuple[str, ...]
    #: Closed cycles none of whose nodes is in `metadata.cycleEntryPoints`, in blueprint order.
    closed_cycles_without_entry: tuple[tuple[str, ...], ...]
    reachable: frozenset[str]
    back_edges: frozenset[int]
    loop_headers: tuple[str, ...]
    loop_body: Mapping[str, frozenset[str]]
    loop_parent: Mapping[str, str | None]
    #: Reachable node -> enclosing loop headers, outermost first (a header is in its own loop).
    node_loops: Mapping[str, tuple[str, ...]]
    exit_edges: Mapping[str, tuple[int, ...]]
    #: Sorted edge indices of one cycle per SCC left when back edges are removed; () if none.
    irreducible_edges: tuple[int, ...]
    #: Distinct predecessors over forward (non-back) edges, in order of first declaration.
    predecessors: Mapping[str, tuple[str, ...]]
    #: Every strongly connected component holding a cycle, reachable or not, in blueprint
    #: order. Empty exactly when the whole graph is a DAG.
    cyclic_components: tuple[tuple[str, ...], ...]


def compute_structure(bp: Blueprint) -> GraphStructure:
    """Analyse `bp`'s graph; see SPEC 3.1 (entries) and 3.7 (loops)."""
    return build_structure(bp).structure


@dataclass(frozen=True, slots=True)
class Built:
    """A structure with the arrays it came from, for analysis modules that need degrees or
    node positions without rebuilding million-entry maps."""

    structure: GraphStructure
    position: Mapping[str, int]  # node id -> first position in bp.nodes
    has_in: bytes  # per entry of structure.node_ids: 1 when some known edge enters it
    has_out: bytes
    in_degree: Sequence[int] | None  # likewise; only when some node has two or more


def build_structure(bp: Blueprint) -> Built:
    """`compute_structure` plus the intermediate arrays (package-internal).

    Cached on the blueprint (it is immutable): the loader, the runtime's plan and the linter
    all need it, and it is the costliest part of compiling a large blueprint.
    """
    cached = bp._cache.get("structure")
    if isinstance(cached, Built):
        return cached
    with gc_paused():
        built = _build_structure(bp)
    bp._cache["structure"] = built
    return built


def _build_structure(bp: Blueprint) -> Built:
    ids = [node.id for node in bp.nodes]
    index = position = dict(zip(ids, range(len(ids)), strict=True))
    if len(index) != len(ids):  # duplicate ids are a load error; keep the first
        position = dict(zip(reversed(ids), range(len(ids) - 1, -1, -1), strict=True))
        ids = list(dict.fromkeys(ids))
        index = dict(zip(ids, range(len(ids)), strict=True))
    n = len(ids)
    get = index.get
    src_opt = [get(edge.source) for edge in bp.edges]
    tgt_opt = [get(edge.target) for edge in bp.edges]
    eidx: Sequence[int] = range(len(src_opt))
    if None in src_opt or None in tgt_opt:
        pairs = enumerate(zip(src_opt, tgt_opt, strict=True))
        eidx = [e for e, (s, t) in pairs if s is not None and t is not None]
    src = [s for s in map(src_opt.__getitem__, eidx) if s is not None]
    tgt = [t for t in map(tgt_opt.__getitem__, eidx) if t is not None]
    g = Graph(n, src, tgt, eidx)

    has_in = bytearray(n)
    for t in tgt:
        has_in[t] = 1
    has_out = bytearray(n)
    for s in src:
        has_out[s] = 1
    named = {f for node in bp.nodes if (f := node.config.fallback) is not None}
    fallback = {index[f] for f in named if f in index}
    starts = [v for v in compress(range(n), map((1).__xor__, has_in)) if v not in fallback]

    comp, cyclic = _cyclic_components(g)
    listed = [index[c] for c in bp.metadata.cycle_entry_points if c in index]
    entries = list(starts)
    without_entry: list[list[int]] = []
    for members in _closed(g, comp, cyclic):
        cid = comp[members[0]]
        chosen = next((v for v in listed if comp[v] == cid), None)
        if chosen is None:
            without_entry.append(members)
            if not starts:
                chosen = next((v for v in members if v not in fallback), None)
        if chosen is not None and chosen not in fallback:
            entries.append(chosen)
    entries = list(dict.fromkeys(entries))

    reach: list[int] | None  # None: every node
    if cyclic or any(has_out[v] for v in fallback):
        reach = reach_from(g, entries)
    elif fallback:
        # In a DAG every node descends from a source. When fallback nodes lead nowhere, every
        # source except an edgeless fallback node is a start, so no traversal is needed.
        reach = [v for v in range(n) if v not in fallback or has_in[v]]
    else:
        reach = None
    loops = Loops()
    if cyclic and reach is not None:
        reached = bytearray(n)
        for v in reach:
            reached[v] = 1
        loops = find_loops(g, entries, cyclic, reached)
    reachable = frozenset(ids) if reach is None else frozenset(ids[v] for v in reach)
    headers = loops.headers
    nested = loops.node_loops
    structure = GraphStructure(
        node_ids=tuple(ids),
        fallback_ids=frozenset(ids[v] for v in fallback),
        start_ids=tuple(ids[v] for v in starts),
        entry_ids=tuple(ids[v] for v in entries),
        closed_cycles_without_entry=tuple(tuple(ids[v] for v in m) for m in without_entry),
        reachable=reachable,
        back_edges=frozenset(loops.back),
        loop_headers=tuple(ids[h] for h in headers),
        loop_body=MappingProxyType(
            {ids[h]: frozenset(ids[v] for v in loops.body[h]) for h in headers}
        ),
        loop_parent=MappingProxyType(
            {ids[h]: (ids[nested[h][-2]] if len(nested[h]) > 1 else None) for h in headers}
        ),
        node_loops=_NodeLoops(ids, index, reachable, nested),
        exit_edges=MappingProxyType({ids[h]: loops.exits[h] for h in headers}),
        irreducible_edges=loops.irreducible,
        predecessors=_Predecessors(g, ids, index, loops.back),
        cyclic_components=tuple(tuple(ids[v] for v in members) for members in cyclic),
    )
    in_degree = None
    if len(tgt) > sum(has_in):
        in_degree = [0] * n
        for t in tgt:
            in_degree[t] += 1
    return Built(structure, position, bytes(has_in), bytes(has_out), in_degree)


def _cyclic_components(g: Graph) -> tuple[list[int], list[list[int]]]:
    """Component number per node (-1 when on no cycle) and the cyclic SCCs."""
    comp = [-1] * g.n
    if all(map(lt, g.src, g.tgt)):  # blueprint order is topological: the usual case, in C
        return comp, []
    cyclic = cyclic_components(g)
    for cid, members in enumerate(cyclic):
        for v in members:
            comp[v] = cid
    return comp, cyclic


def _closed(g: Graph, comp: list[int], cyclic: list[list[int]]) -> list[list[int]]:
    """Cyclic SCCs that no edge enters from outside (closed cycles, SPEC 3.1)."""
    if not cyclic:
        return []
    off, adj, _ = g.inc()
    return [
        members
        for cid, members in enumerate(cyclic)
        if all(comp[adj[k]] == cid for v in members for k in range(off[v], off[v + 1]))
    ]


class _Predecessors(Mapping[str, tuple[str, ...]]):
    """node id -> distinct forward predecessors in order of first edge declaration."""

    __slots__ = ("_back", "_g", "_ids", "_index")

    def __init__(self, g: Graph, ids: list[str], index: dict[str, int], back: set[int]) -> None:
        self._g, self._ids, self._index, self._back = g, ids, index, back

    def __getitem__(self, node_id: str) -> tuple[str, ...]:
        v = self._index[node_id]
        off, adj, eid = self._g.inc()  # eid is in declaration order per target
        back, ids = self._back, self._ids
        seen = dict.fromkeys(adj[k] for k in range(off[v], off[v + 1]) if eid[k] not in back)
        return tuple(ids[u] for u in seen)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return f"<predecessors of {len(self)} nodes>"


class _NodeLoops(Mapping[str, tuple[str, ...]]):
    """reachable node id -> enclosing loop headers, outermost first."""

    __slots__ = ("_ids", "_index", "_nested", "_reachable")

    def __init__(
        self,
        ids: list[str],
        index: dict[str, int],
        reachable: frozenset[str],
        nested: dict[int, list[int]],
    ) -> None:
        self._ids, self._index, self._reachable, self._nested = ids, index, reachable, nested

    def __getitem__(self, node_id: str) -> tuple[str, ...]:
        if node_id not in self._reachable:
            raise KeyError(node_id)
        return tuple(self._ids[h] for h in self._nested.get(self._index[node_id], ()))

    def __iter__(self) -> Iterator[str]:
        return (i for i in self._ids if i in self._reachable)

    def __len__(self) -> int:
        return len(self._reachable)

    def __repr__(self) -> str:
        return f"<loops of {len(self)} reachable nodes>"

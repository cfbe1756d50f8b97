"""Graph algorithms over integer node indices: CSR adjacency, Kahn, Tarjan, dominator loops.

Everything is iterative (a 1,000,000-node chain must not hit the recursion limit) and leans on
C-level builtins (`sorted`, `map`, `accumulate`) where Python loops would dominate.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate

Csr = tuple[list[int], list[int], list[int]]


def csr(n: int, keys: Sequence[int], values: Sequence[int], eidx: Sequence[int]) -> Csr:
    """Group `values` and edge indices by `keys` (stable): `adj[off[k]:off[k + 1]]`."""
    order = sorted(range(len(keys)), key=keys.__getitem__)
    counts = [0] * (n + 1)
    for k in keys:
        counts[k + 1] += 1
    return (
        list(accumulate(counts)),
        list(map(values.__getitem__, order)),
        list(map(eidx.__getitem__, order)),
    )


class Graph:
    """Edges as parallel arrays; outgoing and incoming CSR built on first use."""

    __slots__ = ("_in", "_out", "eidx", "n", "src", "tgt")

    def __init__(self, n: int, src: list[int], tgt: list[int], eidx: Sequence[int]) -> None:
        self.n = n
        self.src = src
        self.tgt = tgt
        self.eidx = eidx  # blueprint edge index of each kept edge
        self._out: Csr | None = None
        self._in: Csr | None = None

    def out(self) -> Csr:
        """(offsets, targets, edge indices) by source, in declaration order."""
        if self._out is None:
            self._out = csr(self.n, self.src, self.tgt, self.eidx)
        return self._out

    def inc(self) -> Csr:
        """(offsets, sources, edge indices) by target, in declaration order."""
        if self._in is None:
            self._in = csr(self.n, self.tgt, self.src, self.eidx)
        return self._in


def reach(g: Graph, entries: list[int]) -> list[int]:
    """Nodes reachable from `entries`."""
    off, adj, _ = g.out()
    seen = [False] * g.n
    order: list[int] = []
    stack = list(reversed(entries))
    while stack:
        v = stack.pop()
        if not seen[v]:
            seen[v] = True
            order.append(v)
            stack.extend(adj[off[v] : off[v + 1]])
    return order


def kahn_residual(
    g: Graph, nodes: Iterable[int], skip: set[int] | None = None, *, backward: bool = False
) -> list[int]:
    """Nodes of `nodes` left by Kahn's algorithm on their induced subgraph minus `skip` edges.

    Empty exactly when that subgraph is acyclic; otherwise every cycle lies inside the result.
    Forward peels sources (leaving cycles and what follows them), backward peels sinks.
    """
    off, adj, eid = g.inc() if backward else g.out()
    skip = skip or set()
    member = [False] * g.n
    pool = list(nodes)
    for v in pool:
        member[v] = True
    indeg = [0] * g.n
    for v in pool:
        for k in range(off[v], off[v + 1]):
            if member[adj[k]] and eid[k] not in skip:
                indeg[adj[k]] += 1
    queue = [v for v in pool if indeg[v] == 0]
    for v in queue:  # the list grows while we iterate: a FIFO without deque overhead
        for k in range(off[v], off[v + 1]):
            w = adj[k]
            if member[w] and eid[k] not in skip:
                indeg[w] -= 1
                if indeg[w] == 0:
                    queue.append(w)
    return [] if len(queue) == len(pool) else [v for v in pool if indeg[v] > 0]


def cyclic_components(g: Graph) -> list[list[int]]:
    """The SCCs holding a cycle, each sorted, ordered by first node."""
    residual = kahn_residual(g, range(g.n))
    if residual:  # drop what merely follows a cycle before Tarjan
        residual = kahn_residual(g, residual, backward=True)
    return tarjan(g, residual) if residual else []


def tarjan(g: Graph, nodes: list[int], skip: set[int] | None = None) -> list[list[int]]:
    """Iterative Tarjan on the subgraph induced by `nodes` minus `skip` edges.

    Returns only the SCCs holding a cycle (size > 1, or a self-loop), each sorted, ordered by
    their first node.
    """
    off, adj, eid = g.out()
    skip = skip or set()
    member = [False] * g.n
    for v in nodes:
        member[v] = True
    num = [-1] * g.n
    low = [0] * g.n
    ptr = [0] * g.n
    on_stack = [False] * g.n
    stack: list[int] = []
    found: list[list[int]] = []
    counter = 0
    for root in nodes:
        if num[root] != -1:
            continue
        num[root] = low[root] = counter
        counter += 1
        ptr[root] = off[root]
        stack.append(root)
        on_stack[root] = True
        call = [root]
        while call:
            v = call[-1]
            k, end = ptr[v], off[v + 1]
            while k < end:
                w = adj[k]
                k += 1
                if not member[w] or eid[k - 1] in skip:
                    continue
                if num[w] == -1:
                    num[w] = low[w] = counter
                    counter += 1
                    ptr[w] = off[w]
                    stack.append(w)
                    on_stack[w] = True
                    call.append(w)
                    break
                if on_stack[w] and num[w] < low[v]:
                    low[v] = num[w]
            ptr[v] = k
            if call[-1] != v:
                continue  # descended into w; v resumes at ptr[v] later
            call.pop()
            if call and low[v] < low[call[-1]]:
                low[call[-1]] = low[v]
            if low[v] == num[v]:
                scc: list[int] = []
                while True:
                    w = stack.pop()
                    on_stack[w] = False
                    scc.append(w)
                    if w == v:
                        break
                if len(scc) > 1 or any(
                    adj[j] == v and eid[j] not in skip for j in range(off[v], off[v + 1])
                ):
                    found.append(sorted(scc))
    found.sort()
    return found


def dominator_intervals(g: Graph, entries: list[int]) -> tuple[list[int], list[int], list[int]]:
    """Nodes reachable from `entries`, and pre/post numbers of the dominator tree (virtual
    root linked to `entries`): `h` dominates `u` iff `pre[h] <= pre[u] and post[u] <= post[h]`.

    Dominators by Cooper–Harvey–Kennedy over an iteratively computed reverse postorder.
    """
    n = g.n
    root = n
    out_off, out_adj, _ = g.out()
    in_off, in_adj, _ = g.inc()
    po = [-1] * (n + 1)
    seen = [False] * n
    reached: list[int] = []
    postorder: list[int] = []
    ptr = out_off[:-1]
    for s in entries:  # the virtual root's children, in order
        if seen[s]:
            continue
        seen[s] = True
        reached.append(s)
        stack = [s]
        while stack:
            v = stack[-1]
            k, end = ptr[v], out_off[v + 1]
            while k < end:
                w = out_adj[k]
                k += 1
                if not seen[w]:
                    seen[w] = True
                    reached.append(w)
                    stack.append(w)
                    break
            ptr[v] = k
            if stack[-1] == v:
                stack.pop()
                po[v] = len(postorder)
                postorder.append(v)
    po[root] = len(postorder)
    postorder.append(root)
    is_entry = [False] * n
    for v in entries:
        is_entry[v] = True

    idom = [-1] * (n + 1)
    idom[root] = root

    def intersect(a: int, b: int) -> int:
        while a != b:
            while po[a] < po[b]:
                a = idom[a]
            while po[b] < po[a]:
                b = idom[b]
        return a

    def solve(v: int) -> int:
        new = root if is_entry[v] else -1
        for k in range(in_off[v], in_off[v + 1]):
            p = in_adj[k]
            if idom[p] != -1:
                new = p if new == -1 else intersect(p, new)
        return new

    # A node with a single incoming edge gets its source as idom on the first pass (the source
    # precedes it in reverse postorder) and never changes, so later passes skip it.
    multi: list[int] = []
    for i in range(len(postorder) - 2, -1, -1):
        v = postorder[i]
        lo, hi = in_off[v], in_off[v + 1]
        if hi - lo == 1 and not is_entry[v]:
            idom[v] = in_adj[lo]
        elif lo == hi:
            idom[v] = root
        else:
            multi.append(v)
            idom[v] = solve(v)
    changed = bool(multi)
    while changed:
        changed = False
        for v in multi:
            new = solve(v)
            if idom[v] != new:
                idom[v] = new
                changed = True

    t_off, t_adj, _ = csr(n + 1, [idom[v] for v in reached], reached, range(len(reached)))
    pre = [0] * (n + 1)
    post = [0] * (n + 1)
    clock = 0
    tptr = t_off[:-1]
    tstack = [root]
    while tstack:
        v = tstack[-1]
        clock += 1
        k = tptr[v]
        if k < t_off[v + 1]:
            w = t_adj[k]
            tptr[v] = k + 1
            pre[w] = clock
            tstack.append(w)
        else:
            post[v] = clock
            tstack.pop()
    return reached, pre, post


@dataclass(slots=True)
class Loops:
    """Loop facts over node and edge indices (empty for an acyclic reachable graph)."""

    back: set[int] = field(default_factory=set)
    headers: list[int] = field(default_factory=list)  # blueprint order
    body: dict[int, set[int]] = field(default_factory=dict)
    node_loops: dict[int, list[int]] = field(default_factory=dict)  # outermost first
    exits: dict[int, tuple[int, ...]] = field(default_factory=dict)
    irreducible: tuple[int, ...] = ()


def find_loops(
    g: Graph, entries: list[int], cyclic: list[list[int]], reached: Sequence[int]
) -> Loops:
    """Back edges, natural loops and irreducible cycles (SPEC 3.7), one cyclic SCC at a time.

    A back edge `u -> h` needs `h` to reach `u`, so it lies inside one SCC. A path that leaves
    an SCC never comes back to it, so a root path to `u` enters `u`'s SCC once and then stays
    inside: `h` dominates `u` exactly when it does in the SCC alone, with a virtual root linked
    to the SCC's entry nodes (global entries and targets of reachable outside edges). Loop
    bodies stay inside the SCC too. Only the cyclic parts of a graph pay for dominators.
    """
    out_off, out_adj, out_eid = g.out()
    in_off, in_adj, _ = g.inc()
    is_entry = set(entries)
    local = [-1] * g.n
    result = Loops()
    irreducible: list[int] = []
    for members in cyclic:
        if not reached[members[0]]:
            continue
        for i, v in enumerate(members):
            local[v] = i
        src: list[int] = []
        tgt: list[int] = []
        eids: list[int] = []
        starts: list[int] = []
        for i, v in enumerate(members):
            if v in is_entry or any(
                local[u] == -1 and reached[u] for u in in_adj[in_off[v] : in_off[v + 1]]
            ):
                starts.append(i)
            for k in range(out_off[v], out_off[v + 1]):
                if local[out_adj[k]] != -1:
                    src.append(i)
                    tgt.append(local[out_adj[k]])
                    eids.append(out_eid[k])
        sub = Graph(len(members), src, tgt, eids)
        _, pre, post = dominator_intervals(sub, starts)
        back: set[int] = set()
        latches: dict[int, list[int]] = {}
        for s, t, e in zip(src, tgt, eids, strict=True):
            if pre[t] <= pre[s] and post[s] <= post[t]:
                back.add(e)
                latches.setdefault(t, []).append(s)
        sub_in_off, sub_in_adj, _ = sub.inc()
        for h in sorted(latches, key=pre.__getitem__):  # enclosing headers dominate inner ones
            body = {h}
            work = [u for u in latches[h] if u != h]
            body.update(work)
            while work:
                v = work.pop()
                for w in sub_in_adj[sub_in_off[v] : sub_in_off[v + 1]]:
                    if w not in body:
                        body.add(w)
                        work.append(w)
            header = members[h]
            result.body[header] = {members[v] for v in body}
            for v in body:
                result.node_loops.setdefault(members[v], []).append(header)
        result.back |= back
        irreducible.extend(irreducible_cycles(sub, range(len(members)), back))
        for v in members:
            local[v] = -1
    result.headers = sorted(result.body)
    for h in result.headers:
        body = result.body[h]
        result.exits[h] = tuple(
            sorted(
                out_eid[k]
                for v in body
                for k in range(out_off[v], out_off[v + 1])
                if out_adj[k] not in body
            )
        )
    result.irreducible = tuple(sorted(irreducible))
    return result


def irreducible_cycles(g: Graph, reached: Iterable[int], back: set[int]) -> tuple[int, ...]:
    """Edge indices of one cycle per cyclic SCC of the reachable graph minus its back edges."""
    residual = kahn_residual(g, reached, back)
    if not residual:
        return ()
    off, adj, eid = g.out()
    found: list[int] = []
    for members in tarjan(g, residual, back):
        inside = set(members)
        start = members[0]
        parent: dict[int, tuple[int, int]] = {}  # node -> (previous node, edge index)
        queue = deque([start])
        closing: tuple[int, int] | None = None
        while queue and closing is None:
            v = queue.popleft()
            for k in range(off[v], off[v + 1]):
                w, e = adj[k], eid[k]
                if w not in inside or e in back:
                    continue
                if w == start:
                    closing = (v, e)
                    break
                if w not in parent:
                    parent[w] = (v, e)
                    queue.append(w)
        if closing is None:  # pragma: no cover - a cyclic SCC always closes through `start`
            continue
        v, e = closing
        found.append(e)
        while v != start:
            v, e = parent[v]
            found.append(e)
    return tuple(sorted(found))

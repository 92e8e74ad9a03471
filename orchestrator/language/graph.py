"""The campaign as a directed graph. The only module that imports networkx.

Nodes are the campaign's node ids plus the sentinel `end`; edges carry their
kind (convert, no_convert, split, branch, else, next), delay and label.
Everything here speaks in node ids, never in networkx objects.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import timedelta

import networkx as nx

from orchestrator.language.spec import (
    END,
    BranchNode,
    Campaign,
    NotificationNode,
    SplitNode,
    WaitNode,
    format_duration,
)


@dataclass(frozen=True)
class EdgeInfo:
    source: str
    target: str
    kind: str  # convert | no_convert | split | branch | else | next
    delay: timedelta
    label: str  # what to write on the edge: weight, segment, delay


@dataclass(frozen=True)
class CycleProblem:
    nodes: tuple[str, ...]  # the cycle, first node repeated at the end
    reason: str  # "no_notification" | "through_convert"
    edge: tuple[str, str] | None = None  # the convert edge, for through_convert


def _edges_of(campaign: Campaign) -> list[EdgeInfo]:
    edges: list[EdgeInfo] = []
    for sub in campaign.subcampaigns.values():
        for node_id, node in sub.nodes.items():
            if isinstance(node, NotificationNode):
                for kind, edge in (
                    ("convert", node.on_convert),
                    ("no_convert", node.on_no_convert),
                ):
                    target = edge.to if edge else END
                    delay = edge.delay if edge else timedelta(0)
                    label = format_duration(delay) if delay else ""
                    if edge is not None and edge.at is not None:
                        label = f"{label} at {edge.at:%H:%M}".strip()
                    edges.append(EdgeInfo(node_id, target, kind, delay, label))
            elif isinstance(node, SplitNode):
                total = sum(node.arms.values())
                winner = node.options.winner
                for target, weight in node.arms.items():
                    share = weight * 100 / total if total else 0
                    # a finished test sends every new journey to its winner
                    label = (
                        f"{share:g}%"
                        if winner is None
                        else ("winner" if target == winner else "ended")
                    )
                    edges.append(EdgeInfo(node_id, target, "split", timedelta(0), label))
            elif isinstance(node, BranchNode):
                for case in node.branch:
                    if case.else_ is not None:
                        edges.append(EdgeInfo(node_id, case.else_, "else", timedelta(0), "else"))
                    else:
                        assert case.to is not None and case.segment is not None
                        edges.append(
                            EdgeInfo(node_id, case.to, "branch", timedelta(0), case.segment)
                        )
            elif isinstance(node, WaitNode):
                edges.append(
                    EdgeInfo(node_id, node.next, "next", node.wait, format_duration(node.wait))
                )
    return edges


class CampaignGraph:
    """A validated campaign's flowchart with the analyses the validator and renderers need."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self.nodes = campaign.all_nodes()
        self.edges = [e for e in _edges_of(campaign) if e.target == END or e.target in self.nodes]
        self.starts = {name: sub.start for name, sub in campaign.subcampaigns.items()}
        self._g: nx.MultiDiGraph = nx.MultiDiGraph()
        self._g.add_node(END)
        for node_id in self.nodes:
            self._g.add_node(node_id)
        for e in self.edges:
            self._g.add_edge(e.source, e.target, kind=e.kind)

    # ------------------------------------------------------------ basic queries

    def kind(self, node_id: str) -> str:
        if node_id == END:
            return "end"
        node = self.nodes[node_id]
        if isinstance(node, NotificationNode):
            return "notification"
        if isinstance(node, SplitNode):
            return "split"
        if isinstance(node, BranchNode):
            return "branch"
        return "wait"

    def out_edges(self, node_id: str) -> list[EdgeInfo]:
        return [e for e in self.edges if e.source == node_id]

    def reachable(self) -> set[str]:
        seen: set[str] = set()
        for start in self.starts.values():
            if start in self._g:
                seen.add(start)
                seen |= nx.descendants(self._g, start)
        return seen

    def unreachable(self) -> list[str]:
        seen = self.reachable()
        return [n for n in self.nodes if n not in seen]

    def subcampaigns_without_end(self) -> list[str]:
        """Sub-campaigns whose start has no path to `end`."""
        out = []
        for name, start in self.starts.items():
            if start in self._g and not nx.has_path(self._g, start, END):
                out.append(name)
        return out

    # ------------------------------------------------------------ cycles

    def unbounded_cycles(self, *, max_sends: int | None) -> list[CycleProblem]:
        """Cycles that can run forever, as the spec defines them.

        A cycle is bounded by the follow-up cap when it has a notification node
        and leaves every notification node on it by `on_no_convert`. Any edge
        inside a strongly connected component lies on some cycle, so a convert
        edge inside one means a cycle through a convert (needs max_sends).
        """
        problems: list[CycleProblem] = []
        simple = nx.DiGraph(self._g)
        for component in nx.strongly_connected_components(simple):
            if len(component) == 1:
                (only,) = component
                if not simple.has_edge(only, only):
                    continue
            quiet = [n for n in component if n != END and self.kind(n) != "notification"]
            quiet_graph = self._ordered(quiet)
            for quiet_component in nx.strongly_connected_components(quiet_graph):
                members = self._ordered(quiet_component)
                q = next(iter(members))  # the first in file order: the same report every run
                if len(quiet_component) > 1 or quiet_graph.has_edge(q, q):
                    cycle = nx.find_cycle(members, source=q)
                    problems.append(CycleProblem(_cycle_nodes(cycle), "no_notification"))
            if max_sends is not None:
                continue
            sub = self._ordered(component)
            for e in self.edges:
                if e.kind == "convert" and e.source in component and e.target in component:
                    back = nx.shortest_path(sub, e.target, e.source)
                    problems.append(
                        CycleProblem((e.source, *back), "through_convert", (e.source, e.target))
                    )
                    break
        return problems

    def _ordered(self, members: set[str] | list[str]) -> nx.DiGraph:
        """The subgraph of some nodes, built in file order so that every walk is deterministic."""
        wanted = set(members)
        graph = nx.DiGraph()
        graph.add_nodes_from(n for n in (*self.nodes, END) if n in wanted)
        graph.add_edges_from(
            (e.source, e.target) for e in self.edges if e.source in wanted and e.target in wanted
        )
        return graph

    # ------------------------------------------------------------ follow-ups

    def min_followups(self) -> dict[str, int]:
        """For each notification node: the fewest no-convert follow-ups in a row before it sends.

        A convert edge resets the count; split, branch and wait keep it.
        """
        best: dict[str, int] = {}
        heap = [(0, s) for s in set(self.starts.values()) if s in self.nodes]
        heapq.heapify(heap)
        while heap:
            count, node_id = heapq.heappop(heap)
            if node_id in best:
                continue
            best[node_id] = count
            for e in self.out_edges(node_id):
                if e.target == END or e.target in best:
                    continue
                nxt = 0 if e.kind == "convert" else count + (1 if e.kind == "no_convert" else 0)
                heapq.heappush(heap, (nxt, e.target))
        return {n: c for n, c in best.items() if self.kind(n) == "notification"}

    def never_sent(self, followup_cap: int) -> dict[str, int]:
        """Notification nodes reachable only past the follow-up cap (node -> fewest follow-ups)."""
        return {n: c for n, c in self.min_followups().items() if c > followup_cap}

    def longest_followup_chain(self) -> int | None:
        """The most no-convert edges in a row the drawing allows; None when a loop makes it unbounded."""
        chain = nx.DiGraph()
        chain.add_nodes_from(self._g.nodes)
        for e in self.edges:
            if e.kind != "convert":
                weight = 1 if e.kind == "no_convert" and e.target != END else 0
                if chain.has_edge(e.source, e.target):
                    weight = max(weight, chain[e.source][e.target]["weight"])
                chain.add_edge(e.source, e.target, weight=weight)
        if not nx.is_directed_acyclic_graph(chain):
            for component in nx.strongly_connected_components(chain):
                sub = chain.subgraph(component)
                if any(d["weight"] for _, _, d in sub.edges(data=True)):
                    return None
            chain = nx.condensation(chain)  # cycles of zero weight only: collapse them
            for u, v in chain.edges:
                chain[u][v]["weight"] = 0
        return int(nx.dag_longest_path_length(chain, weight="weight", default_weight=0))

    # ------------------------------------------------------------ drawing

    def back_edges(self) -> set[tuple[str, str]]:
        """Edges that point back up the flow (found by depth-first search from each start)."""
        back: set[tuple[str, str]] = set()
        simple = nx.DiGraph(self._g)
        roots = [*self.starts.values(), *self.nodes]
        visited: set[str] = set()
        for root in roots:
            if root in visited or root not in simple:
                continue
            on_stack: set[str] = set()
            stack: list[tuple[str, list[str]]] = [(root, sorted(simple.successors(root)))]
            visited.add(root)
            on_stack.add(root)
            while stack:
                node, todo = stack[-1]
                if not todo:
                    stack.pop()
                    on_stack.discard(node)
                    continue
                nxt = todo.pop(0)
                if nxt in on_stack:
                    back.add((node, nxt))
                elif nxt not in visited:
                    visited.add(nxt)
                    on_stack.add(nxt)
                    stack.append((nxt, sorted(simple.successors(nxt))))
        return back

    def layers(self, subcampaign: str) -> list[list[str]]:
        """Topological layers of one sub-campaign's nodes (back edges ignored), start first."""
        members = list(self.campaign.subcampaigns[subcampaign].nodes)
        back = self.back_edges()
        dag = nx.DiGraph()
        dag.add_nodes_from(members)
        for e in self.edges:
            if e.source in dag and e.target in dag and (e.source, e.target) not in back:
                dag.add_edge(e.source, e.target)
        start = self.starts[subcampaign]
        depth: dict[str, int] = {}
        for generation, layer in enumerate(nx.topological_generations(dag)):
            for node_id in layer:
                depth[node_id] = generation
        if start in depth and depth[start] != 0:  # keep the start on top
            depth[start] = 0
            for node_id in nx.topological_sort(dag):
                preds = [depth[p] + 1 for p in dag.predecessors(node_id)]
                if node_id != start and preds:
                    depth[node_id] = max(preds)
        out: list[list[str]] = []
        for node_id in members:  # keep file order inside a layer
            d = depth[node_id]
            while len(out) <= d:
                out.append([])
            out[d].append(node_id)
        return [layer for layer in out if layer]


def _cycle_nodes(
    cycle_edges: list[tuple[str, str]] | list[tuple[str, str, str]],
) -> tuple[str, ...]:
    nodes = [edge[0] for edge in cycle_edges]
    return (*nodes, nodes[0])

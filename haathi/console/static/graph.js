// haathi console: the DAG and lineage graphs. The page embeds its graph as JSON
// (<script type="application/json" id="graph-data">); this lays it out with the vendored
// dagre and draws it as SVG, every label set as text (nothing the server sent is parsed as
// markup). The DAG page then polls its state URL: the same JSON, whose job states and
// progress update the nodes in place (a changed set of nodes or edges is drawn again).
// Timings of the last drawing are left on the container (data-layout-ms, data-drawn-ms,
// data-painted-ms) for the benchmark (bench/console.py).
(function () {
  "use strict";

  const SVG = "http://www.w3.org/2000/svg";
  const BIG = 150; // above this many nodes: dagre's fast ranker (network simplex costs seconds)

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const key in attrs) {
      if (attrs[key] !== undefined && attrs[key] !== null) node.setAttribute(key, String(attrs[key]));
    }
    if (parent) parent.appendChild(node);
    return node;
  }

  function label(parent, x, y, content, cls) {
    const node = el("text", { x: x, y: y, class: cls }, parent);
    node.textContent = content;
    return node;
  }

  function title(parent, content) {
    el("title", {}, parent).textContent = content;
  }

  // the end of a long text (a path's file name matters most), in at most n characters
  function clip(text, n) {
    return text.length <= n ? text : "…" + text.slice(text.length - n + 1);
  }

  function lower(text) {
    return String(text || "").toLowerCase();
  }

  // ---- layout and drawing, shared ---------------------------------------------------------

  function layout(nodes, edges, size) {
    const g = new dagre.graphlib.Graph();
    g.setGraph({
      rankdir: "LR", nodesep: 14, ranksep: 64, edgesep: 10, marginx: 16, marginy: 16,
      ranker: nodes.length > BIG ? "tight-tree" : "network-simplex",
    });
    g.setDefaultEdgeLabel(function () { return {}; });
    for (const n of nodes) g.setNode(n.id, { width: size.w, height: size.h });
    for (const e of edges) {
      if (g.hasNode(e.from) && g.hasNode(e.to) && e.from !== e.to) g.setEdge(e.from, e.to);
    }
    dagre.layout(g);
    return g;
  }

  function edgePath(points) {
    let d = "M" + points[0].x + "," + points[0].y;
    for (let i = 1; i < points.length; i++) d += " L" + points[i].x + "," + points[i].y;
    return d;
  }

  // the SVG of graph g, each node drawn by drawNode(group, node, size, {nodes, edges})
  function svgOf(g, nodes, edges, size, drawNode) {
    const box = g.graph();
    const width = Math.ceil(box.width || 0), height = Math.ceil(box.height || 0);
    const svg = el("svg", {
      xmlns: SVG, width: width, height: height, viewBox: "0 0 " + width + " " + height,
      role: "img", class: "graph-svg",
    });
    const marker = el("marker", {
      id: "graph-arrow", viewBox: "0 0 10 10", refX: 9, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse",
    }, el("defs", {}, svg));
    el("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow" }, marker);
    const edgeLayer = el("g", { class: "edges" }, svg);
    for (const e of g.edges()) {
      el("path", {
        d: edgePath(g.edge(e).points), class: "edge", "marker-end": "url(#graph-arrow)",
        "data-from": e.v, "data-to": e.w,
      }, edgeLayer);
    }
    const nodeLayer = el("g", { class: "nodes" }, svg);
    const drawn = new Map();
    for (const n of nodes) {
      const at = g.node(n.id);
      const group = el("g", {
        transform: "translate(" + (at.x - size.w / 2) + "," + (at.y - size.h / 2) + ")",
      }, nodeLayer);
      drawn.set(n.id, drawNode(group, n, size, { nodes: nodes, edges: edges }));
    }
    return { svg: svg, drawn: drawn };
  }

  // lay out and draw `nodes` into `box`, leaving the timings on it
  function draw(box, nodes, edges, size, drawNode) {
    const start = performance.now();
    const g = layout(nodes, edges, size);
    const laidOut = performance.now();
    const made = svgOf(g, nodes, edges, size, drawNode);
    box.replaceChildren(made.svg);
    const drawn = performance.now();
    box.dataset.nodes = String(nodes.length);
    box.dataset.layoutMs = (laidOut - start).toFixed(1);
    box.dataset.drawnMs = (drawn - start).toFixed(1);
    delete box.dataset.paintedMs;
    requestAnimationFrame(function () {
      setTimeout(function () { // after the frame that shows it
        box.dataset.paintedMs = (performance.now() - start).toFixed(1);
        box.dataset.paintedAt = performance.now().toFixed(1);
      }, 0);
    });
    return made.drawn;
  }

  function fitButton(box) {
    const button = document.getElementById("graph-fit");
    if (!button) return;
    button.addEventListener("click", function () {
      const fit = box.classList.toggle("fit");
      button.setAttribute("aria-pressed", fit ? "true" : "false");
      button.textContent = fit ? "Actual size" : "Fit to window";
    });
  }

  function showEmpty(nodes) {
    const empty = document.getElementById("graph-empty");
    if (empty) empty.hidden = nodes.length > 0;
  }

  // ---- the DAG of a project ---------------------------------------------------------------

  const DAG_NODE = { w: 196, h: 62 };
  const BUSY_POLL_MS = 1000; // while a job is queued or running: its progress, every second

  function jobText(n) {
    if (n.active) {
      const a = n.active;
      if (lower(a.state) === "created") return "job queued: waits to run";
      return lower(a.state) + " · " + a.done + "/" + a.total + " datum" + (a.total === 1 ? "" : "s") +
        (a.failed ? " · " + a.failed + " failed" : "");
    }
    return n.job ? "job " + lower(n.job) : "no job yet";
  }

  function jobState(n) {
    return n.active ? lower(n.active.state) : lower(n.job || "none");
  }

  function dagClass(n) {
    if (n.kind !== "pipeline") return "node repo";
    return "node pipeline job-" + jobState(n) + " pipeline-" + lower(n.state);
  }

  function dagTitle(n) {
    if (n.kind !== "pipeline") return "repo " + n.label;
    return "pipeline " + n.label + " (" + lower(n.state) + "): " + jobText(n);
  }

  function progress(n, w) {
    const a = n.active;
    if (!a || !a.total) return 0;
    return Math.max(2, Math.round((w - 20) * Math.min(1, a.done / a.total)));
  }

  function drawDagNode(group, n, size, graph) {
    const link = el("a", { href: n.url, class: dagClass(n), "data-id": n.id }, group);
    title(link, dagTitle(n));
    el("rect", { class: "box", width: size.w, height: size.h, rx: 7, ry: 7 }, link);
    label(link, 10, 16, n.kind === "pipeline" ? "PIPELINE" : "REPO", "kind-label");
    label(link, 10, 34, clip(n.label, 24), "name");
    const parts = { link: link, status: null, bar: null };
    if (n.kind !== "pipeline") {
      const read = graph.edges.some(function (e) { return e.from === n.id; });
      label(link, 10, 50, read ? "input repo" : "no pipeline reads it", "status");
    } else {
      parts.status = label(link, 10, 50, jobText(n) + (lower(n.state) === "paused" ? " · paused" : ""), "status");
      el("rect", { class: "bar-bg", x: 10, y: size.h - 7, width: size.w - 20, height: 3 }, link);
      parts.bar = el("rect", { class: "bar", x: 10, y: size.h - 7, width: progress(n, size.w), height: 3 }, link);
    }
    return parts;
  }

  function shape(graph) {
    const ids = graph.nodes.map(function (n) { return n.kind + " " + n.id + " " + n.label; });
    const edges = graph.edges.map(function (e) { return e.from + ">" + e.to; });
    return JSON.stringify([ids, edges]);
  }

  function updateDag(drawn, graph) {
    for (const n of graph.nodes) {
      const parts = drawn.get(n.id);
      if (!parts || n.kind !== "pipeline") continue;
      parts.link.setAttribute("class", dagClass(n));
      parts.link.setAttribute("href", n.url);
      parts.link.querySelector("title").textContent = dagTitle(n);
      parts.status.textContent = jobText(n) + (lower(n.state) === "paused" ? " · paused" : "");
      parts.bar.setAttribute("width", String(progress(n, DAG_NODE.w)));
    }
  }

  function dag(box, graph) {
    let current = shape(graph);
    let drawn = draw(box, graph.nodes, graph.edges, DAG_NODE, drawDagNode);
    showEmpty(graph.nodes);
    const url = box.dataset.stateUrl;
    const every = Number(box.dataset.pollMs) || 2000;
    const notice = document.getElementById("graph-notice");
    let polls = 0;
    let busy = graph.nodes.some(function (n) { return n.active; });

    function stop(why) {
      if (notice) {
        notice.textContent = "Live updates stopped: " + why + " Reload the page to see the DAG now.";
        notice.hidden = false;
      }
      box.dataset.live = "stopped";
    }

    async function tick() {
      if (document.visibilityState === "visible") {
        let next;
        try {
          const answer = await fetch(url, {
            credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" },
          });
          const type = answer.headers.get("content-type") || "";
          if (!answer.ok || !type.startsWith("application/json")) {
            stop(answer.redirected ? "you are signed out." : "the server answered " + answer.status + ".");
            return;
          }
          next = await answer.json();
        } catch (err) { // the server restarts, the network blinks: try again, less often
          if (notice) {
            notice.textContent = "Live updates paused: the server cannot be reached. Trying again.";
            notice.hidden = false;
          }
          setTimeout(tick, every * 3);
          return;
        }
        if (notice && box.dataset.live === "polling") notice.hidden = true;
        const nextShape = shape(next);
        if (nextShape !== current) {
          current = nextShape;
          drawn = draw(box, next.nodes, next.edges, DAG_NODE, drawDagNode);
          showEmpty(next.nodes);
        } else {
          updateDag(drawn, next);
        }
        box.dataset.polls = String(++polls);
        busy = next.nodes.some(function (n) { return n.active; });
      }
      setTimeout(tick, busy ? Math.min(every, BUSY_POLL_MS) : every);
    }

    box.dataset.live = "polling";
    setTimeout(tick, busy ? Math.min(every, BUSY_POLL_MS) : every);
  }

  // ---- the lineage of a file --------------------------------------------------------------

  const LINEAGE_NODE = { w: 260, h: 64 };

  function ref(n) {
    return n.repo + "@" + n.commit + ":" + n.path;
  }

  function drawLineageNode(group, n, size) {
    const cls = "node lineage origin-" + lower(n.origin) + (n.target ? " target" : "");
    const node = el("g", { class: cls, "data-id": n.id }, group);
    title(node, ref(n) + "\n" + n.hash + " · " + n.size);
    el("rect", { class: "box", width: size.w, height: size.h, rx: 7, ry: 7 }, node);
    const file = el("a", { href: n.file, class: "file" }, node);
    title(file, "the file " + n.path);
    label(file, 10, 20, clip(n.path, 34), "name");
    const here = el("a", { href: n.lineage, class: "where" }, node);
    title(here, "the lineage of this file");
    label(here, 10, 37, clip(n.repo, 22) + "@" + n.commit.slice(0, 8), "where");
    if (n.job) {
      const datum = el("a", { href: n.datum_url, class: "datum" }, node);
      title(datum, "datum " + n.datum);
      label(datum, 10, 54, "datum " + String(n.datum).slice(0, 8), "made-by");
      const job = el("a", { href: n.job_url, class: "job" }, node);
      title(job, "job " + n.pipeline + "@" + n.job + " (spec v" + n.version + ")");
      label(job, 118, 54, "job " + n.job.slice(0, 8), "made-by");
    } else {
      label(node, 10, 54, "user commit", "made-by user");
    }
    return { group: node };
  }

  // the list of the graph's files (below it), made when it is first opened
  function fileList(graph) {
    const details = document.getElementById("graph-files");
    if (!details) return;
    function html(tag, attrs, content) {
      const node = document.createElement(tag);
      for (const key in attrs) node.setAttribute(key, attrs[key]);
      if (content !== undefined) node.textContent = content;
      return node;
    }
    function fill() {
      const body = details.querySelector("tbody");
      if (body.childElementCount) return;
      const rows = document.createDocumentFragment();
      for (const n of graph.nodes) {
        const row = html("tr", n.target ? { "data-ref": ref(n), class: "target" } : { "data-ref": ref(n) });
        const file = html("td", {});
        file.appendChild(html("a", { href: n.file }, n.path));
        const where = html("td", {});
        where.appendChild(html("a", { href: n.commit_url, title: n.commit }, n.repo + "@" + n.commit.slice(0, 8)));
        const made = html("td", {});
        if (n.job) {
          const datum = String(n.datum || "");
          made.append("datum ", html("a", { href: n.datum_url || "", title: datum }, datum.slice(0, 12)),
            " of job ", html("a", { href: n.job_url, title: n.job }, n.pipeline + "@" + n.job.slice(0, 8)),
            " (spec v" + n.version + ")");
        } else {
          made.appendChild(html("span", { class: "none" }, "a user commit"));
        }
        const more = html("td", {});
        more.appendChild(html("a", { href: n.lineage }, "lineage"));
        row.replaceChildren(file, where, made, more);
        rows.appendChild(row);
      }
      body.appendChild(rows);
    }
    details.addEventListener("toggle", function () { if (details.open) fill(); });
    if (details.open) fill();
  }

  function lineage(box, graph) {
    const drawn = draw(box, graph.nodes, graph.edges, LINEAGE_NODE, drawLineageNode);
    showEmpty(graph.nodes);
    fileList(graph);
    const first = graph.nodes.find(function (n) { return n.target; });
    const target = first && drawn.get(first.id);
    if (target) { // bring the file itself into view
      const at = target.group.parentNode.transform.baseVal.consolidate().matrix;
      box.scrollLeft = Math.max(0, at.e - box.clientWidth / 2 + LINEAGE_NODE.w / 2);
      box.scrollTop = Math.max(0, at.f - box.clientHeight / 2 + LINEAGE_NODE.h / 2);
    }
  }

  // ---- start ------------------------------------------------------------------------------

  function start() {
    const box = document.getElementById("graph");
    const data = document.getElementById("graph-data");
    if (!box || !data || typeof dagre === "undefined") return;
    const graph = JSON.parse(data.textContent);
    fitButton(box);
    if (box.dataset.kind === "dag") dag(box, graph);
    else lineage(box, graph);
    box.dataset.ready = "yes";
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

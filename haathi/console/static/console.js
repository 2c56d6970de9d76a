// haathi console: the page's own script (no inline script anywhere: the CSP forbids it).
// Keeps the "5 minutes ago" of every <time datetime> current while the page stays open.
(function () {
  "use strict";

  function age(iso) {
    const seconds = (Date.now() - Date.parse(iso)) / 1000;
    if (!(seconds >= 60)) return "just now";
    const steps = [[3600, "minute", 60], [86400, "hour", 3600], [Infinity, "day", 86400]];
    for (const [limit, unit, per] of steps) {
      if (seconds < limit) {
        const n = Math.floor(seconds / per);
        return n + " " + unit + (n === 1 ? "" : "s") + " ago";
      }
    }
    return "";
  }

  function refreshAges() {
    for (const el of document.querySelectorAll("time[datetime]")) {
      el.textContent = age(el.getAttribute("datetime"));
    }
  }

  window.haathiConsole = {
    csrfToken: function () {
      const meta = document.querySelector('meta[name="csrf-token"]');
      return meta ? meta.content : "";
    },
  };
  document.documentElement.dataset.console = "ready";
  setInterval(refreshAges, 30000);
})();

// Live job pages (job, logs): an EventSource on the page's events URL (the element with
// data-events) puts the job's state, its progress and new datum output in the page without a
// reload; it stops listening when the job ends. A spout's or service's page: its new lines. Text goes in as text (textContent), never as HTML.
(function () {
  "use strict";

  function setState(el, state) {
    el.textContent = state;
    el.className = "state state-" + state.toLowerCase();
  }

  function showJob(job) {
    for (const el of document.querySelectorAll("[data-job-state]")) setState(el, job.state);
    for (const el of document.querySelectorAll("[data-progress-summary]")) el.textContent = job.summary;
    for (const svg of document.querySelectorAll("svg[data-progress]")) {
      svg.setAttribute("aria-label", job.summary);
      for (const [kind, x, width] of job.segments) {
        const rect = svg.querySelector('rect[data-kind="' + kind + '"]');
        if (rect) { rect.setAttribute("x", x); rect.setAttribute("width", width); }
      }
    }
    const reason = document.getElementById("job-reason");
    if (reason) { reason.textContent = job.reason; reason.hidden = !job.reason; }
  }

  function addLog(entry) {
    const logs = document.getElementById("logs");
    if (!logs) return;
    for (const el of logs.children) if (el.dataset.datum === entry.datum) return;  // shown
    const section = document.createElement("section");
    section.className = "log-entry";
    section.dataset.datum = entry.datum;
    const heading = document.createElement("h3");
    const link = document.createElement("a");
    link.className = "commit";
    link.href = entry.link;
    link.title = entry.datum;
    link.textContent = "datum " + entry.short;
    heading.appendChild(link);
    const pre = document.createElement("pre");
    pre.className = "log";
    pre.textContent = entry.output;
    section.append(heading, pre);
    logs.appendChild(section);
    const empty = document.getElementById("logs-empty");
    if (empty) empty.hidden = true;
  }

  function addLines(data) {
    const pre = document.getElementById("daemon-output");
    if (!pre) return;
    const last = pre.lastElementChild;
    let shown = last ? Number(last.dataset.seq) : 0;
    for (const line of data.lines) {
      if (line.seq <= shown) continue;  // (a reconnected stream sends them again)
      const span = document.createElement("span");
      span.className = line.text.startsWith("haathi: ") ? "line haathi" : "line";
      span.dataset.seq = line.seq;
      span.dataset.run = line.run;
      span.textContent = line.text + "\n";
      pre.appendChild(span);
      shown = line.seq;
    }
    const empty = document.getElementById("output-empty");
    if (empty && pre.childElementCount) empty.hidden = true;
  }

  function listen(root) {
    const source = new EventSource(root.dataset.events);
    const page = document.documentElement;
    page.dataset.live = "connecting";
    source.onopen = function () { page.dataset.live = "open"; };
    source.addEventListener("job", function (e) { showJob(JSON.parse(e.data)); });
    source.addEventListener("log", function (e) { addLog(JSON.parse(e.data)); });
    source.addEventListener("lines", function (e) { addLines(JSON.parse(e.data)); });
    source.addEventListener("capped", function () {
      const capped = document.getElementById("logs-capped");
      if (capped) capped.hidden = false;
    });
    source.addEventListener("end", function (e) {
      source.close();
      const end = JSON.parse(e.data);
      page.dataset.live = "ended";
      if (end.why === "signed-out" || end.why === "gone") { window.location.reload(); return; }
      const notice = document.getElementById("live-ended");
      if (notice) notice.hidden = false;
    });
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) page.dataset.live = "stopped";
    };
  }

  const root = document.querySelector("[data-events]");
  if (root && window.EventSource) listen(root);
})();

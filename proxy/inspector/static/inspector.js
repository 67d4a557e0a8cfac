// The inspector page: a live list of the proxy's last exchanges, from /_proxy/events.
// Every value from the proxy is put in the page with textContent, never as HTML.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const rows = new Map(); // exchange id -> { summary, tr }, oldest first
  const clients = new Set();
  let capacity = 200;
  let selected = null;
  let pending = false;

  function cell(tr, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    tr.appendChild(td);
  }

  function clock(iso) {
    const at = new Date(iso);
    const two = (n) => String(n).padStart(2, "0");
    return `${two(at.getHours())}:${two(at.getMinutes())}:${two(at.getSeconds())}.` +
      String(at.getMilliseconds()).padStart(3, "0");
  }

  function size(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1048576) return `${(bytes / 1024).toFixed(1)} KiB`;
    return `${(bytes / 1048576).toFixed(1)} MiB`;
  }

  function seconds(total) {
    if (total >= 3600) return `${Math.floor(total / 3600)} h ${Math.floor((total % 3600) / 60)} min`;
    if (total >= 60) return `${Math.floor(total / 60)} min ${total % 60} s`;
    return `${total} s`;
  }

  // The same rules as the server's (proxy.inspector.buffer.Filter), so that the HAR export
  // of a filtered view holds what the page shows.
  function currentFilter() {
    return {
      status: $("filter-status").value,
      client: $("filter-client").value.trim(),
      path: $("filter-path").value.trim(),
    };
  }

  function matches(summary, filter) {
    const kind = `${Math.floor(summary.status / 100)}xx`;
    if (filter.status && filter.status !== kind && filter.status !== String(summary.status)) {
      return false;
    }
    if (filter.client && summary.client !== filter.client) return false;
    return summary.target.toLowerCase().includes(filter.path.toLowerCase());
  }

  function refresh() {
    pending = false;
    const filter = currentFilter();
    let shown = 0;
    for (const { summary, tr } of rows.values()) {
      tr.hidden = !matches(summary, filter);
      if (!tr.hidden) shown += 1;
    }
    $("shown").textContent = `${shown} of ${rows.size} shown`;
    $("empty").hidden = rows.size > 0;
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(filter)) if (value) query.set(name, value);
    const search = query.toString();
    $("export").href = "/_proxy/exchanges.har" + (search ? `?${search}` : "");
  }

  function refreshSoon() {
    if (!pending) {
      pending = true;
      requestAnimationFrame(refresh);
    }
  }

  function addExchange(summary) {
    if (rows.has(summary.id)) return;
    const tr = document.createElement("tr");
    tr.dataset.id = String(summary.id);
    tr.tabIndex = 0;
    cell(tr, clock(summary.started), "num");
    cell(tr, summary.client);
    cell(tr, summary.organization);
    cell(tr, summary.method, "method");
    cell(tr, summary.target, "target");
    cell(tr, String(summary.status), `status s${Math.floor(summary.status / 100)}`);
    cell(tr, `${summary.durationMs.toFixed(1)} ms`, "num");
    cell(tr, size(summary.bytesIn), "num");
    cell(tr, size(summary.bytesOut), "num");
    cell(tr, summary.resent ? "resent" : "", "resent");
    tr.addEventListener("click", () => select(summary.id));
    tr.addEventListener("keydown", (event) => {
      if (event.key === "Enter") select(summary.id);
    });
    tr.hidden = !matches(summary, currentFilter());
    $("exchanges").tBodies[0].prepend(tr);
    rows.set(summary.id, { summary, tr });
    while (rows.size > capacity) {
      const oldest = rows.keys().next().value;
      rows.get(oldest).tr.remove();
      rows.delete(oldest);
    }
    if (!clients.has(summary.client)) {
      clients.add(summary.client);
      const option = document.createElement("option");
      option.value = summary.client;
      $("clients").appendChild(option);
    }
    refreshSoon();
  }

  function headerTable(table, pairs) {
    table.replaceChildren();
    if (!pairs) {
      const tr = table.insertRow();
      cell(tr, "— this leg did not happen (the proxy answered itself)", "dim");
      return;
    }
    for (const [name, value] of pairs) {
      const tr = table.insertRow();
      cell(tr, name, "name");
      cell(tr, value, value === "[redacted]" ? "value redacted" : "value");
    }
  }

  function showBody(pre, body) {
    pre.textContent = body.text !== undefined ? body.text : body.note;
    pre.className = body.text !== undefined ? "" : "dim";
  }

  async function select(id) {
    selected = id;
    for (const { tr } of rows.values()) tr.classList.toggle("selected", tr.dataset.id === String(id));
    const detail = $("detail");
    detail.hidden = false;
    $("detail-title").textContent = `exchange ${id}`;
    const response = await fetch(`/_proxy/exchange?id=${encodeURIComponent(id)}`);
    if (selected !== id) return;
    if (!response.ok) {
      $("detail-facts").textContent = "No longer in the buffer.";
      return;
    }
    const exchange = await response.json();
    $("detail-title").textContent = `${exchange.method} ${exchange.target} → ${exchange.status}`;
    const facts = [
      clock(exchange.started),
      `client ${exchange.client}`,
      `organization ${exchange.organization}`,
      `from ${exchange.peer || "?"}`,
      `${exchange.durationMs.toFixed(1)} ms`,
    ];
    if (exchange.upstreamMs.length) facts.push(`upstream ${exchange.upstreamMs.join(" + ")} ms`);
    if (exchange.resent) facts.push("resent after a 401");
    if (exchange.retried) facts.push("retried on a new connection");
    if (exchange.cut) facts.push(`cut: ${exchange.cut}`);
    $("detail-facts").textContent = facts.join(" · ");
    for (const side of ["client", "upstreamRequest", "upstreamResponse", "response"]) {
      headerTable($(`h-${side}`), exchange.headers[side]);
    }
    showBody($("b-request"), exchange.bodies.request);
    showBody($("b-response"), exchange.bodies.response);
  }

  function showState(state) {
    capacity = state.inspector.capacity;
    const ready = $("ready");
    ready.textContent = state.ready ? "ready" : "not ready";
    ready.className = state.ready ? "badge ok" : "badge bad";
    $("upstream").textContent = `→ ${state.upstream}`;
    const body = $("organizations").tBodies[0];
    body.replaceChildren();
    for (const org of state.organizations) {
      const tr = body.insertRow();
      cell(tr, org.name);
      const token = org.token;
      cell(tr, token.held ? seconds(token.expiresInSeconds) : `no token${token.lastError ? `: ${token.lastError}` : ""}`,
        token.held ? "" : "bad");
      const last = token.lastFetch;
      cell(tr, last ? `${seconds(Math.round(last.secondsAgo))} ago, ${last.outcome}` : "none yet",
        last && last.outcome !== "success" ? "bad" : "");
      const days = org.secretExpiresInDays;
      cell(tr, days === null ? "not set (--secret-expires)" : `${days} days (${org.secretExpires})`,
        days !== null && days < 30 ? "bad" : "");
    }
    const counts = $("counts");
    counts.replaceChildren();
    for (const [kind, count] of Object.entries(state.requests)) {
      const dt = document.createElement("dt");
      dt.textContent = kind;
      dt.className = `s${kind[0]}`;
      const dd = document.createElement("dd");
      dd.textContent = String(count);
      counts.append(dt, dd);
    }
    const bodies = state.inspector.bodies ? "bodies kept (text, up to 64 KiB)" :
      "bodies not kept (--inspect-bodies)";
    $("buffer").textContent =
      `holding ${state.inspector.exchanges} of the last ${capacity} exchanges · ${bodies}`;
  }

  function connect() {
    const source = new EventSource("/_proxy/events");
    const live = $("live");
    source.addEventListener("open", () => {
      live.textContent = "live";
      live.className = "badge ok";
    });
    source.addEventListener("error", () => {
      live.textContent = "reconnecting…";
      live.className = "badge bad";
    });
    source.addEventListener("exchange", (event) => addExchange(JSON.parse(event.data)));
    source.addEventListener("state", (event) => showState(JSON.parse(event.data)));
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const id of ["filter-status", "filter-client", "filter-path"]) {
      $(id).addEventListener("input", refresh);
      $(id).addEventListener("change", refresh);
    }
    refresh();
    connect();
  });
})();

// The live dashboard: one server-sent event per second from /dashboard/events (a JSON sample,
// see gateway/src/dashboard/sample.rs) is written into the page. Text only goes through
// textContent, never innerHTML: paths and details in errors come from clients.
"use strict";

const $ = (id) => document.getElementById(id);
const number = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });

/** A count or rate for people; "—" when unknown. */
function fmt(v) {
  return v === null || v === undefined ? "—" : number.format(v);
}

/** Milliseconds for people: "0.42 ms", "12 ms", "1.3 s"; "—" when unknown. */
function ms(v) {
  if (v === null || v === undefined) return "—";
  if (v >= 1000) return `${(v / 1000).toFixed(1)} s`;
  return v >= 10 ? `${v.toFixed(0)} ms` : `${v.toFixed(2)} ms`;
}

/** Sets the text of element `id`, and its raw value in data-value (for scripts and tests). */
function put(id, text, raw) {
  const el = $(id);
  el.textContent = text;
  el.dataset.value = raw === null || raw === undefined ? "" : String(raw);
}

/** Fills the cells of a stock row from `s` ({total, available, reserved, sold}). */
function fillStock(row, s) {
  for (const key of ["total", "available", "reserved", "sold"]) {
    const cell = row.querySelector(`.${key}`);
    cell.textContent = fmt(s[key]);
    cell.dataset.value = String(s[key]);
  }
}

/** One row per shown SKU, in the order given (busiest first). */
function renderSkus(skus) {
  const body = $("skus").tBodies[0];
  const rows = skus.shown.map((s) => {
    const row = document.createElement("tr");
    row.dataset.sku = s.sku;
    const name = document.createElement("th");
    name.textContent = s.sku;
    row.append(name);
    for (const key of ["total", "available", "reserved", "sold"]) {
      const cell = document.createElement("td");
      cell.className = key;
      row.append(cell);
    }
    const pct = document.createElement("td");
    pct.className = "pct";
    pct.textContent = s.total ? `${((100 * s.sold) / s.total).toFixed(1)} %` : "—";
    row.append(pct);
    fillStock(row, s);
    if (s.available === 0) row.classList.add("sold-out");
    return row;
  });
  body.replaceChildren(...rows);
  fillStock($("skus-others"), skus.others);
  fillStock($("skus-all"), skus.all);
  $("skus-others").hidden = skus.others.count === 0;
  $("sku-summary").textContent = `(${fmt(skus.all.count)} SKUs; the ${skus.shown.length} busiest listed)`;
}

/** The recent problems, newest first. */
function renderErrors(errors, total) {
  const rows = errors.map((e) => {
    const row = document.createElement("tr");
    row.className = e.status >= 500 ? "server-error" : "client-error";
    for (const text of [e.at.slice(11, 23), String(e.status), e.type, `${e.method} ${e.path}`, e.detail]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    return row;
  });
  $("errors").tBodies[0].replaceChildren(...rows);
  $("errors-total").textContent = `(${fmt(total)} since start; sold-out answers are counted above)`;
}

/** Writes one sample into the page. */
function render(s) {
  put("reservations-per-s", fmt(s.reservations_per_s), s.reservations_per_s);
  put("sold-out-per-s", fmt(s.sold_out_per_s), s.sold_out_per_s);
  put("requests-per-s", fmt(s.requests_per_s), s.requests_per_s);
  put("http-p50", ms(s.http_p50_ms), s.http_p50_ms);
  put("http-p99", ms(s.http_p99_ms), s.http_p99_ms);
  put("commit-p99", s.commit_p99_ms === null ? "—" : `≤ ${ms(s.commit_p99_ms)}`, s.commit_p99_ms);
  put("http-connections", fmt(s.http_connections), s.http_connections);
  put("stream-subscribers", fmt(s.stream_subscribers), s.stream_subscribers);
  put("log-writable", s.log_writable ? "writable" : "NOT writable", s.log_writable);
  $("log-writable").classList.toggle("bad", !s.log_writable);
  renderSkus(s.skus);
  renderErrors(s.errors, s.errors_total);
  put("updated-at", s.at.slice(11, 19) + " UTC", s.at);
}

function status(text, ok) {
  $("status").textContent = text;
  $("status").classList.toggle("bad", !ok);
}

function connect() {
  const events = new EventSource("/dashboard/events");
  events.onopen = () => status("live", true);
  events.onmessage = (e) => {
    status("live", true);
    render(JSON.parse(e.data));
  };
  events.onerror = () => {
    if (events.readyState === EventSource.CLOSED) {
      // Refused (the session ended, or too many dashboards are open): the page decides.
      status("disconnected — reload to sign in again", false);
    } else {
      status("reconnecting…", false);
    }
  };
}

$("sign-out").addEventListener("click", async () => {
  await fetch("/dashboard/session", { method: "DELETE", credentials: "same-origin" });
  window.location.replace("/dashboard");
});

connect();

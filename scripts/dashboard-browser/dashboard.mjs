// Drives the operator dashboard in headless Chromium against a running `flashsale serve`
// (scripts/dashboard-browser.sh starts one): signs in with the admin token, puts a small,
// bounded reservation load on three SKUs, and asserts that the page's numbers change while
// the load runs and then agree exactly with GET /v1/skus. Keeps a screenshot.
//
// Environment: FLASHSALE_URL, ADMIN_TOKEN, STOREFRONT_TOKEN, SCREENSHOT (a .png path),
// CHROMIUM (default /usr/bin/chromium). Exit 0 when every check passed, 1 otherwise.
import { chromium } from "playwright-core";

const url = process.env.FLASHSALE_URL;
const admin = process.env.ADMIN_TOKEN;
const storefront = process.env.STOREFRONT_TOKEN;
const screenshot = process.env.SCREENSHOT;
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
if (!url || !admin || !storefront || !screenshot) {
  console.error("FLASHSALE_URL, ADMIN_TOKEN, STOREFRONT_TOKEN and SCREENSHOT are required");
  process.exit(1);
}
if (!/^http:\/\/127\.0\.0\.1:[0-9]+$/.test(url)) {
  console.error(`refusing target ${url}: loopback only`);
  process.exit(1);
}

// The load: at most LOAD_REQUESTS reservations from LOAD_WORKERS concurrent buyers, for at
// most LOAD_MS; one unit each, every other one on "hot" (which sells out after about 300
// requests, well within the run even on a slow machine), the rest on "warm" and "cold".
const LOAD_WORKERS = 8;
const LOAD_REQUESTS = 3000;
const LOAD_MS = 5000;
const SKUS = { hot: 150, warm: 2000, cold: 2000 };

function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
  console.log(`ok   ${what}`);
}

async function api(method, path, token, body) {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: {
      Authorization: `Bearer ${token}`,
      ...(body ? { "Content-Type": "application/json" } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** Every SKU as GET /v1/skus lists it, by id. */
async function listedSkus() {
  const r = await api("GET", "/v1/skus?limit=100", admin);
  if (r.status !== 200) throw new Error(`GET /v1/skus: ${r.status}`);
  return Object.fromEntries(r.body.items.map((s) => [s.sku, s]));
}

/** What the page shows now: the tiles' raw values and every SKU row's numbers. */
async function pageState(page) {
  return page.evaluate(() => {
    const value = (id) => document.getElementById(id).dataset.value;
    const rows = {};
    for (const row of document.querySelectorAll("#skus tbody tr")) {
      const n = (k) => Number(row.querySelector(`.${k}`).dataset.value);
      rows[row.dataset.sku] = { total: n("total"), available: n("available"), reserved: n("reserved"), sold: n("sold") };
    }
    return {
      at: value("updated-at"),
      reservationsPerS: Number(value("reservations-per-s") || 0),
      soldOutPerS: Number(value("sold-out-per-s") || 0),
      httpP99: value("http-p99"),
      status: document.getElementById("status").textContent,
      errors: [...document.querySelectorAll("#errors tbody tr")].map((r) => r.textContent),
      rows,
    };
  });
}

/** Runs the bounded load; returns the answers by status. */
async function load() {
  const answers = {};
  let sent = 0;
  const deadline = Date.now() + LOAD_MS;
  async function worker(w) {
    while (sent < LOAD_REQUESTS && Date.now() < deadline) {
      const i = sent++;
      const sku = i % 2 === 0 ? "hot" : i % 4 === 1 ? "warm" : "cold";
      const r = await api("POST", "/v1/reservations", storefront, {
        buyer: `browser-test-${w}-${i}`,
        lines: [{ sku, qty: 1 }],
      });
      answers[r.status] = (answers[r.status] || 0) + 1;
    }
  }
  await Promise.all(Array.from({ length: LOAD_WORKERS }, (_, w) => worker(w)));
  return answers;
}

const started = Date.now();
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-gpu"] });
let failed = false;
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
try {
  for (const [sku, stock] of Object.entries(SKUS)) {
    const r = await api("PUT", `/v1/skus/${sku}`, admin, { name: `Test ${sku}`, price_cents: 1999, stock });
    check(r.status === 201 || r.status === 200, `PUT /v1/skus/${sku} (${r.status})`);
  }

  // Signing in: a wrong token is refused on the page; the admin token opens the dashboard.
  await page.goto(`${url}/dashboard`);
  await page.fill("#token", "not-the-token");
  await page.click("#sign-in");
  await page.waitForFunction(() => document.getElementById("login-error").textContent.length > 0);
  check((await page.textContent("#login-error")) === "invalid token", "a wrong token is refused");
  await page.fill("#token", admin);
  await page.click("#sign-in");
  await page.waitForSelector("#skus", { timeout: 10_000 });
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === "flashsale_dashboard");
  check(session && session.httpOnly && session.sameSite === "Strict", "the session cookie is HttpOnly, SameSite=Strict");
  await page.waitForFunction(() => document.getElementById("status").textContent === "live" &&
    document.querySelectorAll("#skus tbody tr").length === 3, null, { timeout: 10_000 });
  const before = await pageState(page);
  check(before.rows.hot.available === SKUS.hot, `the page shows hot with ${SKUS.hot} available before the load`);

  // Under load, sample the page four times a second.
  const seen = [];
  const underLoad = screenshot.replace(/\.png$/, "-under-load.png");
  const sampling = (async () => {
    const until = Date.now() + LOAD_MS + 2500;
    while (Date.now() < until) {
      const state = await pageState(page);
      seen.push(state);
      if (seen.length === 8) await page.screenshot({ path: underLoad, fullPage: true });
      await page.waitForTimeout(250);
    }
  })();
  const errorsSeeded = await api("GET", "/v1/skus/no-such-sku", admin);
  const answers = await load();
  await sampling;
  console.log(`load: ${JSON.stringify(answers)} in ≤ ${LOAD_MS} ms`);
  check(errorsSeeded.status === 404, "a 404 was answered");
  check((answers[201] || 0) > 50, `more than 50 reservations were held (${answers[201] || 0})`);
  const ticks = new Set(seen.map((s) => s.at));
  check(ticks.size >= 4, `the page updated ${ticks.size} times during ${LOAD_MS / 1000 + 2.5} s`);
  const hotAvailable = new Set(seen.map((s) => s.rows.hot && s.rows.hot.available));
  check(hotAvailable.size >= 2, `hot's available count changed on the page (${[...hotAvailable].join(", ")})`);
  const maxRate = Math.max(...seen.map((s) => s.reservationsPerS));
  check(maxRate > 0, `reservations/s rose above 0 (max ${maxRate})`);
  const maxSoldOut = Math.max(...seen.map((s) => s.soldOutPerS));
  check(maxSoldOut > 0, `sold-out answers/s rose above 0 once hot sold out (max ${maxSoldOut})`);
  check(seen.some((s) => s.httpP99 !== ""), "an HTTP p99 was shown");

  // At rest, the page agrees with the API, SKU by SKU and number by number.
  let agreed = false;
  let last = null;
  let listed = null;
  for (let i = 0; i < 20 && !agreed; i++) {
    await page.waitForTimeout(500);
    listed = await listedSkus();
    last = await pageState(page);
    agreed = Object.keys(SKUS).every((sku) =>
      ["total", "available", "reserved", "sold"].every((k) => last.rows[sku] && last.rows[sku][k] === listed[sku][k]));
  }
  check(agreed, `the page agrees with GET /v1/skus: ${JSON.stringify(last && last.rows)} vs ${JSON.stringify(listed)}`);
  check(listed.hot.available === 0, "hot sold out");
  check(last.errors.some((e) => e.includes("/v1/skus/no-such-sku")), "the 404 is listed under recent errors");
  check(!last.errors.some((e) => e.includes("favicon")), "the page's own assets are all served");
  console.log(`screenshot under load: ${underLoad}`);
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`screenshot: ${screenshot}`);
} catch (e) {
  failed = true;
  console.error(e.message);
  await page.screenshot({ path: screenshot, fullPage: true }).catch(() => {});
  console.error(`screenshot of the failure: ${screenshot}`);
} finally {
  await browser.close();
}
console.log(`dashboard browser test: ${failed ? "FAILED" : "passed"} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exit(failed ? 1 : 0);

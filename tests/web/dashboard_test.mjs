// The dashboard in a real browser: Debian's chromium, headless, driven by
// playwright-core, against a real bnserve (temporary registry, free ports,
// --web_root the built dashboard, bearer tokens on) that trains its default
// model "digits" at start. Every page loads without a console error; the
// token prompt appears and the token works; the book's experiment started
// from the Jobs page shows up and its curves gain points while it runs; a
// sweep shows the 16-panel grid; a "1" drawn on the canvas is predicted
// as 1; the activations page shows one histogram per hidden layer for
// BN on and off; Evaluate draws the confusion matrix.
//
// Run by ctest (tests/web/CMakeLists.txt), which sets:
//   BNSERVE                   the bnserve binary
//   BNSERVE_WEB_DIST          the built dashboard (build/web/dist)
//   BNSERVE_WEB_NODE_MODULES  web/node_modules (playwright-core)
//   BNSERVE_DATA_DIR          the built-in data sets (var/data)
//   BNSERVE_CHROMIUM          /usr/bin/chromium
//   BNSERVE_TEST_OUT          where screenshots/ goes
//   BNSERVE_DOCS_DIR          docs/dashboard: screenshots are copied there
//                             too when BNSERVE_UPDATE_DOCS=1
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, beforeEach, describe, test } from "node:test";

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (the test runs from ctest)`);
  return value;
}

const BNSERVE = env("BNSERVE");
const DIST = env("BNSERVE_WEB_DIST");
const NODE_MODULES = env("BNSERVE_WEB_NODE_MODULES");
const DATA_DIR = env("BNSERVE_DATA_DIR");
const CHROMIUM = env("BNSERVE_CHROMIUM");
const SHOTS = path.join(env("BNSERVE_TEST_OUT"), "screenshots");
const DOCS = process.env.BNSERVE_UPDATE_DOCS === "1" ? env("BNSERVE_DOCS_DIR") : null;
const TOKEN = "dashboard-test-token";

const require = createRequire(path.join(NODE_MODULES, "package.json"));
const { chromium } = require("playwright-core");

// bnserve on free loopback ports with a fresh registry; resolves once both
// ports are reported in its log.
// With `auth`, bearer tokens on (TOKEN, role trainer) and the default model.
async function startServer(dir, { auth }) {
  mkdirSync(dir, { recursive: true });
  const args = ["--listen=127.0.0.1:0", "--http_listen=127.0.0.1:0",
    `--registry=${path.join(dir, "registry.db")}`, `--data_dir=${DATA_DIR}`,
    `--web_root=${DIST}`, "--workers=2"];
  if (auth) {
    const tokens = path.join(dir, "tokens");
    const hash = createHash("sha256").update(TOKEN).digest("hex");
    writeFileSync(tokens, `dashboard-test trainer ${hash}\n`);
    args.push(`--auth_tokens=${tokens}`, "--default_model=digits");
  }
  const proc = spawn(BNSERVE, args, { stdio: ["ignore", "pipe", "pipe"] });
  const log = [];
  let http = null;
  let grpc = null;
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`bnserve did not report its ports:\n${log.join("")}`)), 60000);
    const onData = (chunk) => {
      const text = chunk.toString();
      log.push(text);
      grpc ??= text.match(/bnserve listening on (\S+:\d+)/)?.[1] ?? null;
      http ??= text.match(/HTTP .*?on (\S+:\d+)/)?.[1] ?? null;
      if (grpc && http) {
        clearTimeout(timer);
        resolve();
      }
    };
    proc.stdout.on("data", onData);
    proc.stderr.on("data", onData);
    proc.on("exit", (code) => reject(new Error(`bnserve exited (${code}) at start:\n${log.join("")}`)));
  });
  proc.removeAllListeners("exit");
  return { proc, log, url: `http://${http}` };
}

// A Connect unary call with the test's token, as the page makes it.
async function call(base, method, body) {
  const res = await fetch(`${base}/bnserve.v1.${method}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method}: HTTP ${res.status} ${JSON.stringify(json)}`);
  return json;
}

async function stopServer(server) {
  server.proc.kill("SIGTERM");
  await new Promise((r) => { server.proc.once("exit", r); setTimeout(r, 10000); });
}

async function until(what, fn, timeoutMs = 30000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

describe("dashboard", { timeout: 200000 }, () => {
  let dir;
  let server;
  let browser;
  let page;
  const consoleErrors = [];
  const shots = [];

  async function screenshot(name) {
    const file = path.join(SHOTS, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    shots.push(file);
  }

  async function open(hash) {
    await page.goto(`${server.url}/${hash}`);
    await page.waitForFunction((h) => location.hash === h && document.querySelector("#page h1") !== null, hash);
  }

  function assertNoConsoleErrors(where) {
    assert.deepEqual(consoleErrors.splice(0), [], `console errors on ${where}`);
  }

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    dir = mkdtempSync(path.join(tmpdir(), "bnserve-web-test-"));
    server = await startServer(path.join(dir, "auth"), { auth: true });
    // The page's own route: the default model is trained and registered.
    await until("the default model digits", async () => {
      const res = await call(server.url, "ModelRegistry/ListModels", {});
      return (res.models ?? []).some((m) => m.name === "digits");
    }, 60000, 250);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
      args: ["--no-sandbox", "--disable-dev-shm-usage"] });
    page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
    page.on("console", (msg) => { if (msg.type() === "error") consoleErrors.push(msg.text()); });
    page.on("pageerror", (err) => consoleErrors.push(`page error: ${err.message}`));
  });

  // A test that failed early leaves its page's errors: not the next one's.
  beforeEach(() => { consoleErrors.splice(0); });

  after(async () => {
    await browser?.close();
    if (server) await stopServer(server);
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (DOCS && shots.length > 0) {
      mkdirSync(DOCS, { recursive: true });
      for (const f of shots) copyFileSync(f, path.join(DOCS, path.basename(f)));
    }
  });

  test("without --auth_tokens the page asks for no token", async () => {
    const open = await startServer(path.join(dir, "open"), { auth: false });
    try {
      const p = await browser.newPage();
      const errors = [];
      p.on("console", (msg) => { if (msg.type() === "error") errors.push(msg.text()); });
      p.on("pageerror", (err) => errors.push(`page error: ${err.message}`));
      await p.goto(`${open.url}/#/jobs`);
      await p.waitForSelector("#jobs-table td.muted");  // "No jobs yet."
      await p.waitForTimeout(300);
      assert.equal(await p.isHidden("#banner"), true);
      assert.equal(await p.isHidden("#token-form"), true);
      assert.deepEqual(errors, []);
      await p.close();
    } finally {
      await stopServer(open);
    }
  });

  test("/ serves the dashboard and asks for the token the server needs", async () => {
    const res = await fetch(`${server.url}/`);
    assert.equal(res.status, 200);
    assert.match(await res.text(), /<title>bnserve<\/title>/);
    await open("#/jobs");
    await page.waitForSelector("#banner.auth:not([hidden])");
    assert.equal(await page.isVisible("#token-input"), true);
    // The browser logs the 401 itself; that one is expected here.
    consoleErrors.splice(0);
    await page.fill("#token-input", TOKEN);
    await page.click("#token-form button[type=submit]");
    await page.waitForSelector("#jobs-table tr[data-job]");
    assert.equal(await page.isHidden("#banner"), true);
    assertNoConsoleErrors("the Jobs page");
  });

  let bnJob;
  test("the book's experiment started from the Jobs page shows up and its curves grow", async () => {
    await open("#/jobs");
    await page.fill("#exp-epochs", "20");
    await page.fill("#exp-limit", "5000");
    await page.click("#start-experiment");
    const status = await until("the two jobs", async () => {
      const text = await page.textContent("#exp-status");
      return /started (\S+) \(BN\) and (\S+) \(plain\)/.exec(text ?? "");
    });
    bnJob = status[1];
    const plainJob = status[2];
    for (const id of [bnJob, plainJob]) await page.waitForSelector(`#jobs-table tr[data-job="${id}"]`);
    // Sample the overlay's point count while the jobs run: it must grow.
    const seen = new Set();
    await until("both jobs to finish", async () => {
      const points = Number(await page.getAttribute("#overlay", "data-points"));
      const states = await page.$$eval(`#jobs-table tr[data-job="${bnJob}"], #jobs-table tr[data-job="${plainJob}"]`,
        (rows) => rows.map((r) => r.dataset.state));
      if (states.includes("running")) seen.add(points);
      return states.length === 2 && states.every((s) => s === "succeeded");
    }, 90000, 50);
    // 2 jobs x 20 epochs x (training, validation accuracy)
    const during = [...seen].filter((n) => n > 0 && n < 80);
    assert.ok(during.length >= 2, `the curves gained points while running (saw ${[...seen].join(", ")})`);
    assert.equal(await page.getAttribute("#overlay", "data-points"), "80");
    await page.waitForTimeout(300);
    await screenshot("jobs");
    assertNoConsoleErrors("the Jobs page with the experiment");

    await open(`#/jobs/${bnJob}`);
    await until("the job's curves", async () => Number(await page.getAttribute("#job-accuracy", "data-points")) === 40);
    await screenshot("job");
    assertNoConsoleErrors("the job page");
  });

  test("a sweep started from the Jobs page shows the 16-panel grid", async () => {
    await open("#/jobs");
    // The docs' screenshot shows the book's 20 epochs; the test's run, 5.
    const epochs = DOCS ? 20 : 5;
    await page.fill("#exp-epochs", String(epochs));
    await page.fill("#exp-limit", "1000");
    await page.click("#start-sweep");
    await page.waitForURL(/#\/sweeps\/.+/);
    await page.waitForSelector("#sweep-grid .sweep-panel");
    assert.equal(await page.locator("#sweep-grid .sweep-panel").count(), 16);
    await until("all 32 jobs to finish", async () =>
      (await page.getAttribute("#sweep-grid", "data-finished")) === "32", 120000, 200);
    // Each panel: a BN and a plain curve, every epoch (a failed job has fewer).
    await until("every panel's curves", async () => {
      const counts = await page.$$eval("#sweep-grid .sweep-panel .chart", (els) => els.map((e) => Number(e.dataset.points)));
      return counts.length === 16 && counts.every((c) => c > 0 && c <= 2 * epochs) &&
        counts.filter((c) => c === 2 * epochs).length >= 8;
    }, 10000);
    await screenshot("sweeps");
    assertNoConsoleErrors("the Sweeps page");
  });

  test("drawing a 1 on the canvas shows a prediction", async () => {
    await open("#/try");
    await page.waitForSelector("#try-model option[value=digits]", { state: "attached" });
    const box = await page.locator("#digit-canvas").boundingBox();
    const x = box.x + box.width / 2;
    await page.mouse.move(x, box.y + box.height * 0.15);
    await page.mouse.down();
    await page.mouse.move(x + 4, box.y + box.height * 0.85, { steps: 25 });
    await page.mouse.up();
    const digit = await until("a prediction", async () => {
      const text = (await page.textContent("#prediction"))?.trim();
      return /^[0-9]$/.test(text ?? "") ? text : null;
    }, 15000);
    assert.equal(await page.getAttribute("#probabilities", "data-points"), "10");
    // Centred and scaled like MNIST, a vertical stroke is a 1 to the default
    // model (p = 0.99 when written).
    assert.equal(digit, "1", `the stroke was read as ${digit} (${await page.textContent("#answered-by")})`);
    await screenshot("try");
    assertNoConsoleErrors("the Try it page");
  });

  test("the activations page shows one histogram per hidden layer, BN on and off", async () => {
    await open("#/activations");
    for (const bn of ["on", "off"]) {
      await page.waitForSelector(`.hist-row[data-bn=${bn}] .hist-panel`);
      assert.equal(await page.locator(`.hist-row[data-bn=${bn}] .hist-panel`).count(), 5);
    }
    const points = await page.$$eval(".hist-panel .chart", (els) => els.map((e) => e.dataset.points));
    assert.deepEqual(points, Array(10).fill("30"));
    await screenshot("activations");
    assertNoConsoleErrors("the Activations page");
  });

  test("the models page shows BatchNorm parameters and Evaluate's confusion matrix", async () => {
    await open("#/models/book-bn");
    await page.waitForSelector("#bn-layers .layer-row");
    assert.equal(await page.locator("#bn-layers .layer-row").count(), 5);
    await page.click("#evaluate");
    await until("the confusion matrix", async () =>
      (await page.getAttribute("#confusion", "data-points")) === "100", 20000);
    assert.match(await page.textContent("#eval-result"), /accuracy on \d+ examples/);
    await screenshot("models");
    assertNoConsoleErrors("the Models page");
  });

  test("the sweeps list and every page load without console errors", async () => {
    for (const hash of ["#/jobs", "#/sweeps", "#/models", "#/activations", "#/try", `#/jobs/${bnJob}`]) {
      await open(hash);
      await page.waitForTimeout(300);
      assertNoConsoleErrors(hash);
    }
  });
});

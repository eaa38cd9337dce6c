// browser.mjs: the browser suites' harness. Starts the real processes — a private database with
// tollgate-control serving the build's web/ (tests/integration/lib/control.mjs), the OpenAI mock
// and a tollgate-data syncing from that control plane (harness.mjs) — and drives Debian's
// Chromium with playwright-core. Nothing here mocks Tollgate itself.
//
//   const stack = await startStack();           // {cp, mock, dp, base, admin (token), stop()}
//   await makeWorld(stack);                     // provider "mock", its price, route gpt-4o-mini
//   const browser = await launch();
//   const page = await newPage(browser, stack); // one browser context (own cookies) per page
//   await signIn(page, ADMIN.email, ADMIN.password);
//   // or the three at once: const { browser, page } = await signedInPage(stack);
//   assertClean(page);                          // no console error, failed request, page error
//                                               //   or request to another origin on this page
//   assert.deepEqual(await axe(page), []);      // critical/serious accessibility violations
//   assert.deepEqual(await noOverflow(page), []); // widths (390, 1280) that scroll sideways
//   await checkView(page, 'the key list');      // the three above, named
//   after(() => stopAll(browser, stack));       // whichever of them the set-up got to start
//
// What counts as a problem on a page (page.problems):
// - a console message of type error, and any uncaught exception. Chromium also logs "Failed to
//   load resource: ... status of 4xx" for every API answer >= 400; for /api/ URLs that is an
//   answer the page handles (a wrong password is a 401 the form shows), so it is not counted:
//   what the page did with it is what the test asserts;
// - a request that failed at the network level (but an /api/ call the page aborted itself);
// - a 5xx answer to anything, a 4xx answer to anything outside /api/ (a missing asset);
// - a request to another origin than the control plane's.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startControl, ADMIN } from '../../integration/lib/control.mjs';
import { startGateway, BIN, waitFor } from '../../integration/lib/harness.mjs';
import { startOpenAIMock } from '../../mocks/openai.mjs';

export { ADMIN, waitFor };
export const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../..');
const require = createRequire(import.meta.url);

export const CHROMIUM = process.env.TOLLGATE_CHROMIUM || '/usr/bin/chromium';
export const DP_TOKEN = 'test-dp-token';

// The whole stack. `dataplane: false` skips the mock and tollgate-data.
export async function startStack({ dataplane = true, controlEnv = {}, controlArgs = [] } = {}) {
  const webDir = path.resolve(BIN, '../web');
  if (!existsSync(path.join(webDir, 'index.html'))) {
    throw new Error(`${webDir}/index.html is missing: the build copies web/ next to bin/ (rebuild)`);
  }
  const stack = { mock: null, dp: null };
  stack.cp = await startControl({ env: { TOLLGATE_DP_POLL_TIMEOUT_MS: '2000', ...controlEnv }, args: controlArgs });
  stack.base = stack.cp.url;
  stack.admin = await stack.cp.login();
  if (dataplane) {
    stack.mock = await startOpenAIMock();
    stack.dp = await startGateway({ args: ['--control-url', stack.cp.url], env: { TOLLGATE_DP_TOKEN: DP_TOKEN } });
  }
  stack.stop = async () => {
    const errs = [];
    for (const s of [stack.dp, stack.cp]) {
      if (!s) continue;
      try { await s.stop(); } catch (e) { errs.push(e); }
    }
    if (stack.mock) await stack.mock.close();
    if (errs.length) throw errs[0];
  };
  return stack;
}

// Through the admin API, as an operator would: the OpenAI mock as provider "mock", a price for
// its model and the route "gpt-4o-mini". Returns the provider.
export async function makeWorld(stack) {
  const { cp, admin, mock } = stack;
  return cp.mockRoute(admin, mock.url, { price: { input_per_mtok: 0.15, output_per_mtok: 0.6 } });
}

// One chat completion through the data plane with a virtual key; `content` may carry the mock's
// directives (`mock:status=500`). Returns {status, body}.
export async function chat(stack, key, content = 'hello', extra = {}) {
  const res = await fetch(`${stack.dp.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], ...extra }),
  });
  const text = await res.text();
  return { status: res.status, text };
}

// Waits until the data plane has the key in its snapshot (a request with it is not 401).
export async function waitKeyLive(stack, key, timeoutMs = 10000) {
  return waitFor(async () => (await chat(stack, key, 'warm-up')).status === 200, timeoutMs, 'the key to reach the data plane');
}

export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
}

// A page in a fresh browser context (its own cookie jar), recording its problems.
export async function newPage(browser, stack, { width = 1280, height = 800 } = {}) {
  const base = typeof stack === 'string' ? stack : stack.base;
  const origin = new URL(base).origin;
  const context = await browser.newContext({
    baseURL: base, viewport: { width, height },
    permissions: ['clipboard-read', 'clipboard-write'],
  });
  const page = await context.newPage();
  page.problems = [];
  page.apiCalls = [];
  const isApi = (u) => { try { return new URL(u).pathname.startsWith('/api/'); } catch { return false; } };
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const loc = msg.location() || {};
    if (/^Failed to load resource: the server responded with a status of 4\d\d/.test(msg.text()) && isApi(loc.url)) return;
    page.problems.push(`console error: ${msg.text()} (${loc.url || '?'}:${loc.lineNumber ?? '?'})`);
  });
  page.on('pageerror', (err) => page.problems.push(`uncaught: ${err.message}`));
  page.on('request', (req) => {
    const u = req.url();
    if (/^(data|blob):/.test(u)) return;
    if (new URL(u).origin !== origin) page.problems.push(`request to another origin: ${req.method()} ${u}`);
    if (isApi(u)) page.apiCalls.push(`${req.method()} ${new URL(u).pathname}${new URL(u).search}`);
  });
  page.on('requestfailed', (req) => {
    const f = req.failure();
    if (isApi(req.url()) && f && /ERR_ABORTED/.test(f.errorText)) return;
    page.problems.push(`request failed: ${req.method()} ${req.url()} ${f ? f.errorText : ''}`);
  });
  page.on('response', (res) => {
    const s = res.status();
    if (s >= 500 || (s >= 400 && !isApi(res.url()))) page.problems.push(`HTTP ${s}: ${res.request().method()} ${res.url()}`);
  });
  return page;
}

export function assertClean(page, what = 'the page') {
  assert.deepEqual(page.problems, [], `${what} had problems`);
}

// A browser (launch) and a page (newPage) signed in (signIn) as `email`: {browser, page}. The
// browser is closed when the page or the sign-in fails.
export async function signedInPage(stack, email = ADMIN.email, password = ADMIN.password) {
  const browser = await launch();
  try {
    const page = await newPage(browser, stack);
    await signIn(page, email, password);
    return { browser, page };
  } catch (e) {
    await browser.close();
    throw e;
  }
}

// Closes the browser and stops the stack, each if it was started (a suite's after()).
export async function stopAll(browser, stack) {
  if (browser) await browser.close();
  if (stack) await stack.stop();
}

// Signs in through the form as a person does (Enter submits) and waits for the header.
export async function signIn(page, email = ADMIN.email, password = ADMIN.password) {
  await page.goto('/#/login');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByLabel('Password').press('Enter');
  await page.locator('#sign-out').waitFor({ state: 'visible', timeout: 10000 });
  await settle(page);
}

// Waits for the current view to finish loading (no aria-busy on main, no "Loading…" line).
export async function settle(page, timeout = 10000) {
  await page.waitForFunction(() => {
    const main = document.getElementById('app-main');
    return main && !main.hasAttribute('aria-busy') && !main.querySelector('.loading');
  }, null, { timeout });
}

// Opens a hash route as a fresh page load (like following a bookmark: a goto that changes only
// the fragment would keep the old document) and waits for the view.
export async function go(page, hash) {
  await page.goto('about:blank');
  await page.goto(`/${hash.startsWith('#') ? hash : `#${hash}`}`);
  await settle(page);
}

// axe-core's critical and serious violations on the page as it is now: [{id, impact, help, nodes}].
// Its source is evaluated through the DevTools protocol: a <script> tag would be refused by the
// page's own CSP.
let axeSource = null;
export async function axe(page) {
  if (!axeSource) axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(axeSource);
  return page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.filter((v) => v.impact === 'critical' || v.impact === 'serious').map((v) => ({
      id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ')),
    }));
  });
}

// The view as it is now passes the axe scan, does not scroll sideways at 390 or 1280 px, and
// had no problem (assertClean); `what` names it in a failure.
export async function checkView(page, what) {
  assert.deepEqual(await axe(page), [], `accessibility of ${what}`);
  assert.deepEqual(await noOverflow(page), [], `horizontal overflow on ${what}`);
  assertClean(page, what);
}

// Widths at which the page scrolls sideways: [{width, scrollWidth}] (empty when none). Leaves
// the viewport as it found it.
export async function noOverflow(page, widths = [390, 1280]) {
  const before = page.viewportSize();
  const bad = [];
  for (const width of widths) {
    await page.setViewportSize({ width, height: before ? before.height : 800 });
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    await page.waitForTimeout(100); // charts redraw on a ResizeObserver callback
    const sw = await page.evaluate(() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth));
    if (sw > width) bad.push({ width, scrollWidth: sw });
  }
  if (before) await page.setViewportSize(before);
  return bad;
}

// Places in web/js that turn a string into HTML: [{file, line, text}]. Views build elements
// with dom.js's h() and set text, so this list must stay empty.
export function unsafeDomUses(dir = path.join(ROOT, 'web/js')) {
  const out = [];
  const re = /\b(innerHTML|outerHTML|insertAdjacentHTML|createContextualFragment|srcdoc)\b|document\s*\.\s*write(ln)?\b|\bDOMParser\b|\beval\s*\(|new\s+Function\s*\(/;
  const walk = (d) => {
    for (const name of readdirSync(d)) {
      const p = path.join(d, name);
      if (statSync(p).isDirectory()) { walk(p); continue; }
      if (!/\.(m?js)$/.test(name)) continue;
      readFileSync(p, 'utf8').split('\n').forEach((text, i) => {
        if (re.test(text)) out.push({ file: path.relative(ROOT, p), line: i + 1, text: text.trim() });
      });
    }
  };
  walk(dir);
  return out;
}

// The usage API as the test sees it (Bearer admin token): GET /api/v1/usage with `query`.
export async function usage(stack, query) {
  const qs = new URLSearchParams(query).toString();
  const r = await stack.cp.api('GET', `/api/v1/usage?${qs}`, { token: stack.admin });
  assert.equal(r.status, 200, r.text);
  return r.body;
}

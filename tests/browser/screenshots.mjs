// screenshots.mjs: renews docs/screenshots/*.png, the pictures README shows. Not a test (ctest
// runs *.test.mjs only): it starts the same real stack the browser suites use, makes a small
// world (two tenants, keys, traffic through a data plane, a budget), and photographs the main
// views at 1280 px, and the overview at 390 px.
//
//   TOLLGATE_BIN=$PWD/build-test/bin node tests/browser/screenshots.mjs [out-dir]
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import {
  ADMIN, ROOT, chat, go, launch, makeWorld, newPage, signIn, startStack, waitKeyLive,
} from './lib/browser.mjs';

const out = path.resolve(process.argv[2] || path.join(ROOT, 'docs/screenshots'));
mkdirSync(out, { recursive: true });

const stack = await startStack();
let browser;
try {
  const { cp, admin } = stack;
  const api = async (method, p, body) => {
    const r = await cp.api(method, p, { token: admin, body });
    if (r.status >= 300) throw new Error(`${method} ${p}: ${r.status} ${r.text}`);
    return r.body;
  };
  await makeWorld(stack);
  const acme = await api('POST', '/api/v1/tenants', { slug: 'acme', name: 'Acme Corp' });
  await api('POST', '/api/v1/tenants', { slug: 'globex', name: 'Globex' });
  await api('POST', `/api/v1/tenants/${acme.id}/budgets`, { period: 'monthly', limit_usd: 50, alert_threshold: 0.8 });
  await api('POST', `/api/v1/tenants/${acme.id}/budgets`, { period: 'daily', limit_usd: 5 });
  const keys = [];
  for (const name of ['checkout-service', 'support-bot', 'nightly-batch']) {
    keys.push(await api('POST', `/api/v1/tenants/${acme.id}/keys`, { name, models: ['gpt-4o-mini'], rpm_limit: 600 }));
  }
  await waitKeyLive(stack, keys[0].key);
  for (let i = 0; i < 24; i++) {
    const k = keys[i % keys.length].key;
    await chat(stack, k, `question ${i}: ${'tell me about gateways '.repeat(1 + (i % 5))}`);
  }
  // the usage reaches the control plane within the data plane's shipping interval
  const until = Date.now() + 15000;
  for (;;) {
    const u = await api('GET', `/api/v1/usage?tenant_id=${acme.id}`);
    if (u.totals.requests >= 27 || Date.now() > until) break;
    await new Promise((r) => setTimeout(r, 250));
  }

  browser = await launch();
  const page = await newPage(browser, stack);
  await signIn(page, ADMIN.email, ADMIN.password);
  const shots = [
    ['overview', `#/overview?tenant_id=${acme.id}`],
    ['keys', `#/t/${acme.id}/keys`],
    ['key', `#/t/${acme.id}/keys/${keys[0].id}`],
    ['requests', `#/requests?tenant_id=${acme.id}`],
    ['usage', `#/usage?tenant_id=${acme.id}&group_by=key`],
    ['tenant', `#/t/${acme.id}`],
    ['routes', '#/routes'],
    ['audit', '#/audit'],
  ];
  for (const [name, hash] of shots) {
    await go(page, hash);
    await page.waitForTimeout(300); // charts draw on the next frames
    await page.screenshot({ path: path.join(out, `${name}.png`), fullPage: true });
    console.log(`${name}.png  ${hash}`);
  }
  await page.setViewportSize({ width: 390, height: 844 });
  await go(page, `#/overview?tenant_id=${acme.id}`);
  await page.waitForTimeout(300);
  await page.screenshot({ path: path.join(out, 'overview-390.png'), fullPage: false });
  console.log('overview-390.png');
  const login = await newPage(browser, stack);
  await login.goto('/#/login');
  await login.getByLabel('Email').waitFor();
  await login.screenshot({ path: path.join(out, 'login.png') });
  console.log('login.png');
} finally {
  if (browser) await browser.close();
  await stack.stop();
}

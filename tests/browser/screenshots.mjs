// screenshots.mjs: saves the dashboard's main views as PNGs under docs/screenshots/ (shown in
// README.md), over a real stack with a little traffic. Run after a build:
//   TOLLGATE_BIN=$PWD/build-test/bin node tests/browser/screenshots.mjs [outdir]
import path from 'node:path';
import { mkdirSync } from 'node:fs';
import { startStack, makeWorld, launch, newPage, signIn, go, chat, waitFor, usage, ROOT } from './lib/browser.mjs';

const out = path.resolve(process.argv[2] || path.join(ROOT, 'docs/screenshots'));
mkdirSync(out, { recursive: true });
const stack = await startStack();
let browser;
try {
  await makeWorld(stack);
  const api = (m, p, body) => stack.cp.api(m, p, { token: stack.admin, body });
  const acme = await stack.cp.makeTenant(stack.admin, 'acme');
  await api('POST', `/api/v1/tenants/${acme.id}/budgets`, { period: 'monthly', limit_usd: 50 });
  await api('POST', `/api/v1/tenants/${acme.id}/budgets`, { period: 'daily', limit_usd: 5 });
  const keys = [];
  for (const name of ['checkout-service', 'search-indexer', 'support-bot']) {
    keys.push((await api('POST', `/api/v1/tenants/${acme.id}/keys`, { name, models: ['gpt-4o-mini'], rpm_limit: 600 })).body);
  }
  await waitFor(async () => (await chat(stack, keys[0].key, 'warm-up')).status === 200, 15000, 'the keys to reach the data plane');
  let n = 1;
  for (let i = 0; i < 24; i++) {
    const k = keys[i % 3];
    await chat(stack, k.key, i % 11 === 10 ? 'mock:status=429' : `question ${i} mock:words=${20 + i * 7}`);
    n++;
  }
  await waitFor(async () => (await usage(stack, { tenant_id: acme.id })).totals.requests === n, 20000, 'usage');
  browser = await launch();
  const views = [
    ['overview', `#/?tenant_id=${acme.id}`],
    ['keys', `#/t/${acme.id}/keys`],
    ['key', `#/t/${acme.id}/keys/${keys[0].id}?range=24h`],
    ['requests', `#/requests?tenant_id=${acme.id}`],
    ['usage', `#/usage?tenant_id=${acme.id}&bucket=hour&group_by=key`],
  ];
  for (const width of [1280, 390]) {
    const page = await newPage(browser, stack, { width, height: 900 });
    await signIn(page);
    for (const [name, hash] of views) {
      await go(page, hash);
      await page.waitForTimeout(300); // charts draw on the next frame
      await page.screenshot({ path: path.join(out, `${name}${width === 390 ? '-390' : ''}.png`), fullPage: width !== 390 });
    }
    if (width === 1280) {
      await go(page, `#/t/${acme.id}/keys`);
      await page.locator('#create-key').click();
      await page.getByLabel('Name').fill('new-service');
      await page.getByLabel('gpt-4o-mini').check();
      await page.locator('#create-key-form').getByRole('button', { name: 'Create key' }).click();
      await page.getByLabel('The new key').waitFor();
      await page.screenshot({ path: path.join(out, 'key-created.png') });
      await page.goto('about:blank');
      await page.context().clearCookies();
      await page.goto('/#/login');
      await page.getByLabel('Email').waitFor();
      await page.screenshot({ path: path.join(out, 'login.png') });
    }
    if (page.problems.length) console.error(page.problems);
    await page.context().close();
  }
  console.log(`screenshots in ${out}`);
} finally {
  if (browser) await browser.close();
  await stack.stop();
}

// xss.test.mjs: names an attacker controls — tenants, users, keys, routes, targets, prices,
// provider headers and URLs, tokens, and the audit rows that repeat them — carrying <script>,
// <img onerror>, javascript: URLs, RTL marks and very long strings show as text on every view
// of the dashboard: nothing runs (window.__pwned stays unset, no dialog opens), no element or
// link is made from them, and the page does not scroll sideways at 390 or 1280 px.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, stopAll, launch, newPage, signIn, go, assertClean, noOverflow, unsafeDomUses } from './lib/browser.mjs';
import { allRoutes, api, makeUser } from './lib/admin.mjs';

const SCRIPT = '<script>window.__pwned=1</script>';
const IMG = '<img src=x onerror="window.__pwned=1;alert(1)">';
const JS_URL = 'javascript:window.__pwned=1';
const RTL = '\u202Etxt.exe\u202C \u200Fשלום\u200E <b>bold</b>';
const long = (n) => 'W'.repeat(n);
const PAYLOADS = [SCRIPT, IMG, JS_URL, RTL];

let stack;
let browser;
let T; let keyT;

before(async () => {
  stack = await startStack({ dataplane: false });
  browser = await launch();
  // tenants: one per payload, and one with the longest name the API takes (200)
  const tenants = [];
  for (const [i, name] of [...PAYLOADS, long(200)].entries()) {
    tenants.push(await api(stack, 'POST', '/api/v1/tenants', { slug: `xss-${i}`, name }));
  }
  T = tenants[0];
  // its keys, users (names and an email with markup in it), budgets
  for (const name of [...PAYLOADS, long(200)]) {
    keyT = await api(stack, 'POST', `/api/v1/tenants/${T.id}/keys`, { name });
  }
  for (const [i, name] of [...PAYLOADS, long(200)].entries()) {
    await makeUser(stack, `user${i}@example.com`, { name, tenantId: T.id, role: i === 0 ? 'owner' : 'viewer' });
  }
  await makeUser(stack, '<svg/onload=window.__pwned=1>@example.com', { name: IMG, tenantId: T.id, role: 'member' });
  await api(stack, 'POST', `/api/v1/tenants/${T.id}/budgets`, { key_id: keyT.id, period: 'daily', limit_usd: 1 });
  // a provider whose URL is 2,000 characters and whose header values carry markup
  const prov = await api(stack, 'POST', '/api/v1/providers', {
    name: 'xss-provider', kind: 'openai', base_url: `http://127.0.0.1:9/${long(2000 - 'http://127.0.0.1:9/'.length)}`,
    headers: { 'X-Note': IMG, 'X-Long': long(2000) }, credentials: { api_key: SCRIPT },
  });
  // routes: aliases and target models with payloads, and the longest alias (256)
  for (const alias of [...PAYLOADS, long(256)]) {
    await api(stack, 'POST', '/api/v1/routes', { alias, targets: [{ provider_id: prov.id, model: alias.length > 200 ? long(256) : `${alias} model` }] });
  }
  for (const model of [...PAYLOADS, long(256)]) {
    await api(stack, 'PUT', '/api/v1/prices', { provider_id: prov.id, model, input_per_mtok: 1, output_per_mtok: 2 });
  }
  for (const name of [...PAYLOADS, long(200)]) {
    await api(stack, 'POST', '/api/v1/tokens', { name, role: 'viewer', tenant_id: T.id });
  }
  // the admin's own name
  const me = await api(stack, 'GET', '/api/v1/me');
  await api(stack, 'PATCH', `/api/v1/users/${me.id}`, { name: SCRIPT });
});

after(() => stopAll(browser, stack));

// What the page made of the payloads: anything that ran or became markup.
async function damage(page) {
  return page.evaluate(() => {
    const out = [];
    if (window.__pwned !== undefined) out.push('window.__pwned was set');
    if (document.querySelector('img[src="x"], svg[onload], [onerror], [onload]')) out.push('an element was made from a name');
    if (document.querySelector('main b, header b')) out.push('a <b> was made from a name');
    for (const a of document.querySelectorAll('a[href]')) {
      if (!/^(#|\/|blob:)/.test(a.getAttribute('href'))) out.push(`a link to ${a.getAttribute('href').slice(0, 60)}`);
    }
    const scripts = [...document.scripts].filter((s) => !s.src);
    if (scripts.length) out.push('an inline script element exists');
    return out;
  });
}

test('no view of the dashboard runs or renders the payloads, and none scrolls sideways', async () => {
  const page = await newPage(browser, stack);
  const dialogs = [];
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  await signIn(page);
  const routes = [...allRoutes({ tid: T.id, kid: keyT.id }), `#/users?tenant=${T.id}`];
  for (const hash of routes) {
    await go(page, hash);
    // open every diff in the audit log, and the edit forms that fill inputs with the names
    if (hash === '#/audit') {
      const show = page.getByRole('button', { name: /^Show diff/ });
      for (let i = 0; i < 100 && await show.count(); i++) await show.first().click();
      assert.ok(await page.locator('table.diff').count() >= 20, 'the diffs are open');
    }
    if (hash === '#/tenants') await page.getByRole('button', { name: 'Rename xss-0' }).click();
    if (hash === '#/routes') await page.getByRole('button', { name: /^Edit / }).first().click();
    assert.deepEqual(await damage(page), [], `on ${hash}`);
    assert.deepEqual(await noOverflow(page), [], `overflow on ${hash}`);
  }
  assert.deepEqual(dialogs, [], 'no dialog opened');
  assertClean(page);
  await page.context().close();
});

test('the payloads are shown as the text they are', async () => {
  const page = await newPage(browser, stack, { width: 390 });
  await signIn(page);
  const text = async () => page.evaluate(() => document.getElementById('app-main').innerText);
  await go(page, '#/tenants');
  let t = await text();
  for (const p of [SCRIPT, IMG, JS_URL, 'txt.exe', '<b>bold</b>', long(200)]) assert.ok(t.includes(p), `tenants show ${p.slice(0, 40)}`);
  await go(page, `#/t/${T.id}`);
  t = await text();
  for (const p of [SCRIPT, IMG, '<svg/onload=window.__pwned=1>@example.com']) assert.ok(t.includes(p), `tenant page shows ${p}`);
  assert.equal(await page.locator('main h1').innerText(), SCRIPT);
  await go(page, '#/routes');
  t = await text();
  for (const p of [SCRIPT, IMG, JS_URL, `${IMG} model`]) assert.ok(t.includes(p), `routes show ${p}`);
  await go(page, '#/providers');
  assert.ok((await text()).includes(long(1981)), 'the 2,000-character URL is shown whole');
  assert.ok(!(await page.content()).includes(SCRIPT), 'the credential (a payload too) is never in the page');
  await go(page, '#/tokens');
  t = await text();
  for (const p of [SCRIPT, IMG, JS_URL]) assert.ok(t.includes(p), `tokens show ${p}`);
  await go(page, '#/me');
  assert.ok((await text()).includes(SCRIPT));
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assertClean(page);
  await page.context().close();
});

test('web/js never turns a string into HTML', () => {
  assert.deepEqual(unsafeDomUses(), []);
});

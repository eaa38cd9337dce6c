// screenshots_admin.mjs: saves the admin views (tenant page, users, providers, routes, prices,
// budgets, tokens, audit log with a diff open) as PNGs under docs/screenshots/, over a real stack.
// Run after a build:
//   TOLLGATE_BIN=$PWD/build-test/bin node tests/browser/screenshots_admin.mjs [outdir]
import path from 'node:path';
import { mkdirSync } from 'node:fs';
import { startStack, launch, newPage, signIn, go, ROOT } from './lib/browser.mjs';

const out = path.resolve(process.argv[2] || path.join(ROOT, 'docs/screenshots'));
mkdirSync(out, { recursive: true });
const stack = await startStack({ dataplane: false });
let browser;
try {
  const api = async (m, p, body) => {
    const r = await stack.cp.api(m, p, { token: stack.admin, body });
    if (r.status >= 300) throw new Error(`${m} ${p}: ${r.status} ${r.text}`);
    return r.body;
  };
  const acme = await api('POST', '/api/v1/tenants', { slug: 'acme', name: 'Acme Inc', rpm_limit: 6000 });
  await api('POST', '/api/v1/tenants', { slug: 'globex', name: 'Globex' });
  const openai = await api('POST', '/api/v1/providers', { name: 'openai', kind: 'openai', base_url: 'https://api.openai.com/v1', credentials: { api_key: 'sk-example' } });
  const azure = await api('POST', '/api/v1/providers', { name: 'azure-eu', kind: 'azure', base_url: 'https://example-eu.openai.azure.com/openai', settings: { api_version: '2024-10-21' }, credentials: { api_key: 'az-example' } });
  await api('POST', '/api/v1/routes', {
    alias: 'gpt-4o-mini', strategy: 'weighted', retry: { max_attempts: 2, on_status: [429, 503] }, first_byte_timeout_ms: 15000,
    targets: [{ provider_id: openai.id, model: 'gpt-4o-mini-2024-07-18', weight: 3 }, { provider_id: azure.id, model: 'gpt-4o-mini', weight: 1 }],
  });
  await api('POST', '/api/v1/routes', { alias: 'gpt-4o', targets: [{ provider_id: openai.id, model: 'gpt-4o-2024-11-20' }], cache_ttl_s: 300 });
  await api('PUT', '/api/v1/prices', { provider_id: openai.id, model: 'gpt-4o-mini-2024-07-18', input_per_mtok: 0.15, cached_input_per_mtok: 0.075, output_per_mtok: 0.6 });
  await api('PUT', '/api/v1/prices', { provider_id: openai.id, model: 'gpt-4o-2024-11-20', input_per_mtok: 2.5, output_per_mtok: 10 });
  const key = await api('POST', `/api/v1/tenants/${acme.id}/keys`, { name: 'checkout-service', models: ['gpt-4o-mini'] });
  await api('POST', `/api/v1/tenants/${acme.id}/keys`, { name: 'search-indexer', models: ['gpt-4o'] });
  await api('POST', `/api/v1/tenants/${acme.id}/budgets`, { period: 'monthly', limit_usd: 500, alert_threshold: 0.8 });
  await api('POST', `/api/v1/tenants/${acme.id}/budgets`, { key_id: key.id, period: 'daily', limit_usd: 20 });
  for (const [email, name, role] of [['ana@acme.example', 'Ana Ruiz', 'owner'], ['ben@acme.example', 'Ben Okafor', 'admin'], ['chen@acme.example', 'Chen Wei', 'viewer']]) {
    await api('POST', '/api/v1/users', { email, name, password: 'a-password-for-screens', tenant_id: acme.id, role });
  }
  await api('PATCH', `/api/v1/tenants/${acme.id}`, { name: 'Acme Incorporated' });
  await api('POST', '/api/v1/tokens', { name: 'ci-deploy', role: 'admin', tenant_id: acme.id });

  browser = await launch();
  const views = [
    ['tenant', `#/t/${acme.id}`],
    ['users', `#/users?tenant=${acme.id}`],
    ['providers', '#/providers'],
    ['routes', '#/routes'],
    ['prices', '#/prices'],
    ['budgets', `#/t/${acme.id}/budgets`],
    ['tokens', '#/tokens'],
  ];
  for (const width of [1280, 390]) {
    const page = await newPage(browser, stack, { width, height: 900 });
    await signIn(page);
    for (const [name, hash] of views) {
      if (width === 390 && !['tenant', 'routes'].includes(name)) continue;
      await go(page, hash);
      await page.screenshot({ path: path.join(out, `${name}${width === 390 ? '-390' : ''}.png`), fullPage: width !== 390 });
    }
    await go(page, '#/audit');
    await page.locator('main table.audit tbody tr', { hasText: 'tenant.update' }).getByRole('button', { name: /Show diff/ }).click();
    await page.locator('table.diff').scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(out, `audit${width === 390 ? '-390' : ''}.png`), fullPage: width !== 390 });
    if (page.problems.length) console.error(page.problems);
    await page.context().close();
  }
  console.log(`screenshots in ${out}`);
} finally {
  if (browser) await browser.close();
  await stack.stop();
}

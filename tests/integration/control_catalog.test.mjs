// control_catalog.test.mjs: the model catalog in tollgate-control. The built-in catalog is stored at
// start and prices every route target whose provider kind and model it lists; an admin's price
// overrides it; an unpriced target shows as such; `tollgate-control catalog diff|import FILE`
// compares, stores (audited) and pushes a newer catalog.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startControl } from './lib/control.mjs';
import { BIN } from './lib/harness.mjs';

const builtin = JSON.parse(readFileSync(path.resolve('catalog/models.json'), 'utf8'));
let cp;
let admin;
let provider;
let route;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'tg-catalog-'));

function cli(cmd, file, env = {}) {
  const r = spawnSync(path.join(BIN, 'tollgate-control'), ['catalog', cmd, file], {
    env: { ...process.env, TOLLGATE_DATABASE_URL: cp.dbUrl,
      TOLLGATE_MASTER_KEY: '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff', ...env },
    encoding: 'utf8', timeout: 30000,
  });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

function writeCatalog(name, edit) {
  const doc = structuredClone(builtin);
  edit(doc);
  const file = path.join(tmp, name);
  writeFileSync(file, JSON.stringify(doc));
  return file;
}

async function snapshotPrices() {
  const res = await fetch(`${cp.url}/dp/v1/snapshot`, { headers: { authorization: 'Bearer test-dp-token' } });
  assert.equal(res.status, 200);
  return { version: Number(res.headers.get('x-tollgate-snapshot-version')), prices: (await res.json()).prices };
}

before(async () => {
  cp = await startControl();
  admin = await cp.login();
  const prov = await cp.api('POST', '/api/v1/providers', { token: admin, body: {
    name: 'openai', kind: 'openai', base_url: 'https://api.openai.com/v1', credentials: { api_key: 'sk-test' } } });
  assert.equal(prov.status, 201, prov.text);
  provider = prov.body;
  const rt = await cp.api('POST', '/api/v1/routes', { token: admin, body: { alias: 'mixed', targets: [
    { provider_id: provider.id, model: 'gpt-5-mini' },
    { provider_id: provider.id, model: 'gpt-4' },
    { provider_id: provider.id, model: 'my-finetune' }] } });
  assert.equal(rt.status, 201, rt.text);
  route = rt.body;
  const pr = await cp.api('PUT', '/api/v1/prices', { token: admin, body: {
    provider_id: provider.id, model: 'gpt-4', input_per_mtok: 20, output_per_mtok: 40 } });
  assert.equal(pr.status, 201, pr.text);
});

after(async () => { await cp?.stop(); });

test('the built-in catalog is stored at start and shown', async () => {
  const r = await cp.api('GET', '/api/v1/catalog', { token: admin });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.origin, 'builtin');
  assert.equal(r.body.version, builtin.version);
  assert.equal(r.body.models, builtin.models.length);
});

test('each route target shows its effective price and where it comes from', async () => {
  const r = await cp.api('GET', `/api/v1/routes/${route.id}/prices`, { token: admin });
  assert.equal(r.status, 200, r.text);
  const [mini, gpt4, ft] = r.body.targets;
  assert.deepEqual([mini.price_source, gpt4.price_source, ft.price_source], ['catalog', 'admin', 'none']);
  assert.equal(mini.input_per_mtok, 0.25);
  assert.equal(mini.cached_input_per_mtok, 0.025);
  assert.equal(mini.output_per_mtok, 2);
  assert.equal(gpt4.input_per_mtok, 20); // the admin's, not the catalog's 30
  assert.equal(ft.input_per_mtok, null);
  const missing = await cp.api('GET', '/api/v1/routes/00000000-0000-0000-0000-000000000000/prices', { token: admin });
  assert.equal(missing.status, 404);
});

test('an OpenAI-compatible provider is priced by the vendor its base URL names', async () => {
  const groq = await cp.api('POST', '/api/v1/providers', { token: admin, body: {
    name: 'groq', kind: 'openai', base_url: 'https://api.groq.com/openai/v1', credentials: { api_key: 'gsk-test' } } });
  assert.equal(groq.status, 201, groq.text);
  const rt = await cp.api('POST', '/api/v1/routes', { token: admin, body: { alias: 'oss', targets: [
    { provider_id: groq.body.id, model: 'openai/gpt-oss-120b' },
    { provider_id: groq.body.id, model: 'gpt-5-mini' }] } });
  assert.equal(rt.status, 201, rt.text);
  const r = await cp.api('GET', `/api/v1/routes/${rt.body.id}/prices`, { token: admin });
  assert.equal(r.status, 200, r.text);
  const [oss, mini] = r.body.targets;
  assert.equal(oss.price_source, 'catalog');
  assert.equal(oss.input_per_mtok, 0.15);
  assert.equal(oss.output_per_mtok, 0.6);
  // OpenAI's price is not Groq's: a model Groq's entries do not list stays unpriced there
  assert.equal(mini.price_source, 'none');
  assert.equal(mini.input_per_mtok, null);
});

test('the snapshot carries catalog prices for targets no admin priced', async () => {
  const { prices } = await snapshotPrices();
  const mini = prices.find((p) => p.model === 'gpt-5-mini');
  assert.deepEqual(mini, { provider: provider.id, model: 'gpt-5-mini', input_per_mtok: 0.25,
    cached_input_per_mtok: 0.025, output_per_mtok: 2 });
  assert.equal(prices.filter((p) => p.model === 'gpt-4').length, 1);
  assert.equal(prices.find((p) => p.model === 'gpt-4').input_per_mtok, 20);
  assert.equal(prices.find((p) => p.model === 'my-finetune'), undefined);
});

test('an invalid catalog is refused with the reason and stores nothing', async () => {
  const before = cp.sql('SELECT count(*) FROM model_catalogs');
  const file = writeCatalog('bad.json', (d) => { d.models[0].prices.input = '-1'; });
  const r = cli('import', file);
  assert.equal(r.status, 1);
  const first = builtin.models[0];
  assert.ok(r.err.includes(`models[0] (${first.model}) prices.input is not a plain decimal`), r.err);
  const dup = cli('diff', writeCatalog('dup.json', (d) => { d.models.push(d.models[0]); }));
  assert.equal(dup.status, 1);
  assert.ok(dup.err.includes(`${first.kind}/${first.vendor ?? ''}/${first.model} twice`), dup.err);
  const ttl = cli('diff', writeCatalog('ttl.json', (d) => { d.models[0].prices.cache_write = { '2h': '4' }; }));
  assert.equal(ttl.status, 1);
  assert.match(ttl.err, /prices\.cache_write tiers are 5m, 30m, 1h and 12h/);
  const noSource = cli('diff', writeCatalog('nosrc.json', (d) => { delete d.models[3].source; }));
  assert.equal(noSource.status, 1);
  assert.match(noSource.err, /needs source/);
  const tier = cli('diff', writeCatalog('tier.json', (d) => {
    d.models.find((m) => m.long_context).long_context[0].from_input_tokens = 5000000; }));
  assert.equal(tier.status, 1);
  assert.match(tier.err, /long_context tiers need ascending from_input_tokens within the context window/);
  assert.equal(cp.sql('SELECT count(*) FROM model_catalogs'), before);
});

test("OpenAI's 30-minute and 12-hour cache-write tiers are accepted", async () => {
  const r = cli('diff', writeCatalog('openai-ttl.json', (d) => {
    d.models.find((m) => m.model === 'gpt-5-mini').prices.cache_write = { '30m': '0.3125', '12h': '0.5' }; }));
  assert.equal(r.status, 0, r.err);
  assert.match(r.out, /0 added, 0 removed, 0 with price changes/);
});

const NEWER = (d) => {
  d.version = `${builtin.version}-next`;
  d.models = d.models.filter((m) => m.model !== 'gpt-5.1');
  d.models.find((m) => m.model === 'gpt-5-mini').prices.input = '0.3';
  d.models.push({ ...structuredClone(d.models.find((m) => m.model === 'gpt-4')), model: 'my-finetune', prices: { input: '1.5', output: '6' } });
};

test('catalog diff prints what would change and stores nothing', async () => {
  const before = cp.sql('SELECT count(*) FROM model_catalogs');
  const r = cli('diff', writeCatalog('newer.json', NEWER));
  assert.equal(r.status, 0, r.err);
  assert.match(r.out, /^added +openai\/openai my-finetune$/m);
  assert.match(r.out, /^removed +openai\/openai gpt-5\.1$/m);
  assert.match(r.out, /^changed +openai\/openai gpt-5-mini: input 0\.25 -> 0\.3$/m);
  assert.match(r.out, /1 added, 1 removed, 1 with price changes/);
  assert.equal(cp.sql('SELECT count(*) FROM model_catalogs'), before);
});

test('catalog import stores the catalog, audits it and the data planes get its prices', async () => {
  const v0 = (await snapshotPrices()).version;
  const r = cli('import', writeCatalog('newer.json', NEWER));
  assert.equal(r.status, 0, r.err);
  assert.match(r.out, /stored; catalog .*-next is in effect/);
  const cat = await cp.api('GET', '/api/v1/catalog', { token: admin });
  assert.equal(cat.body.origin, 'import');
  const audit = JSON.parse(cp.sql(`SELECT json_build_object('actor', actor_label, 'after', after) FROM audit_log WHERE action = 'catalog.import'`));
  assert.equal(audit.actor, 'system:tollgate-control catalog import');
  assert.deepEqual([audit.after.added, audit.after.removed, audit.after.price_changes], [1, 1, 1]);
  const { version, prices } = await snapshotPrices();
  assert.ok(version > v0, `snapshot version ${version} after ${v0}`);
  assert.equal(prices.find((p) => p.model === 'gpt-5-mini').input_per_mtok, 0.3);
  assert.equal(prices.find((p) => p.model === 'my-finetune').input_per_mtok, 1.5);
  const rp = await cp.api('GET', `/api/v1/routes/${route.id}/prices`, { token: admin });
  assert.deepEqual(rp.body.targets.map((t) => t.price_source), ['catalog', 'admin', 'catalog']);
  // the same file again changes nothing
  const again = cli('import', writeCatalog('newer.json', NEWER));
  assert.equal(again.status, 0);
  assert.match(again.out, /imported before; nothing stored/);
  assert.equal(cp.sql(`SELECT count(*) FROM audit_log WHERE action = 'catalog.import'`), '1');
});

test('a catalog import whose audit row completes a checkpoint logs the checkpoint, as an admin change does', async () => {
  const third = (d) => {
    NEWER(d);
    d.version = `${builtin.version}-third`;
    d.models.find((m) => m.model === 'gpt-5-mini').prices.input = '0.4';
  };
  const r = cli('import', writeCatalog('third.json', third), { TOLLGATE_AUDIT_CHECKPOINT_ROWS: '1' });
  assert.equal(r.status, 0, r.err);
  const id = cp.sql(`SELECT max(id) FROM audit_log WHERE action = 'catalog.import'`);
  assert.equal(cp.sql(`SELECT count(*) FROM audit_checkpoints WHERE last_id = ${id}`), '1');
  assert.match(r.err, new RegExp(`event=audit_checkpoint after_id=\\d+ last_id=${id} rows=\\d+ head=[0-9a-f]{64} mac=[0-9a-f]{64}`));
});

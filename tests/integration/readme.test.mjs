// readme.test.mjs: README's walk-through, run as a newcomer would paste it into bash, against the
// real tollgate-control, a linked tollgate-data and the bundled mock provider. Only the addresses
// change (this run's random ports) and each `sleep` becomes a bounded wait for what it waits for.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startOpenAIMock } from '../mocks/openai.mjs';
import { startGateway, waitFor } from './lib/harness.mjs';
import { startControl, ADMIN } from './lib/control.mjs';

const execFileP = promisify(execFile);
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');

let mock;
let cp;
let gw;

before(async () => {
  mock = await startOpenAIMock({ apiKey: 'sk-mock' }); // as scripts/run starts it
  cp = await startControl({ env: { TOLLGATE_DP_POLL_TIMEOUT_MS: '2000' } });
  gw = await startGateway({ args: ['--control-url', cp.url], env: { TOLLGATE_DP_TOKEN: 'test-dp-token' } });
});

after(async () => {
  if (gw) await gw.stop();
  if (cp) await cp.stop();
  if (mock) await mock.close();
});

// The shell block between the walkthrough markers, exactly as README.md shows it.
export function walkthrough(readme) {
  const m = /<!-- walkthrough:begin -->\n```sh\n([\s\S]*?)```\n<!-- walkthrough:end -->/.exec(readme);
  assert.ok(m, 'README.md has no walk-through block between its markers');
  return m[1];
}

// The shell block between the catalog-budget markers: the walk-through continued.
function catalogBudget(readme) {
  const m = /<!-- catalog-budget:begin -->\n```sh\n([\s\S]*?)```\n<!-- catalog-budget:end -->/.exec(readme);
  assert.ok(m, 'README.md has no catalog-budget block between its markers');
  return m[1];
}

test('README walk-through: every line runs as pasted, ids are captured, the key is served and budgeted; then a budget with no price typed by hand refuses once a catalog model spent it', async () => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  let script = walkthrough(readme);
  const more = catalogBudget(readme);
  assert.deepEqual(more.match(/^sleep \d+$/gm), ['sleep 1'], 'the budget block waits once, for its key');
  assert.doesNotMatch(more, /\/prices -H "\$AUTH" -d|-X PUT/, 'no price typed by hand');
  const sleeps = script.match(/^sleep \d+$/gm) || [];
  assert.deepEqual(sleeps, ['sleep 1', 'sleep 3'], 'the walk-through waits twice: for the key, then for usage');
  const cpAddr = new URL(cp.url).host;
  const dpAddr = new URL(gw.url).host;
  const mockAddr = new URL(mock.url).host;
  script = script
    .replaceAll('127.0.0.1:8081', cpAddr)
    .replaceAll('127.0.0.1:8080', dpAddr)
    .replaceAll('127.0.0.1:8082', mockAddr)
    .replace(/^sleep 1$/m, 'wait_key_live')
    .replace(/^sleep 3$/m, 'wait_usage');
  script += more.replace(/^sleep 1$/m, 'wait_key2_live')
    .replaceAll('127.0.0.1:8081', cpAddr).replaceAll('127.0.0.1:8080', dpAddr);

  const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-readme-'));
  mkdirSync(path.join(dir, '.tollgate'));
  writeFileSync(path.join(dir, '.tollgate/secrets.env'),
    `TOLLGATE_ADMIN_EMAIL=${ADMIN.email}\nTOLLGATE_ADMIN_PASSWORD=${ADMIN.password}\n`);
  // bounded waits for what the README's two sleeps wait for (each at most 10 s)
  const prelude = `
wait_key_live() {
  for _ in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' $DP/v1/models -H "Authorization: Bearer $KEY")" = 200 ] && return 0
    command sleep 0.1
  done
  echo "key not live after 10 s" >&2; return 1
}
wait_key2_live() {
  for _ in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' $DP/v1/models -H "Authorization: Bearer $KEY2")" = 200 ] && return 0
    command sleep 0.1
  done
  echo "key not live after 10 s" >&2; return 1
}
wait_usage() {
  for _ in $(seq 100); do
    curl -s "$CP/usage?tenant_id=$TENANT&bucket=day" -H "$AUTH" | grep -q '"requests":[1-9]' && return 0
    command sleep 0.1
  done
  echo "no usage after 10 s" >&2; return 1
}
`;
  // -e: a failing step stops the story; -u: a variable a step should have captured is missing
  const full = `set -eu\n${script.replace(/^(id_of\(\) .*)$/m, `$1\n${prelude}`)}\n` +
    'echo "TENANT=$TENANT"; echo "PROVIDER=$PROVIDER"; echo "KEY_ID=$KEY_ID"; echo "KEY=$KEY"\n' +
    'echo "KEY2_ID=$(echo "$KEY2_JSON" | id_of)"\n';
  const { stdout } = await execFileP('bash', ['-c', full], { cwd: dir, timeout: 60000 });

  const vars = Object.fromEntries([...stdout.matchAll(/^(TENANT|PROVIDER|KEY_ID|KEY|KEY2_ID)=(.*)$/gm)].map((v) => [v[1], v[2]]));
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
  assert.match(vars.TENANT, uuid);
  assert.match(vars.PROVIDER, uuid);
  assert.match(vars.KEY_ID, uuid);
  assert.match(vars.KEY, /^tg-[A-Za-z0-9_-]{43}$/);

  const lines = stdout.split('\n').filter((l) => l.startsWith('{'));
  const objs = lines.map((l) => JSON.parse(l));
  const route = objs.find((o) => o.alias === 'gpt-4o-mini');
  assert.ok(route, `no route in the output:\n${stdout}`);
  assert.equal(route.targets[0].provider_id, vars.PROVIDER);
  const price = objs.find((o) => o.input_per_mtok !== undefined);
  assert.equal(price.provider_id, vars.PROVIDER);
  const chat = objs.find((o) => o.object === 'chat.completion');
  assert.ok(chat, `the data plane did not answer the chat:\n${stdout}`);
  assert.equal(typeof chat.choices[0].message.content, 'string');
  assert.ok(chat.choices[0].message.content.length > 0);
  const budget = objs.find((o) => o.period === 'daily');
  assert.equal(budget.key_id, vars.KEY_ID);
  assert.equal(Number(budget.limit_usd), 5);
  const key = objs.find((o) => o.rpm_limit !== undefined);
  assert.equal(key.id, vars.KEY_ID);
  assert.equal(key.rpm_limit, 60);
  assert.equal(key.tpm_limit, 100000);
  const usage = objs.find((o) => Array.isArray(o.data) || o.totals);
  assert.ok(Array.isArray(usage.data) || usage.totals, `step 9 printed no usage:\n${stdout}`);
  assert.match(JSON.stringify(usage), new RegExp(vars.KEY_ID), 'usage grouped by key names the key');
  assert.equal(Number(cp.sql(`SELECT count(*) FROM usage_events WHERE key_id = '${vars.KEY_ID}'`)), 1);
  assert.ok(Number(cp.sql(`SELECT cost_usd FROM usage_events WHERE key_id = '${vars.KEY_ID}'`)) > 0,
    'the price set in step 5 is counted');

  // the catalog-budget block: the route priced from the catalog, a few answers, then the refusal
  const catalog = JSON.parse(readFileSync(path.join(ROOT, 'catalog/models.json'), 'utf8'));
  const entry = catalog.models.find((m) => m.kind === 'openai' && m.model === 'gpt-5-mini');
  assert.ok(entry, 'gpt-5-mini is in the catalog');
  const prices = objs.find((o) => o.alias === 'mini' && o.route_id);
  assert.equal(prices.targets[0].price_source, 'catalog');
  assert.equal(prices.targets[0].unpriced, false);
  assert.equal(prices.targets[0].input_per_mtok, Number(entry.prices.input));
  const codes = stdout.split('\n').find((l) => /^(\d{3} )+$/.test(l)).trim().split(' ');
  const served = codes.indexOf('429');
  assert.ok(served >= 2, `a few answers before the refusal: ${codes.join(' ')}`);
  assert.deepEqual(codes.slice(0, served), Array(served).fill('200'));
  assert.deepEqual(codes.slice(served), Array(codes.length - served).fill('429'));
  assert.equal(cp.sql("SELECT count(*) FROM prices WHERE model = 'gpt-5-mini'"), '0');
  // each answer cost exactly the catalog price of its tokens, in picodollars
  const pico = (d) => BigInt(Math.round(Number(d) * 1e6));
  const rows = await waitFor(() => {
    const r = cp.sql(`SELECT prompt_tokens, completion_tokens, cost_usd::text FROM usage_events
      WHERE key_id = '${vars.KEY2_ID}' AND status = 200`).split('\n').filter(Boolean);
    return r.length === served && r;
  }, 20000, 'the usage events of the budgeted key');
  for (const row of rows) {
    const [p, c, cost] = row.split('|');
    assert.equal(BigInt(cost.replace('.', '')), BigInt(p) * pico(entry.prices.input) + BigInt(c) * pico(entry.prices.output));
  }
});

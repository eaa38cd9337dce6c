// The Responses translator's transcripts (tests/unit/responses/*.json, whose output
// tests/unit/test_dp_responses.c proves the C translator emits byte for byte), fed to the openai
// SDK through a local HTTP server: the SDK's own stream assembler (responses.stream +
// finalResponse) and responses.create must accept every one and see what the transcript says.
// No gateway involved. Run: node --test tests/integration/responses_sdk.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'unit', 'responses');
const transcripts = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort()
  .map((f) => ({ file: f, ...JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) }));

let server;
let port;
let current; // the transcript being served

before(async () => {
  server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const t = current;
      if (t.expect_events !== undefined) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(t.expect_events);
        return;
      }
      const text = JSON.stringify(t.expect_response);
      res.writeHead(t.status ?? 200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = server.address().port;
});
after(() => new Promise((resolve) => server.close(resolve)));

async function client(t) {
  try {
    const { default: OpenAI } = await import('openai');
    return new OpenAI({ apiKey: 'k', baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0 });
  } catch {
    t.skip('openai package not installed');
    return null;
  }
}

// The SDK's parse helpers add `parsed` (text parts) and `parsed_arguments` (calls) of its own.
function withoutParsed(v) {
  return JSON.parse(JSON.stringify(v, (k, x) => (k === 'parsed' || k === 'parsed_arguments' ? undefined : x)));
}

// What the transcript's `sdk` block says the SDK must see in the final response.
function check(r, sdk) {
  if (sdk.status) assert.equal(r.status, sdk.status);
  if (sdk.output_text !== undefined) assert.equal(r.output_text, sdk.output_text);
  if (sdk.calls) {
    assert.deepEqual(r.output.filter((o) => o.type === 'function_call').map((o) => [o.name, o.call_id, o.arguments]), sdk.calls);
  }
  if (sdk.usage) {
    const u = r.usage;
    assert.deepEqual({
      input_tokens: u.input_tokens, cached_tokens: u.input_tokens_details.cached_tokens, output_tokens: u.output_tokens,
      reasoning_tokens: u.output_tokens_details.reasoning_tokens, total_tokens: u.total_tokens,
    }, sdk.usage);
  }
  if (sdk.error_code) assert.equal(r.error.code, sdk.error_code);
  if (sdk.incomplete_reason) assert.equal(r.incomplete_details.reason, sdk.incomplete_reason);
  if (sdk.previous_response_id) assert.equal(r.previous_response_id, sdk.previous_response_id);
  for (const item of r.output) assert.ok(typeof item.id === 'string' && item.id.length > 0, 'every item has an id');
}

for (const tr of transcripts) {
  test(`${tr.file}: ${tr.name}`, async (t) => {
    const c = await client(t);
    if (!c) return;
    current = tr;
    const body = { ...tr.request };
    if (tr.expect_events !== undefined) {
      const stream = c.responses.stream(body);
      const seen = [];
      let deltas = 0;
      stream.on('event', (e) => seen.push(e.type));
      stream.on('response.output_text.delta', () => { deltas++; });
      const r = await stream.finalResponse();
      check(r, tr.sdk);
      if (tr.sdk.deltas !== undefined) assert.equal(deltas, tr.sdk.deltas);
      assert.equal(seen[0], 'response.created');
      // the SDK's assembled response is the one the last event carried
      const last = JSON.parse(tr.expect_events.trim().split('\n').at(-1).slice(6)).response;
      assert.deepEqual(withoutParsed(r.output), last.output);
      assert.deepEqual(r.usage, last.usage);
    } else if (tr.sdk.http_status) {
      await assert.rejects(c.responses.create(body), (err) => err.status === tr.sdk.http_status && typeof err.message === 'string');
    } else {
      const r = await c.responses.create(body);
      check(r, tr.sdk);
      assert.equal(r.object, 'response');
    }
  });
}

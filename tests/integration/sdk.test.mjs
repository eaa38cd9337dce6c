// sdk.test.mjs: the official `openai` npm SDK, unmodified, pointed at tollgate-data. Whatever the
// SDK does on the wire (its headers, base64 embeddings, SSE parsing, error classes by status) must
// work through the gateway exactly as it does against OpenAI.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startOpenAIMock } from '../mocks/openai.mjs';
import { startGateway, makeSnapshot } from './lib/harness.mjs';

let mock;
let gw;
let client;
const KEY = 'tg-test-key';

function sdk(apiKey = KEY) {
  // timeout bounds every call: a hung gateway fails the test instead of hanging it
  return new OpenAI({ baseURL: gw.url + '/v1', apiKey, maxRetries: 0, timeout: 10_000 });
}

before(async () => {
  mock = await startOpenAIMock();
  gw = await startGateway({
    snapshot: makeSnapshot({ mockUrl: mock.url, keys: { [KEY]: { models: ['gpt-4o-mini', 'embed'] } } }),
  });
  client = sdk();
});

after(async () => {
  const e = await gw.stop();
  assert.equal(e.code, 0, 'tollgate-data exits 0 on SIGTERM');
  await mock.close();
});

beforeEach(() => mock.reset());

test('chat.completions.create (non-streaming) returns the provider answer', async () => {
  const { data: c, response } = await client.chat.completions
    .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi mock:words=4' }] })
    .withResponse();
  assert.equal(response.status, 200);
  assert.ok(response.headers.get('x-request-id'));
  assert.equal(c.object, 'chat.completion');
  assert.equal(c.choices[0].message.role, 'assistant');
  assert.equal(c.choices[0].message.content, 'w1 w2 w3 w4');
  assert.equal(c.choices[0].finish_reason, 'stop');
  assert.equal(c.usage.completion_tokens, 4);
  assert.equal(c.usage.total_tokens, c.usage.prompt_tokens + 4);
  assert.equal(mock.requests.length, 1);
  assert.equal(mock.requests[0].body.model, 'gpt-4o-mini-2024-07-18');
  assert.equal(mock.requests[0].headers.authorization, 'Bearer sk-upstream-test');
});

test('chat.completions.create streaming: for await assembles the text', async () => {
  const stream = await client.chat.completions.create({
    model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi mock:words=7' }], stream: true,
  });
  let text = '';
  let n = 0;
  let finish = null;
  for await (const chunk of stream) {
    n++;
    assert.equal(chunk.object, 'chat.completion.chunk');
    assert.ok(!('usage' in chunk) || chunk.usage == null, 'no usage the client did not ask for');
    text += chunk.choices[0]?.delta?.content || '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(text, 'w1 w2 w3 w4 w5 w6 w7');
  assert.equal(finish, 'stop');
  assert.ok(n >= 9, `role chunk + 7 content chunks + finish chunk, got ${n}`);
});

test('chat.completions.create streaming with include_usage: the final chunk carries usage', async () => {
  const stream = await client.chat.completions.create({
    model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi mock:words=5' }], stream: true,
    stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.equal(last.usage.completion_tokens, 5);
  assert.equal(last.usage.total_tokens, last.usage.prompt_tokens + 5);
  assert.equal(chunks.slice(0, -1).map((c) => c.choices[0]?.delta?.content || '').join(''), 'w1 w2 w3 w4 w5');
});

test('embeddings.create: the default (base64, decoded by the SDK) equals encoding_format float', async () => {
  const input = ['the quick brown fox', 'jumps over', 'the lazy dog'];
  const dflt = await client.embeddings.create({ model: 'embed', input });
  const flt = await client.embeddings.create({ model: 'embed', input, encoding_format: 'float' });
  // the SDK really asked for base64 the first time, so the decoding path was exercised
  assert.equal(mock.requests.length, 2);
  assert.equal(mock.requests[0].body.encoding_format, 'base64');
  assert.equal(mock.requests[1].body.encoding_format, 'float');
  assert.equal(dflt.data.length, 3);
  assert.equal(flt.data.length, 3);
  for (let i = 0; i < 3; i++) {
    assert.equal(dflt.data[i].index, i);
    assert.ok(Array.isArray(dflt.data[i].embedding), 'decoded to a number array');
    assert.ok(dflt.data[i].embedding.length > 0);
    assert.deepEqual(dflt.data[i].embedding, flt.data[i].embedding, `vector ${i}`);
  }
  assert.deepEqual(dflt.usage, flt.usage);
  assert.ok(dflt.usage.prompt_tokens > 0);
});

test('models.list returns only the models the key may use', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids.sort(), ['embed', 'gpt-4o-mini']);
  assert.equal(mock.requests.length, 0, 'answered by the gateway, not the provider');
});

test('completions.create (legacy), plain and streamed', async () => {
  const c = await client.completions.create({ model: 'gpt-4o-mini', prompt: 'say hi mock:words=3' });
  assert.equal(c.object, 'text_completion');
  assert.equal(c.choices[0].text, 'w1 w2 w3');
  assert.equal(c.usage.completion_tokens, 3);
  const s = await client.completions.create({ model: 'gpt-4o-mini', prompt: 'say hi mock:words=3', stream: true });
  let text = '';
  for await (const chunk of s) text += chunk.choices[0]?.text || '';
  assert.equal(text, 'w1 w2 w3');
  assert.equal(mock.requests[0].path, '/v1/completions');
});

test('a bad key raises AuthenticationError (401)', async () => {
  await assert.rejects(
    sdk('tg-not-a-key').chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
    (e) => {
      assert.ok(e instanceof OpenAI.AuthenticationError, `got ${e?.constructor?.name}: ${e?.message}`);
      assert.equal(e.status, 401);
      assert.equal(e.code, 'invalid_api_key');
      return true;
    },
  );
  await assert.rejects(sdk('tg-not-a-key').models.list(), OpenAI.AuthenticationError);
  assert.equal(mock.requests.length, 0);
});

test('a forbidden model raises PermissionDeniedError (403), an unknown one NotFoundError (404)', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'secret-model', messages: [{ role: 'user', content: 'hi' }] }),
    (e) => {
      assert.ok(e instanceof OpenAI.PermissionDeniedError, `got ${e?.constructor?.name}: ${e?.message}`);
      assert.equal(e.status, 403);
      assert.equal(e.code, 'model_not_allowed');
      return true;
    },
  );
  await assert.rejects(
    client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }], stream: true }),
    (e) => {
      assert.ok(e instanceof OpenAI.NotFoundError, `got ${e?.constructor?.name}: ${e?.message}`);
      assert.equal(e.status, 404);
      assert.equal(e.code, 'model_not_found');
      return true;
    },
  );
  assert.equal(mock.requests.length, 0);
});

test('a 429 from the provider raises RateLimitError with its retry-after', async () => {
  for (const stream of [false, true]) {
    await assert.rejects(
      client.chat.completions.create({
        model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi mock:status=429' }], stream,
      }),
      (e) => {
        assert.ok(e instanceof OpenAI.RateLimitError, `got ${e?.constructor?.name}: ${e?.message}`);
        assert.equal(e.status, 429);
        assert.equal(e.headers.get('retry-after'), '1');
        assert.equal(e.headers.get('x-tollgate-attempts'), '2');
        return true;
      },
    );
  }
  // the SDK does not retry (maxRetries: 0); the gateway's default policy tries twice
  assert.equal(mock.requests.length, 4, 'two upstream calls each');
});

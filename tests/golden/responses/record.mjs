// Records the /v1/responses conformance transcripts in this directory (tests/golden/README.md):
// each case goes through the real tollgate-data to a provider mock, with a recording proxy in
// between that keeps what the data plane sent upstream and what came back. The transcript is
// the client's request, that upstream request and answer, and what the client received (ids the
// gateway made at random replaced by the fixed ones the conformance suite gives). Run from the
// repository root after a build, and read the diff before committing it:
//   TOLLGATE_BIN=$PWD/build-test/bin node tests/golden/responses/record.mjs
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startOpenAIMock } from '../../mocks/openai.mjs';
import { startAzureMock } from '../../mocks/azure.mjs';
import { startAnthropicMock } from '../../mocks/anthropic.mjs';
import { startGeminiMock } from '../../mocks/gemini.mjs';
import { startBedrockMock } from '../../mocks/bedrock.mjs';
import { NOW, sse, startRecording } from '../recorder.mjs';

const DIR = path.dirname(fileURLToPath(import.meta.url));

const tools = [
  { type: 'function', name: 'get_weather', description: 'weather in a city', strict: false,
    parameters: { type: 'object', properties: { q: { type: 'string' } }, required: ['q'] } },
  { type: 'function', name: 'get_time', description: 'time in a city', strict: false,
    parameters: { type: 'object', properties: { q: { type: 'string' } } } },
];

// kind -> provider (golden form), target model, and what makes each case on its mock
const KINDS = {
  openai: { model: 'gpt-4o-mini', cached: 'mock:cached=3 mock:reasoning=2', fail: 'mock:fail_after=5 mock:words=4' },
  azure: { model: 'gpt-4o-mini', cached: 'mock:cached=3 mock:reasoning=2', fail: 'mock:fail_after=5 mock:words=4' },
  compat: { model: 'llama-3.1-8b', cached: 'mock:cached=3 mock:reasoning=2', fail: 'mock:words=4', cut: 'openai' },
  anthropic: { model: 'claude-3-5-haiku-20241022', cached: 'mock:cache_read=3', fail: 'mock:error_mid_stream mock:words=4' },
  gemini: { model: 'gemini-2.0-flash', cached: '', fail: 'mock:words=4', cut: 'gemini' },
  bedrock: { model: 'anthropic.claude-3-5-haiku-20241022-v1:0', cached: 'mock:cached=3', fail: 'mock:exception_mid_stream mock:words=4' },
};

// An error event after the third event of a stream, for mocks without a directive for one.
function cutWithError(kind) {
  return (buf) => {
    const events = buf.toString('utf8').split(/\r?\n\r?\n/).filter((e) => e.trim());
    const err = kind === 'gemini'
      ? 'data: {"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}'
      : 'data: {"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}';
    return Buffer.from(events.slice(0, 3).concat([err]).map((e) => e + '\n\n').join(''));
  };
}

const CASES = [
  { name: 'text', title: 'a text answer, not streamed',
    req: () => ({ instructions: 'be brief', input: 'say hi mock:words=3' }) },
  { name: 'two_tool_calls_stream', title: 'two parallel tool calls, streamed: two function_call items, each at its own output_index',
    req: () => ({ tools, input: 'weather and time? mock:tools=2', stream: true }) },
  { name: 'tool_result_followup', title: 'the follow-up of two tool calls: the calls and their outputs as input items, answered with text',
    req: () => ({ tools, input: [
      { role: 'user', content: 'weather and time? mock:words=3' },
      { type: 'function_call', call_id: 'call_a', name: 'get_weather', arguments: '{"q":"Paris"}' },
      { type: 'function_call', call_id: 'call_b', name: 'get_time', arguments: '{"q":"Paris"}' },
      { type: 'function_call_output', call_id: 'call_a', output: '{"sky":"clear"}' },
      { type: 'function_call_output', call_id: 'call_b', output: '{"time":"12:00"}' },
    ] }) },
  { name: 'error_mid_stream', title: 'the provider reports an error mid-stream: the stream ends failed',
    req: (k) => ({ input: `say hi ${KINDS[k].fail}`, stream: true }), cut: true },
  { name: 'usage_cached_reasoning_stream', title: 'usage with cached (and, where the provider has them, reasoning) tokens, streamed',
    req: (k) => ({ input: `say hi mock:words=2 ${KINDS[k].cached}`, stream: true }) },
];

// The gateway's random response id -> the suite's fixed one; created_at and completed_at -> the
// suite's clock (a relayed answer's too: the recording proxy sets it so in what the provider
// answered, ../recorder.mjs).
function normalize(v, id, native) {
  let s = JSON.stringify(v);
  if (!native && id) s = s.replaceAll(id, 'resp_golden').replaceAll(id.slice(5), 'golden');
  return JSON.parse(s, function (k, x) { return (k === 'created_at' || k === 'completed_at') && typeof x === 'number' ? NOW : x; });
}

const mocks = {
  openai: await startOpenAIMock(), compat: await startOpenAIMock(), azure: await startAzureMock(),
  anthropic: await startAnthropicMock(), gemini: await startGeminiMock(), bedrock: await startBedrockMock(),
};
const b = mocks.bedrock;
const rig = await startRecording({
  mocks,
  providers: {
    openai: { id: 'oa', kind: 'openai', api_key: 'sk-upstream-test' },
    compat: { id: 'vllm', kind: 'openai', api_key: 'sk-upstream-test', responses_api: 'chat' },
    azure: { id: 'az', kind: 'azure', api_key: mocks.azure.apiKey },
    anthropic: { id: 'an', kind: 'anthropic', api_key: 'sk-ant-test' },
    gemini: { id: 'gm', kind: 'gemini', api_key: 'gm-test' },
    bedrock: { id: 'br', kind: 'bedrock', region: b.region, aws_access_key_id: b.accessKeyId, aws_secret_access_key: b.secretAccessKey },
  },
  models: Object.fromEntries(Object.entries(KINDS).map(([k, v]) => [k, v.model])),
});

try {
  for (const [k, kv] of Object.entries(KINDS)) {
    fs.mkdirSync(path.join(DIR, k), { recursive: true });
    for (const c of CASES) {
      const native = k === 'openai' || k === 'azure';
      const rid = `req-${k}-${c.name}`;
      const { g, text, streamed, usage } = await rig.send(k, '/v1/responses', { model: k, ...c.req(k) }, {
        transform: c.cut && kv.cut ? cutWithError(kv.cut) : null,
        name: `${k}: ${c.title}`, comment: `recorded by tests/golden/responses/record.mjs (${rid})`, endpoint: 'responses' });
      let id = null;
      if (streamed) {
        const evs = sse(text);
        id = evs[0]?.data?.response?.id ?? null;
        g.expect_events = normalize(evs, id, native);
        if (c.cut) g.expect_stream_error = true;
      } else {
        const j = JSON.parse(text);
        id = j.id ?? null;
        g.expect = normalize(j, id, native);
      }
      rig.save(path.join(DIR, k, `${c.name}.json`), g, usage);
    }
  }
} finally {
  await rig.close();
}
console.log(`wrote ${rig.sent} transcripts`);

// Records the reverse-path conformance transcripts in this directory (tests/golden/README.md):
// chat completions and /v1/messages sent to a model that serves only the Responses API
// (provider setting responses_api "responses", OpenAI and Azure kinds), so that the data plane
// translates them to the provider's /responses and its answer back. Each case goes through the
// real tollgate-data to the provider's mock through a recording proxy that keeps what the data
// plane sent upstream and what came back. Run from the repository root after a build, and read
// the diff before committing it:
//   TOLLGATE_BIN=$PWD/build-test/bin node tests/golden/chat_via_responses/record.mjs
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startOpenAIMock } from '../../mocks/openai.mjs';
import { startAzureMock } from '../../mocks/azure.mjs';
import { KEY, atNow, sse, startRecording } from '../recorder.mjs';

const DIR = path.dirname(fileURLToPath(import.meta.url));

const chatTools = [
  { type: 'function', function: { name: 'get_weather', description: 'weather in a city',
    parameters: { type: 'object', properties: { q: { type: 'string' } }, required: ['q'] } } },
  { type: 'function', function: { name: 'get_time', description: 'time in a city',
    parameters: { type: 'object', properties: { q: { type: 'string' } } } } },
];
const msgTools = chatTools.map((t) => ({ name: t.function.name, description: t.function.description,
  input_schema: t.function.parameters }));

// endpoint -> case -> the client's body (without model)
const CASES = {
  chat: {
    text: { title: 'a text answer, not streamed',
      body: { messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'say hi mock:words=3' }], max_tokens: 50 } },
    two_tool_calls_stream: { title: 'two parallel tool calls, streamed: two tool_calls at index 0 and 1',
      body: { tools: chatTools, messages: [{ role: 'user', content: 'weather and time? mock:tools=2' }], stream: true } },
    tool_result_followup: { title: 'the follow-up of two tool calls: the calls and their results become function_call and function_call_output items, answered with text',
      body: { tools: chatTools, messages: [
        { role: 'user', content: 'weather and time? mock:words=3' },
        { role: 'assistant', content: null, tool_calls: [
          { id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '{"q":"Paris"}' } },
          { id: 'call_b', type: 'function', function: { name: 'get_time', arguments: '{"q":"Paris"}' } }] },
        { role: 'tool', tool_call_id: 'call_a', content: '{"sky":"clear"}' },
        { role: 'tool', tool_call_id: 'call_b', content: '{"time":"12:00"}' }] } },
    error_mid_stream: { title: 'the provider fails the stream (response.failed) after some text: the client gets an error chunk',
      body: { messages: [{ role: 'user', content: 'say hi mock:fail_after=5 mock:words=4' }], stream: true } },
    usage_cached_reasoning_stream: { title: 'usage with cached and reasoning tokens, streamed with include_usage',
      body: { messages: [{ role: 'user', content: 'say hi mock:words=2 mock:cached=3 mock:reasoning=2' }], stream: true,
        stream_options: { include_usage: true } } },
  },
  messages: {
    text: { title: 'a text answer, not streamed',
      body: { system: 'be brief', messages: [{ role: 'user', content: 'say hi mock:words=3' }], max_tokens: 50 } },
    two_tool_calls_stream: { title: 'two parallel tool calls, streamed: two tool_use blocks',
      body: { tools: msgTools, max_tokens: 100, messages: [{ role: 'user', content: 'weather and time? mock:tools=2' }], stream: true } },
    tool_result_followup: { title: 'the follow-up of two tool calls: tool_use and tool_result blocks become function_call and function_call_output items, answered with text',
      body: { tools: msgTools, max_tokens: 100, messages: [
        { role: 'user', content: 'weather and time? mock:words=3' },
        { role: 'assistant', content: [
          { type: 'tool_use', id: 'call_a', name: 'get_weather', input: { q: 'Paris' } },
          { type: 'tool_use', id: 'call_b', name: 'get_time', input: { q: 'Paris' } }] },
        { role: 'user', content: [
          { type: 'tool_result', tool_use_id: 'call_a', content: '{"sky":"clear"}' },
          { type: 'tool_result', tool_use_id: 'call_b', content: '{"time":"12:00"}' }] }] } },
    error_mid_stream: { title: 'the provider fails the stream (response.failed) after some text: the client gets an error event',
      body: { max_tokens: 100, messages: [{ role: 'user', content: 'say hi mock:fail_after=5 mock:words=4' }], stream: true } },
    usage_cached_reasoning_stream: { title: 'usage with cached and reasoning tokens, streamed',
      body: { max_tokens: 100, messages: [{ role: 'user', content: 'say hi mock:words=2 mock:cached=3 mock:reasoning=2' }], stream: true } },
  },
};
const PATHS = { chat: '/v1/chat/completions', messages: '/v1/messages' };

const MODEL = 'gpt-4o-mini';
const mocks = { openai: await startOpenAIMock(), azure: await startAzureMock() };
const rig = await startRecording({
  mocks,
  providers: {
    openai: { id: 'oa', kind: 'openai', api_key: 'sk-upstream-test', responses_api: 'responses' },
    azure: { id: 'az', kind: 'azure', api_key: mocks.azure.apiKey, responses_api: 'responses' },
  },
  models: { openai: MODEL, azure: MODEL },
});

try {
  for (const k of Object.keys(mocks)) {
    for (const [ep, cases] of Object.entries(CASES)) {
      for (const [name, c] of Object.entries(cases)) {
        const { g, text, streamed, usage } = await rig.send(k, PATHS[ep], { model: k, ...c.body }, {
          headers: { 'x-api-key': KEY },
          name: `${k} (responses_api "responses"): ${ep === 'chat' ? 'chat completions' : '/v1/messages'}: ${c.title}`,
          comment: `recorded by tests/golden/chat_via_responses/record.mjs`, endpoint: ep });
        if (streamed) {
          g.expect_events = sse(atNow(text));
          if (name === 'error_mid_stream') g.expect_stream_error = true;
        } else {
          g.expect = JSON.parse(atNow(text));
        }
        rig.save(path.join(DIR, `${k}_${ep}_${name}.json`), g, usage);
      }
    }
  }
} finally {
  await rig.close();
}
console.log(`wrote ${rig.sent} transcripts`);

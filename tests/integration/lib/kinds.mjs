// kinds.mjs: one mock per provider kind and a snapshot with a route to each, for the suites that
// run the same calls on every kind (/v1/responses): OpenAI and Azure (which serve the Responses
// API), an OpenAI-compatible server that serves only chat completions (responses_api "chat"),
// Anthropic, Gemini and Bedrock.
import { startOpenAIMock } from '../../mocks/openai.mjs';
import { startAzureMock } from '../../mocks/azure.mjs';
import { startAnthropicMock } from '../../mocks/anthropic.mjs';
import { startGeminiMock } from '../../mocks/gemini.mjs';
import { startBedrockMock } from '../../mocks/bedrock.mjs';
import { makeSnapshot } from './harness.mjs';

// alias -> the provider (and its mock) and the provider's model
export const KINDS = {
  gpt: { provider: 'openai', model: 'gpt-4o-mini' },
  azure: { provider: 'azure', model: 'gpt-4o-mini' },
  compat: { provider: 'compat', model: 'llama-3.1-8b' },
  claude: { provider: 'anthropic', model: 'claude-3-5-haiku-20241022' },
  gemini: { provider: 'gemini', model: 'gemini-2.0-flash' },
  bedrock: { provider: 'bedrock', model: 'anthropic.claude-3-5-haiku-20241022-v1:0' },
};

export async function startKindMocks() {
  return {
    openai: await startOpenAIMock(),
    compat: await startOpenAIMock(),
    azure: await startAzureMock(),
    anthropic: await startAnthropicMock(),
    gemini: await startGeminiMock(),
    bedrock: await startBedrockMock(),
  };
}

export function closeKindMocks(mocks) {
  return Promise.all(Object.values(mocks).map((m) => m.close()));
}

// The snapshot: a provider per mock, a route per alias of KINDS (no retries) plus extraRoutes,
// and key allowed every route.
export function kindsSnapshot(mocks, key, extraRoutes = [], extraProviders = []) {
  const b = mocks.bedrock;
  const routes = Object.entries(KINDS)
    .map(([alias, k]) => ({ alias, targets: [{ provider: k.provider, model: k.model }] }))
    .concat(extraRoutes)
    .map((r) => ({ retry: { max_attempts: 1 }, ...r }));
  return makeSnapshot({
    mockUrl: mocks.openai.url,
    providers: [
      { id: 'openai', kind: 'openai', base_url: mocks.openai.url, api_key: 'sk-upstream-test' },
      { id: 'compat', kind: 'openai', base_url: mocks.compat.url, api_key: 'sk-upstream-test', responses_api: 'chat' },
      { id: 'azure', kind: 'azure', base_url: mocks.azure.url, api_key: mocks.azure.apiKey },
      { id: 'anthropic', kind: 'anthropic', base_url: mocks.anthropic.url, api_key: 'sk-ant-test' },
      { id: 'gemini', kind: 'gemini', base_url: mocks.gemini.url, api_key: 'gm-test' },
      { id: 'bedrock', kind: 'bedrock', base_url: b.url, region: b.region,
        aws_access_key_id: b.accessKeyId, aws_secret_access_key: b.secretAccessKey },
      { id: 'dead', kind: 'openai', base_url: 'http://127.0.0.1:9', api_key: 'sk-none' },
      ...extraProviders,
    ],
    routes,
    prices: [],
    keys: { [key]: { models: routes.map((r) => r.alias) } },
  });
}

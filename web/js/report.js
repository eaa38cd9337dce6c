// report.js: helpers over /api/v1/usage reports, shared by the overview, the key page and the
// usage explorer.

export const FIELDS = ['requests', 'errors', 'prompt_tokens', 'completion_tokens', 'cached_tokens', 'reasoning_tokens', 'cost_usd'];

export function utcDayStart(d = new Date()) {
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
}
export function utcMonthStart(d = new Date()) {
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1));
}
export function hourStart(d = new Date()) {
  return new Date(Math.floor(d.getTime() / 3600000) * 3600000);
}
// RFC 3339 in UTC without milliseconds: what the API takes.
export function iso(d) {
  return new Date(d).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// The named ranges of the overview and the explorer: {from, to, bucket}.
export const RANGES = {
  '24h': { label: 'Last 24 hours', bucket: 'hour', from: () => new Date(hourStart().getTime() - 23 * 3600000) },
  '7d': { label: 'Last 7 days', bucket: 'day', from: () => new Date(utcDayStart().getTime() - 6 * 86400000) },
  '30d': { label: 'Last 30 days', bucket: 'day', from: () => new Date(utcDayStart().getTime() - 29 * 86400000) },
  '90d': { label: 'Last 90 days', bucket: 'day', from: () => new Date(utcDayStart().getTime() - 89 * 86400000) },
};

// Sums of `series` per group: [{group, requests, errors, ..., cost_usd}], biggest cost first.
export function byGroup(series) {
  const m = new Map();
  for (const p of series || []) {
    const g = p.group ?? null;
    let acc = m.get(g);
    if (!acc) { acc = { group: g }; FIELDS.forEach((f) => { acc[f] = 0; }); m.set(g, acc); }
    for (const f of FIELDS) if (typeof p[f] === 'number') acc[f] += p[f];
  }
  return [...m.values()].sort((a, b) => b.cost_usd - a.cost_usd || b.requests - a.requests);
}

// Exact decimal sum of USD amounts (the API's are exact decimals with at most 9 places): adds
// them as integers of nano-dollars, so a CSV's total matches the API's to the last digit.
export function sumUsd(values) {
  let n = 0n;
  for (const v of values) n += toNano(v);
  return fromNano(n);
}
export function toNano(v) {
  if (v === null || v === undefined) return 0n;
  const s = typeof v === 'number' ? v.toFixed(9) : String(v);
  const neg = s.startsWith('-');
  const [i, f = ''] = s.replace('-', '').split('.');
  const n = BigInt(i || '0') * 1000000000n + BigInt((f + '000000000').slice(0, 9));
  return neg ? -n : n;
}
export function fromNano(n) {
  const neg = n < 0n;
  if (neg) n = -n;
  const i = n / 1000000000n;
  let f = (n % 1000000000n).toString().padStart(9, '0').replace(/0+$/, '');
  return Number(`${neg ? '-' : ''}${i}${f ? `.${f}` : ''}`);
}

// Provider id -> name, from the routes every signed-in user may read (usage events name the
// provider by id).
export async function providerNames(api) {
  const m = new Map();
  try {
    for (const r of await api.all('/routes', {}, 1000)) {
      for (const t of r.targets || []) if (t.provider_id && t.provider) m.set(t.provider_id, t.provider);
    }
  } catch { /* names are a nicety: ids are shown instead */ }
  return m;
}

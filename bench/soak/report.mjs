// bench/soak/report.mjs — the soak's Markdown table from the client's JSON lines.
//   node report.mjs nginx=FILE tollgate=FILE   (a missing or empty file is a failed row)
import fs from 'node:fs';

const rows = process.argv.slice(2).map((a) => {
  const [name, file] = a.split('=');
  let r = null;
  try { r = JSON.parse(fs.readFileSync(file, 'utf8').trim().split('\n').pop()); } catch { r = null; }
  return { name, r };
});
const f = (v, d = 1) => (v === null || v === undefined ? '' : Number(v).toFixed(d));
const out = [];
out.push('| target | streams complete | events | CPU us/event | RSS idle MiB | RSS full MiB (streams held) | KiB/stream | KiB/stream answered (streams) | TTFB p50 ms | TTFB p99 ms | stream length p50/p99 s | accept-queue drops | upstream CPU | client CPU | other load | errors |');
out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
for (const { name, r } of rows) {
  if (!r) { out.push(`| ${name} | ERROR: no result (see the log above) |||||||||||||||`); continue; }
  const errs = Object.entries(r.errors).map(([k, v]) => `${k}: ${v}`).join(', ') || 'none';
  out.push(`| ${name} | ${r.complete}/${r.streams} | ${r.events}/${r.expected_events} | ` +
    `${f(r.cpu_us_per_event, 2)} | ${f(r.rss_idle_kib / 1024)} | ${f(r.rss_full_kib / 1024)} (${f(r.held_at_full, 0)}) | ` +
    `${f(r.kib_per_stream, 2)} | ${f(r.kib_per_answered_stream, 2)} (${r.active_at_full}) | ${f(r.ttfb_p50_ms, 2)} | ${f(r.ttfb_p99_ms, 2)} | ` +
    `${f(r.duration_p50_s, 2)}/${f(r.duration_p99_s, 2)} | ${r.listen_overflows} | ${f(r.upstream_cpu_pct)}% | ` +
    `${f(r.client_cpu_pct)}% | ${f(r.other_load_pct)}% | ${errs} |`);
}
out.push('');
const by = Object.fromEntries(rows.map(({ name, r }) => [name, r]));
const ng = by.nginx, tg = by.tollgate;
if (ng && tg) {
  const line = (what, a, b, bar) => {
    const ratio = b > 0 ? a / b : null;
    const verdict = ratio === null ? 'n/a' : ratio <= bar ? 'met' : 'missed';
    out.push(`- ${what}: **${ratio === null ? 'n/a' : ratio.toFixed(2) + 'x'}** ` +
             `(${f(a, 2)} vs ${f(b, 2)}; target <= ${bar}x): ${verdict}`);
  };
  out.push('Ratios tollgate/nginx:');
  out.push('');
  line('CPU per event', tg.cpu_us_per_event, ng.cpu_us_per_event, 1.3);
  line('memory per stream', tg.kib_per_stream, ng.kib_per_stream, 1.2);
  line('TTFB p99', tg.ttfb_p99_ms, ng.ttfb_p99_ms, 2);
  const all = tg.complete === tg.streams && tg.events === tg.expected_events;
  out.push(`- every stream complete: tollgate ${all ? 'yes: met' : 'no: missed'}` +
           ` (nginx ${ng.complete === ng.streams && ng.events === ng.expected_events ? 'yes' : 'no'})`);
} else {
  out.push('- ratios: n/a (a row is missing)');
}
console.log(out.join('\n'));

// bench/soak/client.mjs — the soak's load client: opens STREAMS concurrent streaming
// requests against one target, reads every stream to its end, and measures the target.
//
//   SOAK_PORT=N SOAK_PATH=/v1/chat/completions SOAK_HEADERS='Name: value<newline>...'
//   SOAK_BODY='{...}' SOAK_STREAMS=8000 SOAK_RAMP_S=5 SOAK_EVENTS=100 SOAK_DEADLINE_S=45
//   SOAK_CPU_PIDS='pid...' SOAK_RSS_PIDS='pid...' SOAK_UPSTREAM_PID=N
//   SOAK_CLK_TCK=100 SOAK_NCPU=2 node client.mjs
//
// Raw net sockets, one connection per stream, opened evenly over ramp_s. Per stream: time to
// first response byte (from the request's write), the events it received (counted as
// `"delta"` objects, i.e. chat.completion.chunk choices), the final `data: [DONE]` and the
// end of the chunked body. Around the whole run it reads the target's CPU (utime+stime of
// cpu_pids) and RSS (VmRSS of rss_pids: idle before the first stream, then its peak while
// the streams are open), the streams the target holds (its open descriptors beyond idle, two a
// stream: the client's socket and the upstream's), the upstream's and its own CPU, and the
// machine's busy time.
// Prints one JSON line. Stops by itself at deadline_s whatever the streams do.
import net from 'node:net';
import fs from 'node:fs';

const env = process.env;
const pids = (v) => (v || '').split(/\s+/).filter(Boolean).map(Number);
const cfg = {
  port: Number(env.SOAK_PORT), path: env.SOAK_PATH || '/v1/chat/completions',
  headers: Object.fromEntries((env.SOAK_HEADERS || '').split('\n').filter((l) => l.includes(':'))
    .map((l) => [l.slice(0, l.indexOf(':')).trim(), l.slice(l.indexOf(':') + 1).trim()])),
  body: env.SOAK_BODY, streams: Number(env.SOAK_STREAMS), ramp_s: Number(env.SOAK_RAMP_S),
  events: Number(env.SOAK_EVENTS), deadline_s: Number(env.SOAK_DEADLINE_S),
  cpu_pids: pids(env.SOAK_CPU_PIDS), rss_pids: pids(env.SOAK_RSS_PIDS),
  upstream_pid: Number(env.SOAK_UPSTREAM_PID), clk_tck: env.SOAK_CLK_TCK, ncpu: env.SOAK_NCPU,
};
const HZ = Number(cfg.clk_tck || 100);
const N = cfg.streams;

const cpuTicks = (pids) => pids.reduce((t, p) => {
  try {
    const f = fs.readFileSync(`/proc/${p}/stat`, 'latin1');
    const x = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return t + Number(x[11]) + Number(x[12]);
  } catch { return t; }
}, 0);
const rssKiB = (pids) => pids.reduce((t, p) => {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${p}/status`, 'latin1'));
    return t + (m ? Number(m[1]) : 0);
  } catch { return t; }
}, 0);
// open descriptors of pids (a proxy holds two a stream: client and upstream sockets)
const fdCount = (pids) => pids.reduce((t, p) => {
  try { return t + fs.readdirSync(`/proc/${p}/fd`).length; } catch { return t; }
}, 0);
const machineBusy = () => {
  const x = fs.readFileSync('/proc/stat', 'latin1').split('\n')[0].trim().split(/\s+/).map(Number);
  return x[1] + x[2] + x[3] + x[6] + x[7];
};
// TcpExt ListenOverflows: connections dropped because an accept queue was full (any listener)
const listenOverflows = () => {
  try {
    const l = fs.readFileSync('/proc/net/netstat', 'latin1').split('\n').filter((x) => x.startsWith('TcpExt:'));
    const k = l[0].split(/\s+/), v = l[1].split(/\s+/);
    return Number(v[k.indexOf('ListenOverflows')]) || 0;
  } catch { return 0; }
};
const selfTicks = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6 * HZ; };
const now = () => Number(process.hrtime.bigint()) / 1e6; // ms

const head = Buffer.from(
  `POST ${cfg.path} HTTP/1.1\r\nHost: 127.0.0.1:${cfg.port}\r\nContent-Type: application/json\r\n` +
  Object.entries(cfg.headers || {}).map(([k, v]) => `${k}: ${v}\r\n`).join('') +
  `Content-Length: ${Buffer.byteLength(cfg.body)}\r\n\r\n`);
const request = Buffer.concat([head, Buffer.from(cfg.body)]);

const DELTA = Buffer.from('"delta"');
const DONE = Buffer.from('data: [DONE]');
const END = Buffer.from('\r\n0\r\n\r\n');
const CARRY = 12; // longest pattern - 1

function count(buf, pat) {
  let n = 0;
  for (let i = buf.indexOf(pat); i >= 0; i = buf.indexOf(pat, i + pat.length)) n++;
  return n;
}

const streams = [];
let opened = 0, finished = 0, open = 0, peakOpen = 0, active = 0; // active: answered, not ended
const errors = {};
const fail = (why) => { errors[why] = (errors[why] || 0) + 1; };

function finish(s, why) {
  if (s.closed) return;
  s.closed = true;
  s.end = now();
  open--;
  if (s.ttfb >= 0) active--;
  finished++;
  if (why) { s.error = why; fail(why); }
  s.sock.destroy();
  if (finished === N) done();
}

function start() {
  const s = { t0: 0, ttfb: -1, events: 0, done: false, complete: false, status: 0, tail: null,
              closed: false, end: 0, error: null };
  streams.push(s);
  opened++;
  open++;
  if (open > peakOpen) peakOpen = open;
  s.t0 = now(); // TTFB counts the connect: a full accept queue shows there
  const sock = net.connect({ port: cfg.port, host: '127.0.0.1', noDelay: true });
  s.sock = sock;
  sock.on('connect', () => sock.write(request));
  sock.on('data', (d) => {
    if (s.ttfb < 0) {
      s.ttfb = now() - s.t0;
      active++;
      s.status = Number(d.subarray(9, 12).toString('latin1'));
      if (s.status !== 200) { finish(s, `HTTP ${s.status}`); return; }
    }
    const b = s.tail ? Buffer.concat([s.tail, d]) : d;
    // a pattern is counted where it ends past the carried bytes, so never twice
    const from = s.tail ? s.tail.length : 0;
    s.events += count(b.subarray(Math.max(0, from - (DELTA.length - 1))), DELTA);
    if (!s.done && b.indexOf(DONE, Math.max(0, from - (DONE.length - 1))) >= 0) s.done = true;
    if (s.done && b.indexOf(END, Math.max(0, from - (END.length - 1))) >= 0) {
      s.complete = s.events >= cfg.events;
      finish(s, s.complete ? null : 'short stream');
      return;
    }
    s.tail = Buffer.from(b.subarray(Math.max(0, b.length - CARRY)));
  });
  sock.on('error', (e) => finish(s, e.code || 'socket error'));
  sock.on('close', () => { // a close-delimited body ends here
    s.complete = s.done && s.events >= cfg.events;
    finish(s, s.complete ? null : s.done ? 'short stream' : 'closed early');
  });
}

// --- measure ---------------------------------------------------------------------------
const t0 = now();
const m0 = { cpu: cpuTicks(cfg.cpu_pids), up: cpuTicks([cfg.upstream_pid]), self: selfTicks(),
             busy: machineBusy(), rss: rssKiB(cfg.rss_pids), lo: listenOverflows(),
             fds: fdCount(cfg.rss_pids) };
// "full concurrency": the sample with the most streams held by the target. Memory per stream
// divides by those, not by the streams answered: a stream the target has accepted but not yet
// answered (its upstream connect queued, say) costs its memory too, and so does one whose
// answer the client has not read yet; the answered count is kept for comparison.
let peakRss = m0.rss, rssAtFull = 0, heldAtFull = 0, activeAtFull = 0, rssAtActive = 0;
const sampler = setInterval(() => {
  const a = active, r = rssKiB(cfg.rss_pids);
  const held = Math.max(0, (fdCount(cfg.rss_pids) - m0.fds) / 2);
  if (r > peakRss) peakRss = r;
  if (held > heldAtFull || (held === heldAtFull && r > rssAtFull)) { heldAtFull = held; rssAtFull = r; }
  if (a > activeAtFull || (a === activeAtFull && r > rssAtActive)) { activeAtFull = a; rssAtActive = r; }
}, 100);

// ramp: N streams opened evenly over ramp_s, in 10 ms batches
const rampMs = cfg.ramp_s * 1000;
const ramp = setInterval(() => {
  const want = Math.min(N, Math.ceil(N * (now() - t0 + 10) / Math.max(rampMs, 1)));
  while (opened < want) start();
  if (opened === N) clearInterval(ramp);
}, 10);
const deadline = setTimeout(() => {
  clearInterval(ramp);
  for (const s of streams) finish(s, 'deadline');
  while (opened < N) { opened++; finished++; fail('never opened'); }
  done();
}, cfg.deadline_s * 1000);

let reported = false;
function done() {
  if (reported) return;
  reported = true;
  clearTimeout(deadline);
  clearInterval(sampler);
  const t1 = now();
  const m1 = { cpu: cpuTicks(cfg.cpu_pids), up: cpuTicks([cfg.upstream_pid]), self: selfTicks(),
               busy: machineBusy(), lo: listenOverflows() };
  const pct = (a, p) => a.length ? a[Math.min(a.length - 1, Math.floor(p / 100 * a.length))] : null;
  const ttfb = streams.filter((s) => s.ttfb >= 0).map((s) => s.ttfb).sort((a, b) => a - b);
  const dur = streams.filter((s) => s.complete).map((s) => s.end - s.t0).sort((a, b) => a - b);
  const events = streams.reduce((n, s) => n + s.events, 0);
  const complete = streams.filter((s) => s.complete).length;
  const wall = (t1 - t0) / 1000;
  const ncpu = Number(cfg.ncpu || 2);
  const cpu = m1.cpu - m0.cpu, up = m1.up - m0.up, self = m1.self - m0.self;
  const other = (m1.busy - m0.busy) - cpu - up - self;
  console.log(JSON.stringify({
    streams: N, complete, events, expected_events: N * cfg.events, peak_open: peakOpen, errors,
    wall_s: +wall.toFixed(2),
    cpu_us_per_event: events ? +(cpu / HZ * 1e6 / events).toFixed(2) : null,
    cpu_s: +(cpu / HZ).toFixed(2),
    rss_idle_kib: m0.rss, rss_full_kib: rssAtFull, rss_peak_kib: peakRss,
    held_at_full: heldAtFull, fds_idle: m0.fds,
    kib_per_stream: heldAtFull ? +((rssAtFull - m0.rss) / heldAtFull).toFixed(2) : null,
    active_at_full: activeAtFull, rss_at_active_kib: rssAtActive,
    kib_per_answered_stream: activeAtFull ? +((rssAtActive - m0.rss) / activeAtFull).toFixed(2) : null,
    ttfb_p50_ms: ttfb.length ? +pct(ttfb, 50).toFixed(2) : null,
    ttfb_p99_ms: ttfb.length ? +pct(ttfb, 99).toFixed(2) : null,
    duration_p50_s: dur.length ? +(pct(dur, 50) / 1000).toFixed(2) : null,
    duration_p99_s: dur.length ? +(pct(dur, 99) / 1000).toFixed(2) : null,
    listen_overflows: m1.lo - m0.lo,
    upstream_cpu_pct: +(100 * up / HZ / wall).toFixed(1),
    client_cpu_pct: +(100 * self / HZ / wall).toFixed(1),
    other_load_pct: +(Math.max(0, 100 * other / HZ / ncpu / wall)).toFixed(1),
  }));
  process.exit(0);
}

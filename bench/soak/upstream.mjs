// bench/soak/upstream.mjs — the soak's slow upstream: answers every POST with an OpenAI
// chat.completion.chunk stream of 100 events, one every 100 ms (then the usage chunk and
// `data: [DONE]` with the last one), HTTP/1.1 chunked, keep-alive.
//
//   node upstream.mjs PORT [EVENTS] [INTERVAL_MS]
//
// nginx cannot pace a response, so this does. It is built to stay cheap at thousands of
// streams: raw net sockets (no http module), every event is a Buffer made once at start,
// and one 10 ms timer walks a wheel of 10 slots, so each stream is written once per slot
// turn (every 100 ms) by a single socket.write. Prints "listening PORT" when ready.
import net from 'node:net';

const port = Number(process.argv[2]);
const EVENTS = Number(process.argv[3] || 100);
const INTERVAL_MS = Number(process.argv[4] || 100);
const TICK_MS = 10;
const SLOTS = Math.max(1, Math.round(INTERVAL_MS / TICK_MS));

const chunk = (s) => {
  const b = Buffer.from(s);
  return Buffer.concat([Buffer.from(b.length.toString(16) + '\r\n'), b, Buffer.from('\r\n')]);
};
const sse = (obj) => `data: ${JSON.stringify(obj)}\n\n`;
const base = { id: 'chatcmpl-soak', object: 'chat.completion.chunk', created: 1700000000,
               model: 'gpt-4o-mini-2024-07-18', system_fingerprint: 'fp_0ba0d124f1' };
const words = ['Sure', ' --', ' here', ' is', ' a', ' step', ' by', ' step', ' plan', ' for',
               ' queueing', ' the', ' builds', ' so', ' that', ' no', ' upgrade', ' is', ' needed', '.'];
const events = [];
let sseBytes = 0; // the stream's SSE bytes, without the chunked framing
for (let i = 0; i < EVENTS; i++) {
  let delta;
  if (i === 0) delta = { role: 'assistant', content: '', refusal: null };
  else if (i === EVENTS - 1) delta = {};
  else delta = { content: words[i % words.length] };
  let s = sse({ ...base, choices: [{ index: 0, delta, logprobs: null,
                                     finish_reason: i === EVENTS - 1 ? 'stop' : null }] });
  if (i === EVENTS - 1) {
    s += sse({ ...base, choices: [], usage: { prompt_tokens: 112, completion_tokens: EVENTS - 2,
                                             total_tokens: 112 + EVENTS - 2 } });
    s += 'data: [DONE]\n\n';
    events.push(Buffer.concat([chunk(s), Buffer.from('0\r\n\r\n')]));
    sseBytes += Buffer.byteLength(s);
  } else {
    events.push(chunk(s));
    sseBytes += Buffer.byteLength(s);
  }
}
const HEAD = Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n' +
                         'Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n');
const FIRST = Buffer.concat([HEAD, events[0]]);

const wheel = Array.from({ length: SLOTS }, () => new Set());
let slot = 0;

function onData(sock, data) {
  const st = sock.st;
  if (st.streaming) return; // a client that pipelines is not something the bench does
  st.buf = st.buf ? Buffer.concat([st.buf, data]) : data;
  if (st.need < 0) {
    const end = st.buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = st.buf.subarray(0, end).toString('latin1');
    const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    st.need = end + 4 + (m ? Number(m[1]) : 0);
  }
  if (st.buf.length < st.need) return;
  st.buf = null;
  st.need = -1;
  st.streaming = true;
  st.sent = 1;
  sock.write(FIRST);
  st.slot = slot;
  wheel[slot].add(sock);
}

// Catch up by the clock, not by timer calls: under load a 10 ms timer fires late, and the
// cadence must stay 100 ms on average.
const t0 = process.hrtime.bigint();
let ticks = 0;
setInterval(() => {
  const due = Number((process.hrtime.bigint() - t0) / BigInt(TICK_MS * 1e6));
  for (; ticks < due; ticks++) {
    slot = (slot + 1) % SLOTS;
    for (const sock of wheel[slot]) {
      const st = sock.st;
      sock.write(events[st.sent++]);
      if (st.sent === EVENTS) { // done: keep the connection for the next request
        wheel[slot].delete(sock);
        st.streaming = false;
      }
    }
  }
}, TICK_MS);

const server = net.createServer({ noDelay: true }, (sock) => {
  sock.st = { buf: null, need: -1, streaming: false, sent: 0, slot: 0 };
  sock.on('data', (d) => onData(sock, d));
  sock.on('error', () => {});
  sock.on('close', () => { if (sock.st.streaming) wheel[sock.st.slot].delete(sock); });
});
server.maxConnections = 1 << 20;
server.listen({ port, host: '127.0.0.1', backlog: 8192 },
              () => console.log(`listening ${port} ${sseBytes}`));
process.on('SIGTERM', () => process.exit(0));

// control_audit.test.mjs: the audit log against the database owner and the application role
// (docs/operations.md). The control plane runs as a member of tollgate_app, the database belongs
// to a role of its own (not a superuser) that ran `tollgate-control migrate`, and tampering is done
// as that owner, as someone holding the database but not TOLLGATE_MASTER_KEY would.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { startControl, createRoleSplitDatabase, psql } from './lib/control.mjs';
import { waitFor } from './lib/harness.mjs';

const MASTER_KEY = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';
const started = [];
after(async () => { for (const cp of started) await cp.stop(); });

async function start(env = {}, roles = createRoleSplitDatabase()) {
  const cp = await startControl({ roles, env: { TOLLGATE_MASTER_KEY: MASTER_KEY, ...env } });
  started.push(cp);
  // the verification at start has ended (it would otherwise race the tests' first changes)
  await waitFor(() => /event=(verified|verify_failed) /.test(cp.logs()), 20000, 'the verification at start');
  cp.admin = await cp.login();
  return cp;
}

// n audited changes (a tenant each); returns their audit ids in order
async function changes(cp, n, prefix) {
  for (let i = 0; i < n; i++) await cp.makeTenant(cp.admin, `${prefix}-${i}`);
  return cp.sql('SELECT id FROM audit_log ORDER BY id').split('\n').map(Number);
}

async function verify(cp) {
  const r = await cp.api('GET', '/api/v1/audit-log/verify', { token: cp.admin });
  assert.equal(r.status, 200, r.text);
  return r.body;
}

// psql that must fail; returns the error text
function refused(url, sql) {
  try {
    execFileSync('psql', [url, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', sql], { stdio: 'pipe' });
  } catch (e) {
    return String(e.stderr);
  }
  assert.fail(`the statement was allowed: ${sql}`);
}

// What an unkeyed check (the chain alone, as verify did before checkpoints) says.
function chainAloneIntact(cp) {
  return cp.sql(`SELECT count(*) FILTER (WHERE NOT ok) = 0 FROM (SELECT prev_hash = coalesce(lag(row_hash)
    OVER (ORDER BY id), decode(repeat('00', 32), 'hex')) AND row_hash = audit_row_hash(prev_hash, id, ts,
    actor_id, actor_label, tenant_id, action, target_type, target_id, before, after, source_ip) AS ok
    FROM audit_log) c`) === 't';
}

// As the owner: triggers off, one row rewritten (or an SQL statement run), every hash from that
// row on recomputed.
function rewriteAndRecompute(cp, id, tamper = `UPDATE audit_log SET after = jsonb_set(after, '{name}', '"forged"') WHERE id = ${id}`) {
  cp.sql(`BEGIN;
    ALTER TABLE audit_log DISABLE TRIGGER USER;
    ${tamper};
    DO $$ DECLARE r record; prev bytea; BEGIN
      SELECT coalesce((SELECT row_hash FROM audit_log WHERE id < ${id} ORDER BY id DESC LIMIT 1),
                      decode(repeat('00', 32), 'hex')) INTO prev;
      FOR r IN SELECT * FROM audit_log WHERE id >= ${id} ORDER BY id LOOP
        UPDATE audit_log SET prev_hash = prev, row_hash = audit_row_hash(prev, r.id, r.ts, r.actor_id,
          r.actor_label, r.tenant_id, r.action, r.target_type, r.target_id, r.before, r.after, r.source_ip)
        WHERE id = r.id RETURNING row_hash INTO prev;
      END LOOP;
    END $$;
    ALTER TABLE audit_log ENABLE TRIGGER USER;
    COMMIT;`);
}

function be64(v) {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(v));
  return b;
}

test('the application role may only insert and read audit rows, and the server works as it', async () => {
  const cp = await start();
  const ids = await changes(cp, 3, 'app-role');
  assert.equal(ids.length, 3);
  const app = cp.appUrl;
  assert.equal(psql(app, 'SELECT current_user'), cp.appUrl.split('user=')[1]);
  assert.equal(psql(app, `SELECT pg_has_role(current_user, 'tollgate_app', 'member')`), 't');
  assert.equal(psql(app, 'SELECT count(*) FROM audit_log'), '3');
  for (const table of ['audit_log', 'audit_checkpoints']) {
    assert.match(refused(app, `UPDATE ${table} SET id = id`), /permission denied for table/);
    assert.match(refused(app, `DELETE FROM ${table}`), /permission denied for table/);
    assert.match(refused(app, `TRUNCATE ${table}`), /permission denied for table/);
    assert.match(refused(app, `ALTER TABLE ${table} DISABLE TRIGGER USER`), /must be owner of table/);
    assert.match(refused(app, `ALTER TABLE ${table} DISABLE TRIGGER ALL`), /must be owner of table/);
    assert.match(refused(app, `DROP TRIGGER ${table === 'audit_log' ? 'audit_log_no_update' : 'audit_checkpoints_no_update'} ON ${table}`),
      /must be owner of (table|relation)/);
  }
  assert.match(refused(app, 'SET session_replication_role = replica'), /permission denied to set parameter/);
  assert.match(refused(app, 'CREATE TABLE x (a int)'), /permission denied for schema public/);
  assert.match(refused(app, `INSERT INTO schema_migrations VALUES (99, 'x')`), /permission denied/);
  assert.equal(psql(app, 'SELECT count(*) FROM audit_log'), '3');
  // the partitions the server adds while it runs are made as their owner
  assert.match(psql(app, 'SELECT usage_ensure_partitions(14)'), /^\d+$/);
  // and everything the API does still works: users, keys, budgets, a delete
  const t = (await cp.api('GET', '/api/v1/tenants?slug=app-role-0', { token: cp.admin })).body.data[0];
  const k = await cp.api('POST', `/api/v1/tenants/${t.id}/keys`, { token: cp.admin, body: { name: 'k' } });
  assert.equal(k.status, 201, k.text);
  const d = await cp.api('DELETE', `/api/v1/tenants/${t.id}/keys/${k.body.id}`, { token: cp.admin });
  assert.equal(d.status, 204, d.text);
  const u = await cp.api('POST', '/api/v1/users', { token: cp.admin, body: { email: 'x@example.com', password: 'a-long-password-1' } });
  assert.equal(u.status, 201, u.text);
  const v = await verify(cp);
  assert.equal(v.intact, true, JSON.stringify(v));
  assert.equal(v.rows, 6);
  assert.doesNotMatch(cp.logs(), /level=error/);
});

test('checkpoints sign every N rows and every interval, with the documented HMAC', async () => {
  // An interval of 5 s: long enough that the first 4 changes are signed by the count (a loaded
  // machine once took over a second for 8 of them), short enough to wait for.
  const cp = await start({ TOLLGATE_AUDIT_CHECKPOINT_ROWS: '4', TOLLGATE_AUDIT_CHECKPOINT_S: '5' });
  const ids = await changes(cp, 10, 'ckpt');
  // the interval signs what waits (the last rows) within about an interval
  await waitFor(() => cp.sql('SELECT coalesce(max(last_id), 0) FROM audit_checkpoints') === String(ids[9]),
    12000, 'the last rows to be signed');
  const cps = cp.sql(`SELECT id || ' ' || after_id || ' ' || last_id || ' ' || array_length(ids, 1)
    FROM audit_checkpoints ORDER BY id`).split('\n').map((l) => l.split(' ').map(Number));
  assert.equal(cps[0][1], 0);
  for (let i = 1; i < cps.length; i++) assert.equal(cps[i][1], cps[i - 1][2]); // contiguous
  // rows 1-4 were signed as the 4th was written, in its transaction; no checkpoint holds more
  // than 4 rows (the interval may sign fewer, when the machine is slow)
  assert.deepEqual([cps[0][2], cps[0][3]], [ids[3], 4]);
  for (const c of cps) assert.ok(c[3] >= 1 && c[3] <= 4, `checkpoint ${c[0]} signs ${c[3]} rows`);
  assert.equal(cps.at(-1)[2], ids[9]);
  const v = await verify(cp);
  assert.deepEqual(v, { intact: true, rows: 10, first_broken_id: null, problem: null,
    signatures_checked: true, checkpoints: cps.length, signed_rows: 10, unsigned_rows: 0,
    mode: 'full', verified_from_id: 1, checked_rows: 10, last_full: { at: v.last_full.at, intact: true } });
  // the signature is HMAC-SHA-256 under HMAC-SHA-256(master key, label): recompute it here
  const key = createHmac('sha256', Buffer.from(MASTER_KEY, 'hex')).update('tollgate audit checkpoint key v1').digest();
  const row = cp.sql(`SELECT (extract(epoch FROM ts) * 1000000)::bigint || ' ' || after_id || ' ' || last_id
    || ' ' || array_to_string(ids, ',') || ' ' || encode(hashes, 'hex') || ' ' || key_id || ' ' || encode(mac, 'hex')
    FROM audit_checkpoints ORDER BY id LIMIT 1`).split(' ');
  const rowIds = row[3].split(',');
  const h = createHmac('sha256', key).update(Buffer.from('tollgate-audit-checkpoint-v1\0'))
    .update(Buffer.concat([be64(row[0]), be64(row[1]), be64(row[2]), be64(rowIds.length)]));
  rowIds.forEach((id, i) => h.update(be64(id)).update(Buffer.from(row[4].slice(64 * i, 64 * i + 64), 'hex')));
  assert.equal(h.digest('hex'), row[6]);
  assert.equal(row[5], createHmac('sha256', key).update('key id').digest('hex').slice(0, 16));
  // neither the master key nor the checkpoint key is anywhere in the database
  for (const secret of [MASTER_KEY, key.toString('hex')]) {
    assert.equal(cp.sql(`SELECT count(*) FROM audit_checkpoints c WHERE strpos(c::text, '${secret}') > 0`), '0');
  }
  // each checkpoint is logged once stored, so a copy lives outside the database
  const logged = cp.logs().match(/event=audit_checkpoint after_id=\d+ last_id=\d+ rows=\d+ head=[0-9a-f]{64} mac=[0-9a-f]{64}/g);
  assert.equal(logged.length, cps.length);
});

test('a row rewritten by the database owner, with the chain recomputed and the newest rows deleted, is reported at that row', async () => {
  const cp = await start({ TOLLGATE_AUDIT_CHECKPOINT_ROWS: '5', TOLLGATE_AUDIT_CHECKPOINT_S: '3600' });
  const ids = await changes(cp, 12, 'owner');
  assert.equal((await verify(cp)).intact, true);
  assert.equal(cp.sql('SELECT count(*) FROM audit_checkpoints'), '2'); // rows 1-5 and 6-10
  // the tamper: triggers off, row 7 rewritten, every later hash recomputed, the newest rows gone
  rewriteAndRecompute(cp, ids[6]);
  cp.sql(`BEGIN; ALTER TABLE audit_log DISABLE TRIGGER USER;
    DELETE FROM audit_log WHERE id >= ${ids[10]};
    ALTER TABLE audit_log ENABLE TRIGGER USER; COMMIT;`);
  assert.equal(cp.sql(`SELECT after->>'name' FROM audit_log WHERE id = ${ids[6]}`), 'forged');
  // the chain alone holds: that is all verify could check before the checkpoints
  assert.equal(chainAloneIntact(cp), true);
  const v = await verify(cp);
  assert.equal(v.intact, false, JSON.stringify(v));
  assert.equal(v.first_broken_id, ids[6]);
  assert.equal(v.problem, `row ${ids[6]} differs from what checkpoint 2 signed: it was changed and the chain recomputed`);
  assert.equal(v.rows, 10);
});

test('verification checks only the rows after the prefix it verified; a full one still finds an old row changed in place', async () => {
  const cp = await start({ TOLLGATE_AUDIT_CHECKPOINT_ROWS: '5', TOLLGATE_AUDIT_CHECKPOINT_S: '3600' });
  let ids = await changes(cp, 12, 'prefix');
  // the first call after a start verifies everything
  let v = await verify(cp);
  assert.equal(v.intact, true, JSON.stringify(v));
  assert.equal(v.mode, 'full');
  assert.deepEqual([v.rows, v.checked_rows, v.verified_from_id, v.checkpoints, v.signed_rows, v.unsigned_rows], [12, 12, 1, 2, 10, 2]);
  assert.equal(v.last_full.intact, true);
  assert.match(v.last_full.at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  const fullAt = v.last_full.at;
  ids = await changes(cp, 6, 'prefix-more'); // rows 13-18; checkpoint 3 signs 11-15
  // then only what follows the last checkpoint it found sound (rows 1-10): rows 11 to 18
  v = await verify(cp);
  assert.equal(v.intact, true, JSON.stringify(v));
  assert.equal(v.mode, 'incremental');
  assert.deepEqual([v.rows, v.checked_rows, v.verified_from_id, v.checkpoints, v.signed_rows, v.unsigned_rows], [18, 8, ids[10], 3, 15, 3]);
  assert.deepEqual(v.last_full, { at: fullAt, intact: true });
  v = await verify(cp);
  assert.deepEqual([v.mode, v.checked_rows, v.verified_from_id, v.rows], ['incremental', 3, ids[15], 18]);

  // the owner changes row 3 in place (its hash left as it was): before the verified prefix, so
  // the incremental check does not read it, and says from which row it checked
  cp.sql(`BEGIN; ALTER TABLE audit_log DISABLE TRIGGER USER;
    UPDATE audit_log SET after = jsonb_set(after, '{name}', '"forged"') WHERE id = ${ids[2]};
    ALTER TABLE audit_log ENABLE TRIGGER USER; COMMIT;`);
  v = await verify(cp);
  assert.deepEqual([v.intact, v.mode, v.verified_from_id], [true, 'incremental', ids[15]]);
  // the full verification finds it, at that row
  const full = await cp.api('GET', '/api/v1/audit-log/verify?full=true', { token: cp.admin });
  assert.equal(full.status, 200, full.text);
  assert.equal(full.body.intact, false, full.text);
  assert.equal(full.body.mode, 'full');
  assert.equal(full.body.first_broken_id, ids[2]);
  assert.equal(full.body.problem, `row ${ids[2]}: its hash does not match its contents (the row was changed)`);
  assert.equal(full.body.last_full.intact, false);
  // and the finding stays: the prefix is forgotten, every later call verifies everything
  v = await verify(cp);
  assert.deepEqual([v.intact, v.mode, v.first_broken_id], [false, 'full', ids[2]]);

  for (const q of ['full=yes', 'full', 'since=3']) {
    const r = await cp.api('GET', `/api/v1/audit-log/verify?${q}`, { token: cp.admin });
    assert.equal(r.status, 400, `${q}: ${r.text}`);
    assert.equal(r.body.error.code, 'invalid_query');
  }
});

test('a restarted control plane verifies the log as it starts: the first call checks only what follows', async () => {
  const roles = createRoleSplitDatabase();
  const env = { TOLLGATE_AUDIT_CHECKPOINT_ROWS: '5', TOLLGATE_AUDIT_CHECKPOINT_S: '3600' };
  let cp = await start(env, roles);
  const ids = await changes(cp, 12, 'restart');
  await cp.stop();
  cp = await start(env, roles);
  assert.match(cp.logs(), new RegExp(`event=verified rows=${ids.length}\\b`));
  let v = await verify(cp);
  assert.equal(v.intact, true, JSON.stringify(v));
  assert.deepEqual([v.mode, v.rows, v.checked_rows, v.verified_from_id], ['incremental', 12, 2, ids[10]]);
  assert.equal(v.last_full.intact, true);
  await cp.stop();
  // a row changed while it was down: found at start (logged), and the first call names it
  cp.sql(`BEGIN; ALTER TABLE audit_log DISABLE TRIGGER USER;
    UPDATE audit_log SET after = jsonb_set(after, '{name}', '"forged"') WHERE id = ${ids[2]};
    ALTER TABLE audit_log ENABLE TRIGGER USER; COMMIT;`);
  cp = await start(env, roles);
  assert.match(cp.logs(), new RegExp(`event=verify_failed first_broken_id=${ids[2]}\\b`));
  v = await verify(cp);
  assert.deepEqual([v.intact, v.mode, v.first_broken_id, v.last_full.intact], [false, 'full', ids[2], false]);
});

test('a rewrite with the chain recomputed after a verified prefix is found by the next ordinary call', async () => {
  const cp = await start({ TOLLGATE_AUDIT_CHECKPOINT_ROWS: '5', TOLLGATE_AUDIT_CHECKPOINT_S: '3600' });
  const ids = await changes(cp, 12, 'anchor');
  assert.equal((await verify(cp)).mode, 'full');
  assert.equal((await verify(cp)).mode, 'incremental');
  // row 2 rewritten and every later hash recomputed: the prefix's last row (10) changes with it
  rewriteAndRecompute(cp, ids[1]);
  const v = await verify(cp);
  assert.equal(v.intact, false, JSON.stringify(v));
  assert.equal(v.mode, 'full');
  assert.equal(v.first_broken_id, ids[1]);
  assert.equal(v.problem, `row ${ids[1]} differs from what checkpoint 1 signed: it was changed and the chain recomputed`);
});

test('a deleted row, a row slipped in, and a changed row are each reported at that row', async () => {
  const cp = await start({ TOLLGATE_AUDIT_CHECKPOINT_ROWS: '5', TOLLGATE_AUDIT_CHECKPOINT_S: '3600' });
  const ids = await changes(cp, 10, 'rows');
  assert.equal((await verify(cp)).intact, true);
  // the newest signed rows deleted (the tail of the second checkpoint), chain still consistent
  cp.sql(`BEGIN; ALTER TABLE audit_log DISABLE TRIGGER USER; DELETE FROM audit_log WHERE id >= ${ids[8]};
    ALTER TABLE audit_log ENABLE TRIGGER USER; COMMIT;`);
  assert.equal(chainAloneIntact(cp), true);
  let v = await verify(cp);
  assert.equal(v.intact, false);
  assert.equal(v.first_broken_id, ids[8]);
  assert.equal(v.problem, `row ${ids[8]}, signed in checkpoint 2, is missing: it was deleted`);

  // a row changed without recomputing: its own hash gives it away
  const cp2 = await start({ TOLLGATE_AUDIT_CHECKPOINT_ROWS: '5', TOLLGATE_AUDIT_CHECKPOINT_S: '3600' });
  const ids2 = await changes(cp2, 10, 'rows2');
  cp2.sql(`BEGIN; ALTER TABLE audit_log DISABLE TRIGGER USER;
    UPDATE audit_log SET source_ip = '10.9.9.9' WHERE id = ${ids2[2]};
    ALTER TABLE audit_log ENABLE TRIGGER USER; COMMIT;`);
  v = await verify(cp2);
  assert.equal(v.first_broken_id, ids2[2]);
  assert.match(v.problem, /its hash does not match its contents/);

  // a row with a made-up id slipped into a signed range, chained and with a valid hash
  const cp3 = await start({ TOLLGATE_AUDIT_CHECKPOINT_ROWS: '5', TOLLGATE_AUDIT_CHECKPOINT_S: '3600' });
  const ids3 = await changes(cp3, 10, 'rows3');
  // (ids are consecutive, so it goes first, with the id before the first)
  const fake = ids3[0] - 1;
  rewriteAndRecompute(cp3, fake, `INSERT INTO audit_log SELECT ${fake}, ts, actor_id, actor_label, tenant_id,
    'tenant.delete', target_type, target_id, after, NULL, source_ip, prev_hash, row_hash FROM audit_log WHERE id = ${ids3[0]}`);
  assert.equal(chainAloneIntact(cp3), true);
  v = await verify(cp3);
  assert.equal(v.first_broken_id, fake);
  assert.equal(v.problem, `row ${fake} is not among the rows checkpoint 1 signed (${ids3[0]} to ${ids3[4]}): it was added afterwards`);
});

test('a forged, a removed and a foreign-key checkpoint are reported', async () => {
  const roles = createRoleSplitDatabase();
  const cp = await start({ TOLLGATE_AUDIT_CHECKPOINT_ROWS: '3', TOLLGATE_AUDIT_CHECKPOINT_S: '3600' }, roles);
  const ids = await changes(cp, 9, 'forge');
  assert.equal(cp.sql('SELECT count(*) FROM audit_checkpoints'), '3');
  // the owner rewrites row 2, recomputes the chain and the checkpoints' hashes, but cannot sign
  rewriteAndRecompute(cp, ids[1]);
  cp.sql(`BEGIN; ALTER TABLE audit_checkpoints DISABLE TRIGGER USER;
    UPDATE audit_checkpoints c SET hashes = (SELECT string_agg(row_hash, ''::bytea ORDER BY id) FROM audit_log a
      WHERE a.id > c.after_id AND a.id <= c.last_id);
    ALTER TABLE audit_checkpoints ENABLE TRIGGER USER; COMMIT;`);
  let v = await verify(cp);
  assert.equal(v.first_broken_id, ids[0]);
  assert.equal(v.problem, `checkpoint 1: its signature does not match what it says (rows ${ids[0]} to ${ids[2]}): it was forged or changed`);

  // a checkpoint removed from the middle
  const cp2 = await start({ TOLLGATE_AUDIT_CHECKPOINT_ROWS: '3', TOLLGATE_AUDIT_CHECKPOINT_S: '3600' });
  const ids2 = await changes(cp2, 9, 'gone');
  cp2.sql(`BEGIN; ALTER TABLE audit_checkpoints DISABLE TRIGGER USER; DELETE FROM audit_checkpoints WHERE id = 2;
    ALTER TABLE audit_checkpoints ENABLE TRIGGER USER; COMMIT;`);
  v = await verify(cp2);
  assert.equal(v.first_broken_id, ids2[3]);
  assert.match(v.problem, /^checkpoint 3 starts after row \d+ but the checkpoint before it ends at row \d+: a checkpoint was removed$/);

  // the same database under another master key: it cannot vouch for what the old key signed
  await cp.stop();
  started.splice(started.indexOf(cp), 1);
  const other = await start({ TOLLGATE_MASTER_KEY: 'ff'.repeat(32) }, roles);
  v = await verify(other);
  assert.equal(v.intact, false);
  assert.match(v.problem, /^checkpoint 1 was signed with another key \([0-9a-f]{16}; this control plane's is [0-9a-f]{16}\): was TOLLGATE_MASTER_KEY changed\?$/);
});

test('what the checkpoints do not prove: rows after the last checkpoint can be dropped', async () => {
  const cp = await start({ TOLLGATE_AUDIT_CHECKPOINT_ROWS: '5', TOLLGATE_AUDIT_CHECKPOINT_S: '3600' });
  const ids = await changes(cp, 7, 'tail');
  let v = await verify(cp);
  assert.equal(v.unsigned_rows, 2);
  cp.sql(`BEGIN; ALTER TABLE audit_log DISABLE TRIGGER USER; DELETE FROM audit_log WHERE id > ${ids[4]};
    ALTER TABLE audit_log ENABLE TRIGGER USER; COMMIT;`);
  v = await verify(cp);
  assert.equal(v.intact, true); // as docs/operations.md says: only signed rows are vouched for
  assert.equal(v.rows, 5);
});

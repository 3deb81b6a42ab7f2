import { randomBytes, randomUUID } from 'node:crypto';
import { type Kysely, sql, type Transaction } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestCustos, skipReason, type TestCustos } from '../../test/support/db.ts';
import { identity, note, system } from '../../test/support/fixtures.ts';
import { sealOnce } from '../audit/sealer.ts';
import { verifyTrail } from '../audit/verify.ts';
import { Chart } from '../chart/gate.ts';
import { connect, type Database } from './database.ts';
import { withPractice } from './practice-scope.ts';
import type { CoreDb } from './schema.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] practice-isolation.int.test.ts skipped: ${skip}`);
}

/**
 * Tables that hold no practice's rows, each with the reason (migration 008). Every other table
 * must have `practice_id` and the isolation policy: a new table fails here until it is one or the
 * other.
 */
const DATABASE_WIDE: Record<string, string> = {
  audit_entries: 'one tamper-evident log: the sealer hashes every practice in sequence order',
  audit_checkpoints: 'signed tree heads of that log',
  guard_events: 'per-server network defense',
  ip_blocks: 'per-server network defense',
  custos_meta: 'key check values, default practice',
  custos_migrations: 'schema bookkeeping',
  custos_migrations_lock: 'schema bookkeeping',
};

class Rollback extends Error {}

/** Runs `f` in a transaction that is always rolled back. */
async function rolledBack<T>(db: Kysely<CoreDb>, f: (tx: Transaction<CoreDb>) => Promise<T>): Promise<T> {
  let out: { value: T } | undefined;
  await db
    .transaction()
    .execute(async (tx) => {
      out = { value: await f(tx) };
      throw new Rollback();
    })
    .catch((e: unknown) => {
      if (!(e instanceof Rollback)) {
        throw e;
      }
    });
  return (out as { value: T }).value;
}

/** The column a table's policy compares with the practice setting. */
const column = (table: string) => (table === 'practices' ? 'id' : 'practice_id');

/**
 * Issue 5 item 7: several practices in one database; row-level security keyed on
 * `custos.practice_id` keeps the application role (`custos.database.db`) inside its practice even
 * when a query forgets its practice filter. Practice A is the test server's; practice B's rows
 * are written through a gate bound to B, as the application role (so its WITH CHECK passes).
 */
describe.skipIf(skip)('practice isolation with row-level security', () => {
  let c: TestCustos;
  let a: string;
  let b: string;
  let dbB: Database;
  /** Every table with a practice column, from the catalog (never a hand-kept list). */
  let isolated: string[];
  let auditEntries = 0;

  /** Rows of every practice table, written as the application role bound to `practiceId`. */
  async function seed(db: Kysely<CoreDb>, practiceId: string, patients: number) {
    const chart = new Chart({ db, keyring: c.keyring });
    const sys = system(practiceId);
    const [u1, u2] = [randomUUID(), randomUUID()];
    const now = new Date();
    const later = new Date(now.getTime() + 3_600_000);
    for (const u of [u1, u2]) {
      await sql`INSERT INTO users (id, practice_id, username, roles, status, created_at)
        VALUES (${u}, ${practiceId}, ${`staff-${u.slice(0, 8)}`}, ${['clinician']}, 'active', ${now})`.execute(
        db,
      );
    }
    await sql`INSERT INTO enrollments (token_hash, user_id, practice_id, expires_at, created_at)
      VALUES (${randomBytes(32)}, ${u2}, ${practiceId}, ${later}, ${now})`.execute(db);
    await sql`INSERT INTO sessions (id_hash, user_id, practice_id, kind, created_at, last_seen_at, absolute_expires_at)
      VALUES (${randomBytes(32)}, ${u1}, ${practiceId}, 'full', ${now}, ${now}, ${later})`.execute(db);
    await sql`INSERT INTO webauthn_credentials (id, user_id, practice_id, public_key, counter, created_at)
      VALUES (${randomBytes(16).toString('base64url')}, ${u1}, ${practiceId}, ${randomBytes(77)}, 0, ${now})`.execute(
      db,
    );
    for (let i = 0; i < patients; i++) {
      const { id } = await chart.createPatient(sys, identity(), { careTeam: [u1] });
      await chart.updatePatient(sys, id, 1, identity({ phone: '+31 6 0000 0002' }));
      const record = await chart.createRecord(sys, id, note(`Isolation ${i}.`));
      // Scheduling (migration 012): an appointment (a day apart per patient) and a waiting-list entry,
      // before the consent row below (random bytes the gate could not open).
      const start = new Date(Math.ceil(now.getTime() / 60_000) * 60_000 + (i + 1) * 86_400_000);
      await chart.bookAppointment(sys, {
        patientId: id,
        clinicianId: u1,
        start: start.toISOString(),
        durationMinutes: 30,
        reason: 'Synthetic isolation reason.',
      });
      await chart.addToWaitingList(sys, { patientId: id, note: 'Synthetic isolation note.' });
      // Secure messages (migration 013): a thread with its first message, and a staff read marker.
      const thread = await chart.startThread(sys, id, { subject: `Isolation ${i}`, text: 'Synthetic.' });
      await sql`INSERT INTO message_reads (thread_id, practice_id, reader, last_read_seq, read_at)
        VALUES (${thread.id}, ${practiceId}, ${u1}, 1, ${now})`.execute(db);
      await sql`INSERT INTO record_shares (record_id, practice_id, user_id, shared_by, created_at)
        VALUES (${record.id}, ${practiceId}, ${u2}, ${u1}, ${now})`.execute(db);
      await sql`INSERT INTO download_tokens (token_hash, practice_id, record_id, actor_id, session_id, created_at, expires_at)
        VALUES (${randomBytes(32)}, ${practiceId}, ${record.id}, ${u1}, ${randomBytes(16).toString('hex')}, ${now}, ${later})`.execute(
        db,
      );
      // Migration 014: an integration, one of its webhook deliveries, and the disclosure it recorded.
      const integrationId = randomUUID();
      const deliveryId = randomUUID();
      await sql`INSERT INTO integrations (id, practice_id, name, url, secret, id_key, fields, events, purpose,
          created_by, created_at, updated_by, updated_at)
        VALUES (${integrationId}, ${practiceId}, 'Isolation hook', 'https://hooks.example.com/isolation',
          ${randomBytes(60)}, ${randomBytes(60)}, ${['start']}, ${['booked']}, 'Synthetic purpose', ${u1}, ${now}, ${u1}, ${now})`.execute(
        db,
      );
      await sql`INSERT INTO webhook_deliveries (id, practice_id, integration_id, event, appointment_id, payload, next_attempt_at, created_at)
        VALUES (${deliveryId}, ${practiceId}, ${integrationId}, 'booked', ${randomUUID()}, ${randomBytes(60)}, ${later}, ${now})`.execute(
        db,
      );
      await chart.recordDisclosure(sys, id, {
        recipient: { id: integrationId, name: 'Isolation hook' },
        purpose: 'Synthetic purpose',
        event: 'appointment.booked',
        deliveryId,
        values: { start: now.toISOString() },
        read: [],
      });
      await sql`INSERT INTO patient_consents (patient_id, practice_id, version, body, updated_at, updated_by)
        VALUES (${id}, ${practiceId}, 1, ${randomBytes(40)}, ${now}, ${u1})`.execute(db);
      await sql`INSERT INTO amendment_requests (id, practice_id, record_id, pseudonym, request, status, requested_by, requested_at)
        SELECT ${randomUUID()}, ${practiceId}, r.id, r.pseudonym, ${randomBytes(40)}, 'requested', ${u1}, ${now}
          FROM records r WHERE r.id = ${record.id}`.execute(db);
      await sql`INSERT INTO break_glass_grants (id, practice_id, user_id, patient_id, reason_category, reason, starts_at, expires_at)
        VALUES (${randomUUID()}, ${practiceId}, ${u2}, ${id}, 'emergency-treatment', ${randomBytes(40)}, ${now}, ${later})`.execute(
        db,
      );
    }
    await chart.setWorkingHours(sys, u2, { hours: [{ weekday: 'mon', start: '09:00', end: '17:00' }] });
    // Migration 007's table, while it exists: a table without rows here fails the coverage check.
    if ((await sql<{ t: string | null }>`SELECT to_regclass('access_reviews') AS t`.execute(db)).rows[0]?.t) {
      await sql`INSERT INTO access_reviews (id, practice_id, user_id, reviewer_id, decision, reviewed_at)
        VALUES (${randomUUID()}, ${practiceId}, ${u1}, ${u2}, 'certified', ${now})`.execute(db);
    }
    // Migration 015: the bulk-export registry.
    await sql`INSERT INTO exports (id, practice_id, requested_by, purpose_code, purpose, status, patient_count, created_at)
      VALUES (${randomUUID()}, ${practiceId}, ${u1}, 'migration', ${randomBytes(40)}, 'started', ${patients}, ${now})`.execute(
      db,
    );
    // Migration 016: two more patients, one merged into the other through the gate.
    const kept = await chart.createPatient(sys, identity());
    const duplicate = await chart.createPatient(sys, identity());
    await chart.mergePatients(sys, duplicate.id, kept.id);
  }

  /** Rows of `table` per practice, as the owner sees them. */
  async function ownerCount(table: string, practiceId: string): Promise<number> {
    const r = await sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql.table(table)}
      WHERE ${sql.ref(column(table))} = ${practiceId}`.execute(c.database.owner);
    return r.rows[0]?.n ?? -1;
  }

  /** Every row of `table` with no filter at all, and the practice each belongs to. */
  async function unfiltered(db: Kysely<CoreDb>, table: string): Promise<string[]> {
    const r = await sql<Record<string, unknown>>`SELECT * FROM ${sql.table(table)}`.execute(db);
    return r.rows.map((row) => String(row[column(table)]));
  }

  beforeAll(async () => {
    c = await openTestCustos();
    a = c.practiceId;
    b = randomUUID();
    // Creating a practice is the owner's business; the owner is bound by the policy on
    // `practices` too unless it is a superuser, hence the setting.
    await c.database.owner.transaction().execute(async (tx) => {
      await withPractice(tx, b);
      await tx
        .insertInto('practices')
        .values({ id: b, name: 'Practice B', created_at: new Date() })
        .execute();
    });
    dbB = c.database.forPractice(b);
    await seed(c.database.db, a, 2);
    await seed(dbB.db, b, 1);
    const rows = await sql<{ t: string }>`
      SELECT c.relname AS t FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_attribute at ON at.attrelid = c.oid AND at.attname = 'practice_id' AND NOT at.attisdropped
      WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relname <> 'audit_entries'
      ORDER BY 1`.execute(c.database.owner);
    isolated = [...rows.rows.map((r) => r.t), 'practices'];
    auditEntries =
      (await sql<{ n: number }>`SELECT count(*)::int AS n FROM audit_entries`.execute(c.database.owner))
        .rows[0]?.n ?? 0;
  }, 120_000);
  afterAll(async () => {
    await c?.cleanup();
  });

  it('has rows of both practices in every isolated table (the owner sees both: the control)', async () => {
    expect(isolated).toEqual(
      expect.arrayContaining([
        'patients',
        'patient_versions',
        'records',
        'record_versions',
        'users',
        'sessions',
        'enrollments',
        'webauthn_credentials',
        'care_team',
        'patient_consents',
        'break_glass_grants',
        'data_keys',
        'practices',
      ]),
    );
    const missing: string[] = [];
    for (const t of isolated) {
      for (const p of [a, b]) {
        if ((await ownerCount(t, p)) === 0) {
          missing.push(`${t} has no row of practice ${p === a ? 'A' : 'B'}: add one to seed()`);
        }
      }
      // Unfiltered, the owner (a superuser in the tests) sees both practices.
      expect(new Set(await unfiltered(c.database.owner, t)), t).toEqual(new Set([a, b]));
    }
    expect(missing).toEqual([]);
  });

  it("shows the application role in practice A's transaction only A's rows of every table, zero of B's", async () => {
    for (const t of isolated) {
      const [countA, countB] = [await ownerCount(t, a), await ownerCount(t, b)];
      // The handle bound to B, moved to A for one transaction with SET LOCAL.
      const inA = await rolledBack(dbB.db, async (tx) => {
        await withPractice(tx, a);
        return unfiltered(tx, t);
      });
      expect({ t, rows: inA.length, ofB: inA.filter((p) => p !== a).length }).toEqual({
        t,
        rows: countA,
        ofB: 0,
      });
      // The server's own handle (bound to A at the session level), no transaction.
      const bound = await unfiltered(c.database.db, t);
      expect({ t, rows: bound.length, ofB: bound.filter((p) => p !== a).length }).toEqual({
        t,
        rows: countA,
        ofB: 0,
      });
      // And symmetrically B's handle sees B's rows only.
      const inB = await unfiltered(dbB.db, t);
      expect({ t, rows: inB.length, ofA: inB.filter((p) => p !== b).length }).toEqual({
        t,
        rows: countB,
        ofA: 0,
      });
    }
  });

  it("refuses to write a row of practice B, or move a row to B, from practice A's transaction", async () => {
    for (const t of isolated) {
      const col = column(t);
      // A copy of one of A's own rows, relabelled B: the policy's WITH CHECK refuses it before any
      // key or foreign key is checked.
      const insert = rolledBack(c.database.db, (tx) =>
        sql`INSERT INTO ${sql.table(t)}
          SELECT (jsonb_populate_record(NULL::${sql.table(t)}, to_jsonb(x) || jsonb_build_object(${col}::text, ${b}::text))).*
          FROM ${sql.table(t)} x LIMIT 1`.execute(tx),
      );
      await expect(insert, t).rejects.toThrow(/row-level security/);
      const update = rolledBack(c.database.db, (tx) =>
        sql`UPDATE ${sql.table(t)} SET ${sql.ref(col)} = ${b}`.execute(tx),
      );
      await expect(update, t).rejects.toThrow(/row-level security/);
    }
  });

  it("updates and deletes none of B's rows with an unfiltered statement", async () => {
    // No-op updates: they count the rows they reach. Deletes on the leaves of the foreign keys.
    for (const t of isolated) {
      const col = column(t);
      const n = await rolledBack(c.database.db, (tx) =>
        sql`UPDATE ${sql.table(t)} SET ${sql.ref(col)} = ${sql.ref(col)}`.execute(tx),
      );
      expect({ t, updated: Number(n.numAffectedRows) }).toEqual({ t, updated: await ownerCount(t, a) });
    }
    for (const t of [
      'sessions',
      'enrollments',
      'webauthn_credentials',
      'record_shares',
      'break_glass_grants',
    ]) {
      const n = await rolledBack(c.database.db, (tx) => sql`DELETE FROM ${sql.table(t)}`.execute(tx));
      expect({ t, deleted: Number(n.numAffectedRows) }).toEqual({ t, deleted: await ownerCount(t, a) });
    }
  });

  it('sees no practice at all with the setting unset', async () => {
    // A handle that was never bound, and a bound one with the setting emptied for a transaction.
    const loose = connect(c.testDb.connection());
    try {
      expect(loose.practiceId).toBeUndefined();
      for (const t of isolated) {
        expect({ t, rows: (await unfiltered(loose.db, t)).length }).toEqual({ t, rows: 0 });
        const emptied = await rolledBack(c.database.db, async (tx) => {
          await sql`SELECT set_config('custos.practice_id', '', true)`.execute(tx);
          return unfiltered(tx, t);
        });
        expect({ t, rows: emptied.length }).toEqual({ t, rows: 0 });
      }
    } finally {
      await loose.close();
    }
    // A session in which the setting was never defined at all (current_setting gives NULL).
    if (c.testDb.engine === 'postgres') {
      const client = new pg.Client({ connectionString: c.testDb.url });
      await client.connect();
      try {
        await client.query('SET ROLE custos_app');
        for (const t of isolated) {
          const r = await client.query(`SELECT count(*)::int AS n FROM ${t}`);
          expect({ t, rows: r.rows[0].n }).toEqual({ t, rows: 0 });
        }
      } finally {
        await client.end();
      }
    } else {
      console.info(
        '[custos] practice-isolation: the "never defined" case runs on PostgreSQL only: PGlite has one session, in which the setting is already defined (as empty when unbound, covered above)',
      );
    }
  });

  it('puts every table with practice_id under forced row-level security with the practice_isolation policy', async () => {
    const r = await sql<{
      t: string;
      enabled: boolean;
      forced: boolean;
      policies: string[];
      cmd: string | null;
      roles: string[] | null;
      qual: string | null;
      check: string | null;
    }>`
      SELECT c.relname AS t, c.relrowsecurity AS enabled, c.relforcerowsecurity AS forced,
        ARRAY(SELECT polname::text FROM pg_policy WHERE polrelid = c.oid ORDER BY 1) AS policies,
        p.polcmd::text AS cmd,
        ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE r::regrole::text END FROM unnest(p.polroles) r) AS roles,
        pg_get_expr(p.polqual, p.polrelid) AS qual, pg_get_expr(p.polwithcheck, p.polrelid) AS check
      FROM pg_class c
      LEFT JOIN pg_policy p ON p.polrelid = c.oid AND p.polname = 'practice_isolation'
      WHERE c.oid = ANY(${isolated.map((t) => t)}::regclass[])
      ORDER BY 1`.execute(c.database.owner);
    expect(r.rows.map((x) => x.t).sort()).toEqual([...isolated].sort());
    for (const x of r.rows) {
      expect(x, x.t).toMatchObject({
        enabled: true,
        forced: true,
        policies: ['practice_isolation'],
        cmd: '*',
        roles: ['public'],
      });
      for (const expr of [x.qual, x.check]) {
        expect(expr, x.t).toContain(column(x.t));
        expect(expr, x.t).toContain("current_setting('custos.practice_id'::text, true)");
      }
    }
  });

  it('knows every table: isolated by practice, or database-wide for a stated reason', async () => {
    const all = await sql<{ t: string }>`
      SELECT c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') ORDER BY 1`.execute(c.database.owner);
    const unclassified = all.rows
      .map((x) => x.t)
      .filter((t) => !isolated.includes(t) && !(t in DATABASE_WIDE));
    expect(unclassified, 'add practice_id and SELECT custos_isolate(...), or a reason here').toEqual([]);
    const none = await sql<{ t: string }>`
      SELECT c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = current_schema() AND c.relrowsecurity ORDER BY 1`.execute(c.database.owner);
    expect(none.rows.map((x) => x.t).filter((t) => t in DATABASE_WIDE)).toEqual([]);
  });

  it('lets the application role append to the audit trail and seal and verify every practice, but not change it or its own rules', async () => {
    const db = c.database.db;
    const role = await sql<{ u: string }>`SELECT current_user AS u`.execute(db);
    expect(role.rows[0]?.u).toBe('custos_app');
    // The trail is database-wide on purpose: both practices' entries, one sequence.
    const practices = await sql<{
      p: string;
    }>`SELECT DISTINCT practice_id::text AS p FROM audit_entries`.execute(db);
    expect(new Set(practices.rows.map((x) => x.p))).toEqual(new Set([a, b]));
    const sealed = await sealOnce({ db, keyring: c.keyring, horizonTimeoutMs: 10_000 });
    expect(sealed.entries).toBeGreaterThanOrEqual(auditEntries);
    const v = await verifyTrail(db, { publicKey: c.keyring.auditPublicKey, keyId: c.keyring.auditKeyId });
    expect(v).toMatchObject({ ok: true, unsealed: 0 });
    expect(v.ok && v.entries).toBe(
      (await sql<{ n: number }>`SELECT count(*)::int AS n FROM audit_entries`.execute(c.database.owner))
        .rows[0]?.n,
    );
    for (const statement of [
      sql`UPDATE audit_entries SET outcome = 'success'`,
      sql`DELETE FROM audit_entries`,
      sql`TRUNCATE audit_entries`,
      sql`DELETE FROM audit_checkpoints`,
      sql`INSERT INTO custos_migrations (name, timestamp) VALUES ('999_x', now())`,
    ]) {
      await expect(statement.execute(db)).rejects.toThrow(/permission denied/);
    }
    for (const statement of [
      sql`ALTER TABLE patients NO FORCE ROW LEVEL SECURITY`,
      sql`ALTER TABLE patients DISABLE ROW LEVEL SECURITY`,
      sql`DROP POLICY practice_isolation ON patients`,
      sql`ALTER TABLE audit_entries DISABLE TRIGGER USER`,
      sql`SELECT custos_isolate('users')`,
    ]) {
      await expect(statement.execute(db)).rejects.toThrow(/must be owner|permission denied/);
    }
  });
});

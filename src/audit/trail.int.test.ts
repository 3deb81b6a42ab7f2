import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestCustos, skipReason, type TestCustos } from '../../test/support/db.ts';
import { identity, note, system, user } from '../../test/support/fixtures.ts';
import type { CoreDb } from '../db/schema.ts';
import { append } from './append.ts';
import { checkpointBody } from './checkpoint.ts';
import { sealOnce } from './sealer.ts';
import { checkpointFromRow } from './store.ts';
import { type VerifyResult, verifyTrail } from './verify.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] trail.int.test.ts skipped: ${skip}`);
}

class Rollback extends Error {}

/**
 * DESIGN.md invariant 4, the tamper matrix: an attacker with database access disables the
 * append-only triggers and changes the trail; `verify` fails and names the first bad place.
 * Each case runs in a transaction that is rolled back, so the cases do not disturb each other.
 */
describe.skipIf(skip)('the sealed audit trail', () => {
  let c: TestCustos;
  let gap = 0;
  let sealedUpTo = 0;
  beforeAll(async () => {
    c = await openTestCustos();
    const sys = system(c.practiceId);
    const alice = user(c.practiceId, 'alice');
    for (let i = 0; i < 5; i++) {
      const { id } = await c.chart.createPatient(sys, identity(), { careTeam: ['alice'] });
      await c.chart.createRecord(alice, id, note(`Entry ${i}.`));
      await c.chart.readChart(alice, id);
      await c.chart.readPatient(user(c.practiceId, 'mallory'), id).catch(() => undefined);
    }
    // A rolled-back append leaves a permanent gap in the sequence.
    await c.database.db
      .transaction()
      .execute(async (tx) => {
        await append(tx, sys, { action: 'read', resourceType: 'patient', outcome: 'success' }, new Date());
        gap = Number(
          (await sql<{ v: string }>`SELECT currval('audit_entries_seq') AS v`.execute(tx)).rows[0]?.v,
        );
        throw new Rollback();
      })
      .catch((e: unknown) => {
        if (!(e instanceof Rollback)) {
          throw e;
        }
      });
    await c.chart.searchPatients(sys, { familyPrefix: 'Synth' });
    const first = await sealOnce({ db: c.database.db, keyring: c.keyring, maxBatch: 6 });

    expect(first.checkpoints).toBeGreaterThan(1);
    sealedUpTo = Number(
      (await sql<{ m: string }>`SELECT max(last_seq) AS m FROM audit_checkpoints`.execute(c.database.db))
        .rows[0]?.m,
    );
    // Unsealed entries after the last checkpoint are allowed (they are the newest).
    await c.chart.readPatient(sys, (await c.chart.searchPatients(sys, { familyPrefix: 'Synth' }))[0]!.id);
  });
  afterAll(async () => {
    await c?.cleanup();
  });

  const verify = (db: Kysely<CoreDb>) =>
    verifyTrail(db, { publicKey: c.keyring.auditPublicKey, keyId: c.keyring.auditKeyId });

  async function tampered(change: (tx: Kysely<CoreDb>) => Promise<unknown>): Promise<VerifyResult> {
    let result: VerifyResult | undefined;
    await c.database.owner
      .transaction()
      .execute(async (tx) => {
        await sql`ALTER TABLE audit_entries DISABLE TRIGGER USER`.execute(tx);
        await sql`ALTER TABLE audit_checkpoints DISABLE TRIGGER USER`.execute(tx);
        await change(tx);
        result = await verify(tx);
        throw new Rollback();
      })
      .catch((e: unknown) => {
        if (!(e instanceof Rollback)) {
          throw e;
        }
      });
    return result as VerifyResult;
  }

  it('verifies an intact trail, with a recorded gap and unsealed newest entries', async () => {
    const r = await verify(c.database.db);
    expect(r, JSON.stringify(r)).toMatchObject({ ok: true, unsealed: 2 });
    const gaps = (await c.database.db.selectFrom('audit_checkpoints').select('gaps').execute()).flatMap((g) =>
      JSON.parse(g.gaps),
    );
    expect(gaps).toContainEqual([gap, gap]);
    expect(r.ok && r.entries).toBe(sealedUpTo - 1);
  });

  const fields: [string, string][] = [
    ['actor_id', "'someone-else'"],
    ['actor_kind', "'system'"],
    ['role', "'admin'"],
    ['action', "'list'"],
    ['resource_type', "'record'"],
    ['resource_id', "'00000000-0000-4000-8000-000000000001'"],
    ['patient_pseudonym', "'ps_forged'"],
    ['purpose', "'operations'"],
    ['outcome', "'denied'"],
    ['reason', "'forged'"],
    ['client_address', "'127.0.0.9'"],
    ['user_agent_hash', "'x'"],
    ['session_id', "'sess-forged'"],
    ['request_id', "'req-forged'"],
    ['on_behalf_of', "'boss'"],
    ['practice_id', `'${randomUUID()}'`],
    ['at', "at + interval '1 millisecond'"],
    ['detail', `'{"count": 99}'::jsonb`],
  ];
  it.each(fields)('names the entry when its %s is changed after sealing', async (field, value) => {
    const target = 7;
    const r = await tampered((tx) =>
      sql`UPDATE audit_entries SET ${sql.ref(field)} = ${sql.raw(value)} WHERE seq = ${target}`.execute(tx),
    );
    expect(r).toMatchObject({ ok: false, at: `entry ${target}` });
  });

  it('names a deleted entry', async () => {
    const r = await tampered((tx) => sql`DELETE FROM audit_entries WHERE seq = 9`.execute(tx));
    expect(r).toEqual({
      ok: false,
      at: 'entry 9',
      problem: expect.stringMatching(/^is missing from the table/),
    });
  });

  it('names an entry inserted into the sealed range', async () => {
    const r = await tampered((tx) =>
      sql`INSERT INTO audit_entries (seq, at, practice_id, actor_kind, actor_id, role, action, resource_type, purpose, outcome)
          VALUES (${gap}, now(), ${c.practiceId}, 'user', 'alice', 'clinician', 'read', 'patient', 'treatment', 'success')`.execute(
        tx,
      ),
    );
    expect(r).toEqual({ ok: false, at: `entry ${gap}`, problem: expect.stringMatching(/rolled-back gap/) });
  });

  it('names the first of two swapped entries', async () => {
    const r = await tampered(async (tx) => {
      await sql`UPDATE audit_entries SET seq = -1 WHERE seq = 4`.execute(tx);
      await sql`UPDATE audit_entries SET seq = 4 WHERE seq = 5`.execute(tx);
      await sql`UPDATE audit_entries SET seq = 5 WHERE seq = -1`.execute(tx);
    });
    expect(r).toMatchObject({ ok: false, at: 'entry 4' });
  });

  it('names the first entry of a truncated tail', async () => {
    const r = await tampered((tx) =>
      sql`DELETE FROM audit_entries WHERE seq >= ${sealedUpTo - 3}`.execute(tx),
    );
    expect(r).toMatchObject({ ok: false, at: `entry ${sealedUpTo - 3}` });
  });

  it('names a replaced checkpoint', async () => {
    const r = await tampered((tx) =>
      sql`UPDATE audit_checkpoints SET root = sha256('forged'::bytea) WHERE number = 2`.execute(tx),
    );
    expect(r).toEqual({
      ok: false,
      at: 'checkpoint 2',
      problem: 'signature does not verify with the audit public key',
    });
  });

  it('names a deleted checkpoint', async () => {
    const r = await tampered((tx) => sql`DELETE FROM audit_checkpoints WHERE number = 2`.execute(tx));
    expect(r).toMatchObject({ ok: false, at: 'checkpoint 2' });
  });

  it('names the last checkpoint when it is deleted and an anchored copy exists', async () => {
    const anchors = (
      await c.database.db.selectFrom('audit_checkpoints').selectAll().orderBy('number').execute()
    ).map(checkpointFromRow);
    const last = anchors[anchors.length - 1]!;
    let r = await tampered((tx) =>
      sql`DELETE FROM audit_checkpoints WHERE number = ${last.number}`.execute(tx),
    );
    // Without the copy kept outside the database, a deleted tail of checkpoints looks like unsealed entries.
    expect(r).toMatchObject({ ok: true });
    let anchored: VerifyResult | undefined;
    r = await tampered(async (tx) => {
      await sql`DELETE FROM audit_checkpoints WHERE number = ${last.number}`.execute(tx);
      anchored = await verifyTrail(tx, {
        publicKey: c.keyring.auditPublicKey,
        keyId: c.keyring.auditKeyId,
        anchors,
      });
    });
    expect(anchored).toEqual({
      ok: false,
      at: `checkpoint ${last.number}`,
      problem: 'is missing or differs from the copy kept outside the database',
    });
  });

  it('names a checkpoint re-signed with another key, even with consistent leaves', async () => {
    const other = generateKeyPairSync('ed25519');
    const r = await tampered(async (tx) => {
      const row = await tx
        .selectFrom('audit_checkpoints')
        .selectAll()
        .where('number', '=', '1')
        .executeTakeFirstOrThrow();
      const forged = { ...checkpointFromRow(row), root: Buffer.alloc(32, 1) };
      const signature = sign(null, checkpointBody(forged), other.privateKey);
      await sql`UPDATE audit_checkpoints SET root = ${forged.root}, signature = ${signature} WHERE number = 1`.execute(
        tx,
      );
    });
    expect(r).toEqual({
      ok: false,
      at: 'checkpoint 1',
      problem: 'signature does not verify with the audit public key',
    });
  });

  it('names the checkpoint when an entry and its stored leaf are both changed', async () => {
    const r = await tampered(async (tx) => {
      await sql`UPDATE audit_entries SET actor_id = 'forged' WHERE seq = 1`.execute(tx);
      const e = await tx
        .selectFrom('audit_entries')
        .selectAll()
        .where('seq', '=', '1')
        .executeTakeFirstOrThrow();
      const { encodeEntry } = await import('./canonical.ts');
      const { leafHash } = await import('./merkle.ts');
      await sql`UPDATE audit_checkpoints SET leaves = overlay(leaves placing ${leafHash(encodeEntry(e))} from 1 for 32) WHERE number = 1`.execute(
        tx,
      );
    });
    expect(r).toEqual({
      ok: false,
      at: 'checkpoint 1',
      problem: 'root hash or tree size does not match its entries',
    });
  });

  it('encodes entries identically from rows and from raw columns (the sealer path)', async () => {
    const ctx = { ...system(c.practiceId), clientAddress: 'ünï\u0001\n', onBehalfOf: 'dr. ☃' };
    await append(
      c.database.db,
      ctx,
      {
        action: 'search',
        resourceType: 'patient',
        outcome: 'success',
        detail: { z: 1, a: ['x', 'y', 'é'], m: true },
      },
      new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 678)),
    );
    const rows = await c.database.db.selectFrom('audit_entries').selectAll().orderBy('seq').execute();
    const { leavesFor } = await import('./store.ts');
    const { encodeEntry } = await import('./canonical.ts');
    const { leafHash } = await import('./merkle.ts');
    const fast = await leavesFor(c.database.db, { after: 0, upTo: 1e12, limit: 1e6 });
    expect(fast.map((f) => f.seq)).toEqual(rows.map((r) => Number(r.seq)));
    for (const [i, r] of rows.entries()) {
      expect(fast[i]!.leaf.equals(leafHash(encodeEntry(r))), `entry ${r.seq}`).toBe(true);
    }
    // Control characters were encoded on the way in (no log injection).
    expect(rows[rows.length - 1]!.client_address).toBe('ünï\\u0001\\u000a');
  });

  it('verifies incrementally from a checkpoint', async () => {
    const r = await verifyTrail(c.database.db, {
      publicKey: c.keyring.auditPublicKey,
      keyId: c.keyring.auditKeyId,
      fromCheckpoint: 2,
    });
    expect(r).toMatchObject({ ok: true });
    expect(r.ok && r.checkpoints).toBeGreaterThan(0);
  });
});

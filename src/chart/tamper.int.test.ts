import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestCustos, skipReason, type TestCustos } from '../../test/support/db.ts';
import { condition, identity, note, system } from '../../test/support/fixtures.ts';
import { isCustosError } from '../errors.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] tamper.int.test.ts skipped: ${skip}`);
}

/** Stored ciphertext is authenticated: changed or moved bytes make the read fail, never lie. */
describe.skipIf(skip)('stored ciphertext', () => {
  let c: TestCustos;
  beforeAll(async () => {
    c = await openTestCustos();
  });
  afterAll(async () => {
    await c?.cleanup();
  });

  const integrity = async (p: Promise<unknown>) => {
    const e = await p.then(
      () => undefined,
      (x: unknown) => x,
    );
    return isCustosError(e, 'CUSTOS_ERR_INTEGRITY');
  };

  /** Flips one byte of a bytea column in place, as an attacker with database access could. */
  async function flip(table: string, column: string, where: string, id: string, offset: number) {
    await sql`UPDATE ${sql.table(table)} SET ${sql.ref(column)} = set_byte(${sql.ref(column)}, ${offset}, (get_byte(${sql.ref(column)}, ${offset}) + 1) % 256) WHERE ${sql.ref(where)} = ${id}`.execute(
      c.database.db,
    );
  }

  it('fails with an integrity error when one byte of a record, an identity, a link or a data key changes', async () => {
    const sys = system(c.practiceId);
    const len = async (table: string, column: string, where: string, id: string) =>
      Number(
        (
          await sql<{
            n: number;
          }>`SELECT length(${sql.ref(column)}) AS n FROM ${sql.table(table)} WHERE ${sql.ref(where)} = ${id} LIMIT 1`.execute(
            c.database.db,
          )
        ).rows[0]?.n,
      );
    const targets: [string, string, string][] = [
      ['record_versions', 'body', 'record_id'],
      ['patient_versions', 'body', 'patient_id'],
      ['patient_links', 'link', 'patient_id'],
    ];
    for (const [table, column, where] of targets) {
      const n = await len(table, column, where, (await fresh()).recordOrPatient(table));
      // Header (version, key id, nonce), body and tag: try a byte in each region.
      for (const offset of [0, 5, 20, 30, n - 1]) {
        const p = await fresh();
        const id = p.recordOrPatient(table);
        await flip(table, column, where, id, offset);
        const read =
          table === 'record_versions'
            ? c.chart.readRecord(sys, p.recordId)
            : c.chart.readPatient(sys, p.patientId);
        // Flipping a key-id byte may also make the key unfindable: that reads as not found, never as data.
        const e = await read.then(
          () => undefined,
          (x: unknown) => x,
        );
        expect(e, `${table}.${column} byte ${offset}`).toBeDefined();
        expect(
          isCustosError(e, 'CUSTOS_ERR_INTEGRITY') || isCustosError(e, 'CUSTOS_ERR_NOT_FOUND'),
          `${table} byte ${offset}`,
        ).toBe(true);
      }
    }
    const p = await fresh();
    const keyId = (
      await sql<{
        id: string;
      }>`SELECT dk.id FROM data_keys dk JOIN patient_versions pv ON dk.id = encode(substring(pv.body from 2 for 16), 'hex')::uuid WHERE pv.patient_id = ${p.patientId}`.execute(
        c.database.db,
      )
    ).rows[0]!.id;
    await flip('data_keys', 'wrapped', 'id', keyId, 40);
    expect(await integrity(c.chart.readPatient(sys, p.patientId))).toBe(true);
    const last = await c.database.db
      .selectFrom('audit_entries')
      .selectAll()
      .orderBy('seq', 'desc')
      .limit(1)
      .executeTakeFirstOrThrow();
    expect(last).toMatchObject({ outcome: 'error', reason: 'CUSTOS_ERR_INTEGRITY', action: 'read' });
  });

  it('fails when a ciphertext is moved to another row or another version', async () => {
    const sys = system(c.practiceId);
    const a = await fresh();
    const b = await fresh();
    // Same patient, another record: same data key, so only the binding can catch it.
    const other = await c.chart.createRecord(sys, a.patientId, condition());
    await sql`UPDATE record_versions SET body = (SELECT body FROM record_versions WHERE record_id = ${a.recordId}) WHERE record_id = ${other.id}`.execute(
      c.database.db,
    );
    expect(await integrity(c.chart.readRecord(sys, other.id))).toBe(true);
    // Another patient's identity copied over: different key and binding.
    await sql`UPDATE patient_versions SET body = (SELECT body FROM patient_versions WHERE patient_id = ${a.patientId}) WHERE patient_id = ${b.patientId}`.execute(
      c.database.db,
    );
    expect(await integrity(c.chart.readPatient(sys, b.patientId))).toBe(true);
    // An old version replayed as the current one.
    // (A condition: notes the system loads are signed, and a signed note has no second version.)
    const r = await c.chart.createRecord(sys, a.patientId, condition());
    await c.chart.updateRecord(sys, r.id, {
      expectedVersion: 1,
      body: { ...condition().body, clinicalStatus: 'resolved' },
    });
    await sql`UPDATE record_versions SET body = (SELECT body FROM record_versions WHERE record_id = ${r.id} AND version = 1) WHERE record_id = ${r.id} AND version = 2`.execute(
      c.database.db,
    );
    expect(await integrity(c.chart.readRecord(sys, r.id))).toBe(true);
  });

  async function fresh() {
    const sys = system(c.practiceId);
    const { id: patientId } = await c.chart.createPatient(sys, identity());
    const { id: recordId } = await c.chart.createRecord(sys, patientId, note());
    return {
      patientId,
      recordId,
      recordOrPatient: (table: string) => (table === 'record_versions' ? recordId : patientId),
    };
  }
});

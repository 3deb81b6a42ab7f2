import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestCustos, skipReason, type TestCustos } from '../../test/support/db.ts';
import { identity, staffRow, system, user } from '../../test/support/fixtures.ts';
import { type AccessContext, accessContext, systemContext } from '../access/context.ts';
import { patientAccessReport } from '../audit/report.ts';
import { type ErrorCode, isCustosError } from '../errors.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] disclosures.int.test.ts skipped: ${skip}`);
}

const FAMILY = 'Disclosynthetica';

/** The accounting of disclosures through the gate (HIPAA 164.528): record, list, who may see it. */
describe.skipIf(skip)('the accounting of disclosures', () => {
  let c: TestCustos;
  const now = new Date('2026-05-04T10:00:00Z');
  const ctx: Record<string, AccessContext> = {};
  let patientId: string;
  let otherPatient: string;
  const ops = (onBehalfOf?: string) =>
    systemContext({
      practiceId: c.practiceId,
      purpose: 'operations',
      requestId: randomUUID(),
      ...(onBehalfOf ? { onBehalfOf } : {}),
    });
  const fails = async (p: Promise<unknown>, code: ErrorCode) => {
    const e = await p.then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(isCustosError(e, code), String(e)).toBe(true);
  };

  beforeAll(async () => {
    c = await openTestCustos({ clock: () => now });
    const roles = {
      doc: 'clinician',
      nurse: 'nurse',
      docOff: 'clinician',
      officer: 'privacy_officer',
      desk: 'frontdesk',
      bill: 'billing',
      admin: 'admin',
    } as const;
    const ids: Record<string, string> = {};
    for (const [name, role] of Object.entries(roles)) {
      ids[name] = await staffRow(c.database.db, c.practiceId, name, [role]);
      ctx[name] = user(c.practiceId, ids[name], role);
    }
    patientId = (
      await c.chart.createPatient(
        system(c.practiceId),
        identity({ name: { given: ['Dora'], family: FAMILY }, email: 'dora@example.org' }),
        { careTeam: [ids.doc as string, ids.nurse as string] },
      )
    ).id;
    otherPatient = (
      await c.chart.createPatient(system(c.practiceId), identity(), { careTeam: [ids.doc as string] })
    ).id;
  });
  afterAll(async () => {
    await c?.cleanup();
  });

  it('reads what is disclosed through the gate, records it sealed, and audits field names only', async () => {
    const deliveryId = randomUUID();
    const r = await c.chart.recordDisclosure(ops(ctx.doc?.actor.id), patientId, {
      recipient: { id: randomUUID(), name: 'Synthetic calendar' },
      purpose: 'Calendar entries',
      event: 'appointment.booked',
      deliveryId,
      values: { start: '2026-06-01T09:00:00.000Z', appointmentId: 'apt_x' },
      read: ['patientName', 'patientEmail', 'patientPhone', 'clinicianName'],
      clinicianId: ctx.doc?.actor.id as string,
    });
    expect(r.fields).toEqual({
      start: '2026-06-01T09:00:00.000Z',
      appointmentId: 'apt_x',
      patientName: `Dora ${FAMILY}`,
      patientEmail: 'dora@example.org',
      patientPhone: '+31 6 0000 0001',
      clinicianName: 'doc',
    });
    const entry = await c.database.db
      .selectFrom('audit_entries')
      .selectAll()
      .where('action', '=', 'disclose')
      .executeTakeFirstOrThrow();
    expect(entry).toMatchObject({ resource_type: 'disclosure', resource_id: r.id, purpose: 'operations' });
    expect(entry.detail).toMatchObject({
      fields: ['appointmentId', 'clinicianName', 'patientEmail', 'patientName', 'patientPhone', 'start'],
      delivery: deliveryId,
    });
    expect(JSON.stringify(entry)).not.toContain(FAMILY);
    const { rows } = await sql<{ description: Buffer; pseudonym: string }>`
      SELECT description, pseudonym FROM disclosures WHERE id = ${r.id}`.execute(c.database.owner);
    expect(rows[0]?.pseudonym).toMatch(/^ps_/);
    expect(rows[0]?.description.toString('latin1')).not.toContain(FAMILY);
    // Listed for the care team, with exactly what was sent.
    const [listed] = await c.chart.listDisclosures(ctx.doc as AccessContext, patientId);
    expect(listed).toMatchObject({
      id: r.id,
      disclosedAt: now,
      disclosedBy: 'system',
      purpose: 'Calendar entries',
      event: 'appointment.booked',
      deliveryId,
      fields: r.fields,
    });
    // The patient's access report ("who has seen my record") lists the disclosure's entry.
    const pseudonym = rows[0]?.pseudonym as string;
    const report = await patientAccessReport(c.database.db, { pseudonym, practiceId: c.practiceId });
    expect(report.filter((e) => e.action === 'disclose')).toMatchObject([
      {
        actorKind: 'system',
        onBehalfOf: ctx.doc?.actor.id,
        purpose: 'operations',
        resourceId: r.id,
        via: 'entry',
      },
    ]);
    // Another patient's accounting does not show it.
    expect(await c.chart.listDisclosures(ctx.doc as AccessContext, otherPatient)).toEqual([]);
  });

  it('lets the privacy officer and the care team (clinician, nurse) list it, and nobody else', async () => {
    for (const who of ['doc', 'nurse', 'officer']) {
      expect((await c.chart.listDisclosures(ctx[who] as AccessContext, patientId)).length, who).toBe(1);
    }
    for (const who of ['docOff', 'desk', 'bill', 'admin']) {
      await fails(c.chart.listDisclosures(ctx[who] as AccessContext, patientId), 'CUSTOS_ERR_NOT_FOUND');
    }
    await fails(c.chart.listDisclosures(ctx.doc as AccessContext, randomUUID()), 'CUSTOS_ERR_NOT_FOUND');
    await fails(c.chart.listDisclosures(ctx.doc as AccessContext, 'not-a-uuid'), 'CUSTOS_ERR_NOT_FOUND');
    const denied = await c.database.db
      .selectFrom('audit_entries')
      .select(['actor_id', 'reason'])
      .where('action', '=', 'list')
      .where('resource_type', '=', 'disclosure')
      .where('outcome', '=', 'denied')
      .execute();
    expect(denied.filter((e) => e.actor_id === ctx.desk?.actor.id)).toEqual([
      { actor_id: ctx.desk?.actor.id, reason: 'no-grant' },
    ]);
  });

  it('refuses a user who may not read the disclosed sections, and fails on a moved description', async () => {
    // A billing user may read names but not contact details: no disclosure of an e-mail address.
    await fails(
      c.chart.recordDisclosure(ctx.bill as AccessContext, patientId, {
        recipient: { id: null, name: 'Synthetic insurer' },
        purpose: 'Synthetic purpose',
        event: 'manual',
        values: {},
        read: ['patientEmail'],
      }),
      'CUSTOS_ERR_NOT_FOUND',
    );
    await fails(
      c.chart.recordDisclosure(ops(), patientId, {
        recipient: { id: null, name: 'Synthetic insurer' },
        purpose: ' ',
        event: 'manual',
        values: {},
        read: [],
      }),
      'CUSTOS_ERR_VALIDATION',
    );
    // A description copied onto another row does not decrypt there (bound to its row).
    const a = await c.chart.recordDisclosure(ops(), patientId, {
      recipient: { id: null, name: 'Synthetic lab' },
      purpose: 'Synthetic purpose',
      event: 'manual',
      values: { start: 'a' },
      read: [],
    });
    const b = await c.chart.recordDisclosure(ops(), patientId, {
      recipient: { id: null, name: 'Synthetic lab' },
      purpose: 'Synthetic purpose',
      event: 'manual',
      values: { start: 'b' },
      read: [],
    });
    await sql`UPDATE disclosures SET description = (SELECT description FROM disclosures WHERE id = ${a.id})
      WHERE id = ${b.id}`.execute(c.database.owner);
    await fails(c.chart.listDisclosures(ctx.doc as AccessContext, patientId), 'CUSTOS_ERR_INTEGRITY');
    const ok = accessContext({ ...(ctx.officer as AccessContext) });
    await sql`DELETE FROM disclosures WHERE id = ${b.id}`.execute(c.database.owner);
    expect((await c.chart.listDisclosures(ok, patientId)).map((d) => d.fields.start ?? null)).toContain('a');
  });
});

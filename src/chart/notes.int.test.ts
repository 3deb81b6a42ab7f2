import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestCustos, skipReason, type TestCustos } from '../../test/support/db.ts';
import { identity, note, staffRow, system, user } from '../../test/support/fixtures.ts';
import { type AccessContext, accessContext } from '../access/context.ts';
import { type ErrorCode, isCustosError } from '../errors.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] notes.int.test.ts skipped: ${skip}`);
}

/** Notes: draft, signed (author, recent re-authentication), amended; patients' amendment requests. */
describe.skipIf(skip)('the notes lifecycle', () => {
  let c: TestCustos;
  let now = new Date('2026-05-04T10:00:00Z');
  let author: AccessContext;
  let colleague: AccessContext;
  let desk: AccessContext;
  let patientId: string;
  const reauthed = (ctx: AccessContext, at = now) => accessContext({ ...ctx, reauthenticatedAt: at });
  const fails = async (p: Promise<unknown>, code: ErrorCode) => {
    const e = await p.then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(isCustosError(e, code), String(e)).toBe(true);
    return e;
  };

  beforeAll(async () => {
    c = await openTestCustos({ clock: () => now });
    const a = await staffRow(c.database.db, c.practiceId, 'author', ['clinician']);
    const b = await staffRow(c.database.db, c.practiceId, 'colleague', ['clinician']);
    const d = await staffRow(c.database.db, c.practiceId, 'desk', ['frontdesk']);
    author = user(c.practiceId, a, 'clinician');
    colleague = user(c.practiceId, b, 'clinician');
    desk = user(c.practiceId, d, 'frontdesk');
    patientId = (await c.chart.createPatient(system(c.practiceId), identity(), { careTeam: [a, b] })).id;
  });
  afterAll(async () => {
    await c?.cleanup();
  });

  it('keeps a note a draft until its author signs it after re-authenticating, then refuses edits', async () => {
    const { id } = await c.chart.createRecord(author, patientId, note('Draft synthetic note.'));
    expect((await c.chart.readRecord(author, id)).signed).toBeNull();
    await c.chart.updateRecord(author, id, { expectedVersion: 1, body: note('Second draft.').body });
    // No recent re-authentication: refused. Too old (6 minutes): refused.
    await fails(c.chart.signNote(author, id, 2), 'CUSTOS_ERR_STEP_UP');
    await fails(
      c.chart.signNote(reauthed(author, new Date(now.getTime() - 6 * 60_000)), id, 2),
      'CUSTOS_ERR_STEP_UP',
    );
    // Only its author signs; a stale version conflicts.
    await fails(c.chart.signNote(reauthed(colleague), id, 2), 'CUSTOS_ERR_CONFLICT');
    await fails(c.chart.signNote(reauthed(author), id, 1), 'CUSTOS_ERR_VERSION_CONFLICT');
    await fails(c.chart.signNote(desk, id, 2), 'CUSTOS_ERR_NOT_FOUND');
    const { signedAt } = await c.chart.signNote(reauthed(author), id, 2);
    expect(signedAt).toEqual(now);
    expect((await c.chart.readRecord(colleague, id)).signed).toEqual({ by: author.actor.id, at: now });
    await fails(
      c.chart.updateRecord(author, id, { expectedVersion: 2, body: note('Changed after signing.').body }),
      'CUSTOS_ERR_CONFLICT',
    );
    await fails(c.chart.signNote(reauthed(author), id, 2), 'CUSTOS_ERR_CONFLICT');
    const entry = await c.database.db
      .selectFrom('audit_entries')
      .selectAll()
      .where('action', '=', 'sign')
      .where('outcome', '=', 'success')
      .executeTakeFirstOrThrow();
    expect(entry).toMatchObject({ actor_id: author.actor.id, resource_id: id });
  });

  it('amends a signed note with a new signed note; the original stays readable and names it', async () => {
    const { id } = await c.chart.createRecord(author, patientId, note('Original synthetic note.'));
    await fails(
      c.chart.amendNote(reauthed(author), id, { reason: 'typo', body: note('x').body }),
      'CUSTOS_ERR_CONFLICT',
    );
    await c.chart.signNote(reauthed(author), id, 1);
    const bad = await fails(
      c.chart.amendNote(reauthed(colleague), id, { body: note('x').body }),
      'CUSTOS_ERR_VALIDATION',
    );
    expect((bad as { field?: string }).field).toBe('reason');
    now = new Date(now.getTime() + 60_000);
    const amendment = await c.chart.amendNote(reauthed(colleague), id, {
      reason: 'Dosage corrected',
      body: note('Corrected synthetic note.').body,
    });
    const original = await c.chart.readRecord(author, id);
    expect(original).toMatchObject({ amendedBy: amendment.id, signed: { by: author.actor.id } });
    expect(original.body).toMatchObject({ body: 'Original synthetic note.' });
    const amended = await c.chart.readRecord(author, amendment.id);
    expect(amended).toMatchObject({
      amends: id,
      signed: { by: colleague.actor.id, at: now },
      authorId: colleague.actor.id,
    });
    expect(amended.body).toMatchObject({
      body: 'Corrected synthetic note.',
      amendmentReason: 'Dosage corrected',
    });
    await fails(
      c.chart.amendNote(reauthed(author), id, { reason: 'again', body: note('y').body }),
      'CUSTOS_ERR_CONFLICT',
    );
    const entry = await c.database.db
      .selectFrom('audit_entries')
      .selectAll()
      .where('action', '=', 'amend')
      .where('outcome', '=', 'success')
      .executeTakeFirstOrThrow();
    expect(entry.detail).toEqual({ amends: id });
  });

  it('treats notes the system loads (imports of existing charts) as signed', async () => {
    const { id } = await c.chart.createRecord(system(c.practiceId), patientId, {
      ...note('Imported synthetic note.'),
      authorId: author.actor.id,
    });
    expect((await c.chart.readRecord(author, id)).signed).toEqual({ by: author.actor.id, at: now });
  });

  it('records amendment requests, accepts one with its amendment and denies one with the reason kept', async () => {
    const { id } = await c.chart.createRecord(author, patientId, note('Requested synthetic note.'));
    await c.chart.signNote(reauthed(author), id, 1);
    const marker = `MARKER-${randomUUID()}`;
    const r1 = await c.chart.requestAmendment(author, id, { text: `Please correct my address ${marker}` });
    const r2 = await c.chart.requestAmendment(colleague, id, { text: 'Please remove the second paragraph' });
    await fails(c.chart.requestAmendment(desk, id, { text: 'no access' }), 'CUSTOS_ERR_NOT_FOUND');
    const bad = await fails(c.chart.requestAmendment(author, id, { text: '' }), 'CUSTOS_ERR_VALIDATION');
    expect((bad as { field?: string }).field).toBe('text');
    // Accepting needs an amendment of that very record.
    const e = await fails(
      c.chart.decideAmendment(author, r1.id, { decision: 'accepted', amendmentId: randomUUID() }),
      'CUSTOS_ERR_VALIDATION',
    );
    expect((e as { field?: string }).field).toBe('amendmentId');
    const amendment = await c.chart.amendNote(reauthed(author), id, {
      reason: 'Patient request',
      body: note('Address corrected.').body,
    });
    await c.chart.decideAmendment(author, r1.id, { decision: 'accepted', amendmentId: amendment.id });
    await c.chart.decideAmendment(author, r2.id, {
      decision: 'denied',
      reason: 'The paragraph is clinically accurate',
    });
    await fails(
      c.chart.decideAmendment(author, r2.id, { decision: 'accepted', amendmentId: amendment.id }),
      'CUSTOS_ERR_CONFLICT',
    );
    await fails(
      c.chart.decideAmendment(desk, r2.id, { decision: 'denied', reason: 'xyz' }),
      'CUSTOS_ERR_NOT_FOUND',
    );
    const list = await c.chart.listAmendmentRequests(colleague, patientId);
    expect(list.map((r) => [r.id, r.status, r.amendmentId, r.denialReason])).toEqual([
      [r1.id, 'accepted', amendment.id, null],
      [r2.id, 'denied', null, 'The paragraph is clinically accurate'],
    ]);
    expect(list[0]?.text).toBe(`Please correct my address ${marker}`);
    // Sealed at rest.
    const raw = await c.database.owner
      .selectFrom('amendment_requests' as never)
      .selectAll()
      .execute();
    expect(JSON.stringify(raw)).not.toContain(marker);
    expect(
      raw.map((r) => Buffer.from((r as { request: Buffer }).request).toString('latin1')).join(''),
    ).not.toContain(marker);
  });
});

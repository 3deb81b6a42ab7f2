import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipReason } from '../support/db.ts';
import { identity } from '../support/fixtures.ts';
import { Client, expectError, startServer, type TestServer } from '../support/http.ts';
import { enrollStaff, logIn, reauth as reauthAs, type Staff } from '../support/staff.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] notes-api.int.test.ts skipped: ${skip}`);
}

const noteBody = (body: string) => ({ body, date: '2026-01-02T10:00:00Z' });

/** The notes lifecycle and amendment requests over real HTTPS, on both engines. */
describe.skipIf(skip)('notes API over HTTPS', () => {
  let server: TestServer;
  const staff: Record<string, Staff> = {};
  const as: Record<string, Client> = {};

  beforeAll(async () => {
    server = await startServer();
    for (const [name, roles] of Object.entries({
      doc: ['clinician'],
      colleague: ['clinician'],
      desk: ['frontdesk'],
    })) {
      staff[name] = await enrollStaff(server, new Client(server), name, roles);
      as[name] = new Client(server);
      await logIn(server, as[name], staff[name]!);
    }
  }, 180_000);
  afterAll(async () => {
    await server?.close();
  });

  const reauth = (who: string) => reauthAs(server, as[who]!, staff[who]!);

  it('signs a draft after step-up, refuses edits, amends it, and decides amendment requests', async () => {
    const p = await as.doc!.post('/api/v1/patients', {
      identity: identity(),
      careTeam: [staff.colleague!.id],
    });
    const patientId = (p.body as { id: string }).id;
    const created = await as.doc!.post(`/api/v1/patients/${patientId}/records`, {
      kind: 'note',
      body: noteBody('Synthetic draft text.'),
    });
    const noteId = (created.body as { id: string }).id;
    // The login itself was an authentication; 6 minutes later it no longer counts for signing.
    server.clock.advance(6 * 60_000);
    expectError(
      await as.doc!.post(`/api/v1/records/${noteId}/sign`, { expectedVersion: 1 }),
      403,
      'CUSTOS_ERR_STEP_UP',
    );
    await reauth('doc');
    expectError(
      await as.doc!.post(`/api/v1/records/${noteId}/sign`, { expectedVersion: 0 }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.expectedVersion',
    );
    const signedAt = server.clock.now().toISOString();
    const signed = await as.doc!.post(`/api/v1/records/${noteId}/sign`, { expectedVersion: 1 });
    expect(signed).toMatchObject({ status: 200, body: { signedAt } });
    expectError(
      await as.doc!.request('PUT', `/api/v1/records/${noteId}`, {
        expectedVersion: 1,
        body: noteBody('Edited.'),
      }),
      409,
      'CUSTOS_ERR_CONFLICT',
    );
    const read = await as.colleague!.get(`/api/v1/records/${noteId}`);
    expect((read.body as { signed: unknown }).signed).toEqual({ by: staff.doc!.id, at: signedAt });

    // A patient's request, recorded by the clinician; then the amendment and the decision.
    const req = await as.colleague!.post(`/api/v1/records/${noteId}/amendment-requests`, {
      text: 'Please fix the date.',
    });
    expect(req.status).toBe(201);
    const requestId = (req.body as { id: string }).id;
    await reauth('colleague');
    expectError(
      await as.colleague!.post(`/api/v1/records/${noteId}/amendments`, { reason: '', body: noteBody('x') }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.reason',
    );
    const amended = await as.colleague!.post(`/api/v1/records/${noteId}/amendments`, {
      reason: "Date corrected at the patient's request",
      body: noteBody('Synthetic corrected text.'),
    });
    expect(amended.status).toBe(201);
    const amendmentId = (amended.body as { id: string }).id;
    expectError(
      await as.colleague!.post(`/api/v1/amendment-requests/${requestId}/decision`, { decision: 'accepted' }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.amendmentId',
    );
    const decided = await as.colleague!.post(`/api/v1/amendment-requests/${requestId}/decision`, {
      decision: 'accepted',
      amendmentId,
    });
    expect(decided.status).toBe(204);
    const list = await as.doc!.get(`/api/v1/patients/${patientId}/amendment-requests`);
    expect(list.status).toBe(200);
    expect((list.body as { requests: unknown[] }).requests).toMatchObject([
      {
        id: requestId,
        recordId: noteId,
        text: 'Please fix the date.',
        status: 'accepted',
        amendmentId,
        denialReason: null,
      },
    ]);
    // Front desk sees neither the notes nor the requests about them.
    expectError(
      await as.desk!.get(`/api/v1/patients/${patientId}/amendment-requests`),
      404,
      'CUSTOS_ERR_NOT_FOUND',
    );
    const original = await as.doc!.get(`/api/v1/records/${noteId}`);
    expect(original.body).toMatchObject({ amendedBy: amendmentId, body: { body: 'Synthetic draft text.' } });
  });
});

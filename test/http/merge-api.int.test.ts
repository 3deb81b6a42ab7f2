import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipReason } from '../support/db.ts';
import { identity } from '../support/fixtures.ts';
import { Client, expectError, startServer, type TestServer } from '../support/http.ts';
import { enrollStaff, logIn, reauth as reauthAs, type Staff } from '../support/staff.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] merge-api.int.test.ts skipped: ${skip}`);
}

/** Merging duplicate patients over real HTTPS, on both engines. */
describe.skipIf(skip)('merge API over HTTPS', () => {
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
  const register = async (given: string) => {
    const r = await as.doc!.post('/api/v1/patients', {
      identity: identity({ name: { given: [given], family: 'Mergeapi' } }),
    });
    expect(r.status).toBe(201);
    return (r.body as { id: string }).id;
  };

  it('merges a duplicate after step-up, lists the merge, and undoes it once', async () => {
    const target = await register('Kept');
    const source = await register('Dupe');
    const rec = await as.doc!.post(`/api/v1/patients/${source}/records`, {
      kind: 'note',
      body: { body: 'Synthetic note of the duplicate.', date: '2026-01-02T10:00:00Z' },
    });
    expect(rec.status).toBe(201);
    const recordId = (rec.body as { id: string }).id;

    // A sensitive action: the login 6 minutes ago no longer counts.
    server.clock.advance(6 * 60_000);
    expectError(
      await as.doc!.post(`/api/v1/patients/${target}/merge`, { sourceId: source }),
      403,
      'CUSTOS_ERR_STEP_UP',
    );
    await reauth('doc');
    expectError(
      await as.doc!.post(`/api/v1/patients/${target}/merge`, {}),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.sourceId',
    );
    expectError(
      await as.doc!.post(`/api/v1/patients/${target}/merge`, { sourceId: 'Synthetic-not-an-id' }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.sourceId',
    );
    const self = await as.doc!.post(`/api/v1/patients/${target}/merge`, { sourceId: target });
    expectError(self, 400, 'CUSTOS_ERR_VALIDATION', 'body.sourceId');
    expect(self.text).not.toContain(target);

    const merged = await as.doc!.post(`/api/v1/patients/${target}/merge`, { sourceId: source });
    expect(merged.status).toBe(200);
    const { mergeId, moved } = merged.body as { mergeId: string; moved: Record<string, number> };
    expect(moved).toEqual({ records: 1, files: 0, related: 0, careTeam: 0 });
    const records = (await as.doc!.get(`/api/v1/patients/${target}/records`)).body as {
      records: { id: string; body: { body: string } }[];
    };
    expect(records.records.map((r) => [r.id, r.body.body])).toEqual([
      [recordId, 'Synthetic note of the duplicate.'],
    ]);
    expect((await as.doc!.get(`/api/v1/records/${recordId}`)).status).toBe(200);
    expect(((await as.doc!.get(`/api/v1/patients/${source}`)).body as { active: boolean }).active).toBe(
      false,
    );
    expectError(
      await as.doc!.post(`/api/v1/patients/${target}/merge`, { sourceId: source }),
      409,
      'CUSTOS_ERR_CONFLICT',
    );

    const list = await as.doc!.get(`/api/v1/patients/${source}/merges`);
    expect(list.status).toBe(200);
    expect((list.body as { merges: unknown[] }).merges).toEqual([
      {
        id: mergeId,
        sourceId: source,
        targetId: target,
        mergedBy: staff.doc!.id,
        mergedAt: expect.any(String),
        unmergedBy: null,
        unmergedAt: null,
        records: 1,
      },
    ]);

    server.clock.advance(6 * 60_000);
    expectError(await as.doc!.post(`/api/v1/merges/${mergeId}/undo`), 403, 'CUSTOS_ERR_STEP_UP');
    await reauth('doc');
    const undone = await as.doc!.post(`/api/v1/merges/${mergeId}/undo`);
    expect(undone.status).toBe(204);
    expect(undone.text).toBe('');
    expectError(await as.doc!.post(`/api/v1/merges/${mergeId}/undo`), 409, 'CUSTOS_ERR_CONFLICT');
    const back = (await as.doc!.get(`/api/v1/patients/${source}/records`)).body as {
      records: { id: string }[];
    };
    expect(back.records.map((r) => r.id)).toEqual([recordId]);
    expect(((await as.doc!.get(`/api/v1/patients/${source}`)).body as { active: boolean }).active).toBe(true);
    const after = (await as.doc!.get(`/api/v1/patients/${target}/merges`)).body as {
      merges: { unmergedBy: string | null; unmergedAt: string | null }[];
    };
    expect(after.merges).toEqual([
      expect.objectContaining({ unmergedBy: staff.doc!.id, unmergedAt: server.clock.now().toISOString() }),
    ]);
  });

  it('answers front desk and a clinician off one care team with 404, and audits each', async () => {
    // The first test moved the clock past the idle timeout: log in afresh.
    for (const who of ['doc', 'desk', 'colleague']) {
      as[who] = new Client(server);
      await logIn(server, as[who], staff[who]!);
    }
    const target = await register('Keptagain');
    const source = await register('Dupeagain');
    await reauth('desk');
    const desk = await as.desk!.post(`/api/v1/patients/${target}/merge`, { sourceId: source });
    expectError(desk, 404, 'CUSTOS_ERR_NOT_FOUND');
    // The colleague is on the target's care team only.
    expect(
      (await as.doc!.post(`/api/v1/patients/${target}/care-team`, { userId: staff.colleague!.id })).status,
    ).toBe(201);
    await reauth('colleague');
    const colleague = await as.colleague!.post(`/api/v1/patients/${target}/merge`, { sourceId: source });
    expectError(colleague, 404, 'CUSTOS_ERR_NOT_FOUND');
    expect(colleague.text).toBe(desk.text);
    const denied = await server.custos.database.owner
      .selectFrom('audit_entries')
      .select(['actor_id', 'action', 'outcome'])
      .where('action', '=', 'merge')
      .where('outcome', '=', 'denied')
      .execute();
    expect(denied).toEqual(
      expect.arrayContaining([
        { actor_id: staff.desk!.id, action: 'merge', outcome: 'denied' },
        { actor_id: staff.colleague!.id, action: 'merge', outcome: 'denied' },
      ]),
    );
    expect(((await as.doc!.get(`/api/v1/patients/${source}`)).body as { active: boolean }).active).toBe(true);
  });
});

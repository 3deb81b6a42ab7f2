import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PatientIdentity } from '../../src/chart/model.ts';
import { skipReason } from '../support/db.ts';
import { identity } from '../support/fixtures.ts';
import { Client, expectError, type Response, startServer, type TestServer } from '../support/http.ts';
import { enrollStaff, logIn, reauth as reauthAs, type Staff } from '../support/staff.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] chart-api.int.test.ts skipped: ${skip}`);
}

/** Markers that must never reach a role that may not see them. */
const NOTE_TEXT = 'Synthetic progress note about sleep and appetite.';
const CONDITION_TEXT = 'Synthetic free text about wheezing at night.';
const PSY_TEXT = 'Synthetic psychotherapy session content.';

const conditionBody = {
  code: { system: 'http://hl7.org/fhir/sid/icd-10', code: 'J45.909', display: 'Asthma' },
  text: CONDITION_TEXT,
  note: CONDITION_TEXT,
  clinicalStatus: 'active',
  onset: '2020-03-01',
};
const noteBody = (body = NOTE_TEXT) => ({ body, date: '2026-01-02T10:00:00Z', title: 'Progress' });

/**
 * The chart API over real HTTPS, on both engines: every route's happy path with exact answers,
 * validation errors naming the field, optimistic concurrency, step-up for break-the-glass,
 * minimum necessary by role, and search terms only in bodies.
 */
describe.skipIf(skip)('chart API over HTTPS', () => {
  let server: TestServer;
  const staff: Record<string, Staff> = {};
  const as: Record<string, Client> = {};
  let patientId = '';

  beforeAll(async () => {
    server = await startServer();
    const roles: Record<string, string[]> = {
      doc: ['clinician'],
      colleague: ['clinician'],
      outsider: ['clinician'],
      nurse: ['nurse'],
      desk: ['frontdesk'],
      bill: ['billing'],
      officer: ['privacy_officer'],
      admin: ['admin'],
    };
    for (const [name, r] of Object.entries(roles)) {
      staff[name] = await enrollStaff(server, new Client(server), name, r);
    }
    for (const name of Object.keys(roles)) {
      as[name] = new Client(server);
      await logIn(server, as[name], staff[name]!);
    }
  }, 180_000);
  afterAll(async () => {
    await server?.close();
  });

  const now = () => server.clock.now().toISOString();
  const put = (c: Client, path: string, body: unknown) => c.request('PUT', path, body);
  const reauth = (who: string) => reauthAs(server, as[who]!, staff[who]!);

  it('registers a patient, reads, updates with a version, and keeps the history', async () => {
    const at = now();
    const created = await as.doc!.post('/api/v1/patients', {
      identity: identity(),
      careTeam: [staff.colleague!.id],
    });
    expect(created.status).toBe(201);
    const body = created.body as { id: string; version: number };
    expect(body).toEqual({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), version: 1 });
    patientId = body.id;

    const read = await as.doc!.get(`/api/v1/patients/${patientId}`);
    expect(read.status).toBe(200);
    expect(read.body).toEqual({
      id: patientId,
      version: 1,
      active: true,
      createdAt: at,
      updatedAt: at,
      identity: identity(),
    });

    server.clock.advance(60_000);
    const changed: PatientIdentity = identity({ phone: '+31 6 0000 0002' });
    const updated = await put(as.desk!, `/api/v1/patients/${patientId}`, {
      expectedVersion: 1,
      identity: changed,
    });
    expect(updated).toMatchObject({ status: 200, body: { id: patientId, version: 2 } });
    const stale = await put(as.doc!, `/api/v1/patients/${patientId}`, {
      expectedVersion: 1,
      identity: changed,
    });
    expect(stale.status).toBe(412);
    expect(stale.body).toEqual({
      error: { code: 'CUSTOS_ERR_VERSION_CONFLICT', message: 'patient was changed since version 1' },
    });
    const history = await as.doc!.get(`/api/v1/patients/${patientId}/history`);
    expect(history.status).toBe(200);
    const versions = (history.body as { versions: { version: number; identity: PatientIdentity }[] })
      .versions;
    expect(versions.map((v) => [v.version, v.identity.phone])).toEqual([
      [1, '+31 6 0000 0001'],
      [2, '+31 6 0000 0002'],
    ]);
  });

  it('names the field of every validation error with a 400', async () => {
    const p = `/api/v1/patients/${patientId}`;
    const cases: [Promise<Response>, string][] = [
      [
        as.doc!.post('/api/v1/patients', { identity: { ...identity(), birthDate: '06-05-1984' } }),
        'body.identity.birthDate',
      ],
      [as.doc!.post('/api/v1/patients', { identity: identity(), extra: 1 }), 'body'],
      [as.doc!.post('/api/v1/patients', { identity: identity(), careTeam: [randomUUID()] }), 'body.careTeam'],
      [put(as.doc!, p, { expectedVersion: 0, identity: identity() }), 'body.expectedVersion'],
      [put(as.doc!, p, { expectedVersion: 2 }), 'body.identity'],
      [as.doc!.post(`${p}/records`, { kind: 'x-ray', body: {} }), 'body.kind'],
      [
        as.doc!.post(`${p}/records`, { kind: 'condition', body: { clinicalStatus: 'active' } }),
        'body.body.code',
      ],
      [
        as.doc!.post(`${p}/records`, { kind: 'note', body: noteBody(), sensitivity: 'secret' }),
        'body.sensitivity',
      ],
      [as.doc!.get(`${p}/records?kind=x-ray`), 'query.kind'],
      [as.doc!.get(`${p}/records?family=Synthetica`), 'query'],
      [as.doc!.post(`${p}/care-team`, { userId: 'nurse' }), 'body.userId'],
      [as.doc!.post(`${p}/care-team`, { userId: staff.nurse!.id, startsAt: 'tomorrow' }), 'body.startsAt'],
      [
        as.doc!.post(`${p}/care-team`, {
          userId: staff.nurse!.id,
          startsAt: '2026-12-01T00:00:00Z',
          endsAt: '2026-11-01T00:00:00Z',
        }),
        'body.endsAt',
      ],
      [as.doc!.delete(`${p}/care-team/${staff.outsider!.id}`), 'params.userId'],
      [
        put(as.doc!, `${p}/consent`, { expectedVersion: 0, directives: { denyRoles: ['janitor'] } }),
        'body.directives.denyRoles.0',
      ],
      [
        put(as.doc!, `${p}/consent`, { expectedVersion: 0, directives: { denyUsers: [randomUUID()] } }),
        'body.directives.denyUsers',
      ],
      [put(as.doc!, `${p}/restricted`, { restricted: 'yes' }), 'body.restricted'],
      [as.doc!.post('/api/v1/patients/search', { familyPrefix: 'Sy' }), 'body.familyPrefix'],
      [as.doc!.post('/api/v1/patients/search', { birthDate: '1984-05-06' }), 'body.birthDate'],
      [as.doc!.post('/api/v1/patients/search', {}), 'body'],
    ];
    for (const [call, field] of cases) {
      const r = await call;
      expect({ field, status: r.status, body: r.body }).toMatchObject({
        field,
        status: 400,
        body: {
          error: {
            code: 'CUSTOS_ERR_VALIDATION',
            field,
            message: expect.stringMatching(new RegExp(`^${field.replace(/[.[\]]/g, '\\$&')}: `)),
          },
        },
      });
      expect(r.headers['content-type']).toMatch(/^application\/json/);
    }
  });

  it('searches by body only; a query string is refused and GET has no search', async () => {
    const found = await as.doc!.post('/api/v1/patients/search', { familyPrefix: 'Synth' });
    expect(found.status).toBe(200);
    expect((found.body as { patients: { id: string }[] }).patients.map((p) => p.id)).toEqual([patientId]);
    const exact = await as.desk!.post('/api/v1/patients/search', {
      family: 'Synthetica',
      birthDate: '1984-05-06',
    });
    expect((exact.body as { patients: { id: string }[] }).patients.map((p) => p.id)).toEqual([patientId]);
    // Someone who may not see the patient finds nothing, and is not told there is something.
    const outsider = await as.outsider!.post('/api/v1/patients/search', { familyPrefix: 'Synth' });
    expect(outsider).toMatchObject({ status: 200, body: { patients: [] } });

    const inUrl = await as.doc!.post('/api/v1/patients/search?familyPrefix=Synth', { familyPrefix: 'Synth' });
    expectError(inUrl, 400, 'CUSTOS_ERR_VALIDATION', 'query');
    expect(inUrl.text).not.toContain('Synthetica');
    const viaGet = await as.doc!.get('/api/v1/patients/search?familyPrefix=Synth');
    expectError(viaGet, 404, 'CUSTOS_ERR_NOT_FOUND');
    expect(viaGet.text).not.toContain('Synthetica');
    // The searched name is in no audit entry.
    const entries = await server.custos.database.db
      .selectFrom('audit_entries')
      .selectAll()
      .where('action', '=', 'search')
      .execute();
    expect(entries.length).toBeGreaterThan(0);
    expect(JSON.stringify(entries)).not.toMatch(/synth/i);
  });

  let noteId = '';
  let conditionId = '';
  it('creates, reads, lists, updates and versions clinical records', async () => {
    const at = now();
    const note = await as.doc!.post(`/api/v1/patients/${patientId}/records`, {
      kind: 'note',
      body: noteBody(),
    });
    expect(note.status).toBe(201);
    noteId = (note.body as { id: string }).id;
    expect(note.body).toEqual({ id: noteId, version: 1 });
    server.clock.advance(1000);
    const cond = await as.doc!.post(`/api/v1/patients/${patientId}/records`, {
      kind: 'condition',
      body: conditionBody,
      categories: [],
    });
    expect(cond.status).toBe(201);
    conditionId = (cond.body as { id: string }).id;

    const read = await as.doc!.get(`/api/v1/records/${noteId}`);
    expect(read.status).toBe(200);
    expect(read.body).toEqual({
      id: noteId,
      kind: 'note',
      version: 1,
      sensitivity: 'normal',
      authorId: staff.doc!.id,
      status: 'active',
      createdAt: at,
      updatedAt: at,
      // A new note is a draft until its author signs it.
      signed: null,
      amends: null,
      amendedBy: null,
      body: noteBody(),
    });

    const list = await as.nurse!.get(`/api/v1/patients/${patientId}/records?kind=note`);
    // The nurse is not on the care team yet.
    expectError(list, 404, 'CUSTOS_ERR_NOT_FOUND');
    const mine = await as.doc!.get(`/api/v1/patients/${patientId}/records?kind=note`);
    expect(mine.status).toBe(200);
    expect((mine.body as { records: { id: string }[] }).records.map((r) => r.id)).toEqual([noteId]);
    const all = await as.doc!.get(`/api/v1/patients/${patientId}/records`);
    expect((all.body as { records: { id: string }[] }).records.map((r) => r.id)).toEqual([
      noteId,
      conditionId,
    ]);

    server.clock.advance(60_000);
    const v2 = await put(as.doc!, `/api/v1/records/${noteId}`, {
      expectedVersion: 1,
      body: noteBody('Synthetic corrected note.'),
    });
    expect(v2).toMatchObject({ status: 200, body: { id: noteId, version: 2 } });
    expect(v2.body).toEqual({ id: noteId, version: 2 });
    const stale = await put(as.doc!, `/api/v1/records/${noteId}`, { expectedVersion: 1, body: noteBody() });
    expect(stale.status).toBe(412);
    expect(stale.body).toEqual({
      error: { code: 'CUSTOS_ERR_VERSION_CONFLICT', message: 'record was changed since version 1' },
    });
    const badBody = await put(as.doc!, `/api/v1/records/${noteId}`, {
      expectedVersion: 2,
      body: { date: 'x' },
    });
    expectError(badBody, 400, 'CUSTOS_ERR_VALIDATION', 'body.body.body');
    const retired = await put(as.doc!, `/api/v1/records/${noteId}`, {
      expectedVersion: 2,
      body: noteBody('Synthetic corrected note.'),
      status: 'entered-in-error',
    });
    expect(retired.body).toEqual({ id: noteId, version: 3 });
    const history = await as.doc!.get(`/api/v1/records/${noteId}/history`);
    expect(history.status).toBe(200);
    expect(
      (
        history.body as { versions: { version: number; status: string; body: { body: string } }[] }
      ).versions.map((v) => [v.version, v.body.body]),
    ).toEqual([
      [1, NOTE_TEXT],
      [2, 'Synthetic corrected note.'],
      [3, 'Synthetic corrected note.'],
    ]);
    const chart = await as.doc!.get(`/api/v1/patients/${patientId}/chart`);
    expect(chart.status).toBe(200);
    const c = chart.body as {
      patient: { id: string; version: number };
      records: { id: string; status: string }[];
    };
    expect(c.patient).toMatchObject({ id: patientId, version: 2 });
    expect(c.records.map((r) => [r.id, r.status])).toEqual([
      [noteId, 'entered-in-error'],
      [conditionId, 'active'],
    ]);
  });

  it('gives billing and front desk the minimum necessary: no notes, no free text', async () => {
    const bill = await as.bill!.get(`/api/v1/patients/${patientId}/chart`);
    expect(bill.status).toBe(200);
    const b = bill.body as {
      patient: { identity: Record<string, unknown> };
      records: { kind: string; body: Record<string, unknown> }[];
    };
    expect(Object.keys(b.patient.identity).sort()).toEqual([
      'address',
      'birthDate',
      'identifiers',
      'name',
      'sex',
    ]);
    expect(b.records.map((r) => r.kind)).toEqual(['condition']);
    expect(Object.keys(b.records[0]!.body).sort()).toEqual(['clinicalStatus', 'code', 'onset']);
    for (const secret of [NOTE_TEXT, CONDITION_TEXT, 'corrected note', '+31 6', 'testa@example.org']) {
      expect(bill.text).not.toContain(secret);
    }
    // Billing's view of one record: the same fields; of a note: nothing, as if it did not exist.
    const cond = await as.bill!.get(`/api/v1/records/${conditionId}`);
    expect(Object.keys((cond.body as { body: object }).body).sort()).toEqual([
      'clinicalStatus',
      'code',
      'onset',
    ]);
    expectError(await as.bill!.get(`/api/v1/records/${noteId}`), 404, 'CUSTOS_ERR_NOT_FOUND');
    const billList = await as.bill!.get(`/api/v1/patients/${patientId}/records`);
    expect(billList.text).not.toContain(CONDITION_TEXT);

    const desk = await as.desk!.get(`/api/v1/patients/${patientId}/chart`);
    expect(desk.status).toBe(200);
    expect((desk.body as { records: unknown[] }).records).toEqual([]);
    expect(desk.text).not.toContain(CONDITION_TEXT);
    expect(desk.text).not.toContain('Synthetic corrected note');
    // Accounts and audit roles see no chart at all.
    for (const who of ['admin', 'officer']) {
      expectError(await as[who]!.get(`/api/v1/patients/${patientId}/chart`), 404, 'CUSTOS_ERR_NOT_FOUND');
      expectError(await as[who]!.get(`/api/v1/patients/${patientId}`), 404, 'CUSTOS_ERR_NOT_FOUND');
    }
  });

  it('manages the care team with dates', async () => {
    const p = `/api/v1/patients/${patientId}/care-team`;
    const before = await as.doc!.get(p);
    expect(before.status).toBe(200);
    expect((before.body as { members: { username: string; current: boolean }[] }).members).toEqual([
      expect.objectContaining({
        userId: staff.colleague!.id,
        username: 'colleague',
        roles: ['clinician'],
        current: true,
        endsAt: null,
      }),
      expect.objectContaining({ userId: staff.doc!.id, username: 'doc', current: true }),
    ]);
    const added = await as.doc!.post(p, { userId: staff.nurse!.id });
    expect(added.status).toBe(201);
    expect(added.body).toEqual({ patientId, userId: staff.nurse!.id });
    expect((await as.nurse!.get(`/api/v1/patients/${patientId}/records?kind=note`)).status).toBe(200);
    const ended = await as.desk!.delete(`${p}/${staff.nurse!.id}`);
    expect(ended.status).toBe(204);
    expect(ended.text).toBe('');
    expectError(
      await as.nurse!.get(`/api/v1/patients/${patientId}/records?kind=note`),
      404,
      'CUSTOS_ERR_NOT_FOUND',
    );
    // A future membership, dated.
    const startsAt = new Date(server.clock.now().getTime() + 86_400_000).toISOString();
    const endsAt = new Date(server.clock.now().getTime() + 2 * 86_400_000).toISOString();
    expect((await as.desk!.post(p, { userId: staff.nurse!.id, startsAt, endsAt })).status).toBe(201);
    const after = (await as.doc!.get(p)).body as {
      members: {
        userId: string;
        startsAt: string;
        endsAt: string | null;
        current: boolean;
        endedBy: string | null;
      }[];
    };
    expect(after.members.filter((m) => m.userId === staff.nurse!.id)).toEqual([
      expect.objectContaining({ current: false, endedBy: staff.desk!.id }),
      expect.objectContaining({ startsAt, endsAt, current: false, endedBy: null }),
    ]);
  });

  it('reads and replaces consent directives with a version; they take effect on the next request', async () => {
    const p = `/api/v1/patients/${patientId}/consent`;
    const none = await as.desk!.get(p);
    expect(none.status).toBe(200);
    expect(none.body).toEqual({
      version: 0,
      directives: { denyUsers: [], denyRoles: [], withholdCategories: [], portalOptOut: false },
      updatedAt: null,
      updatedBy: null,
    });
    const at = now();
    const set = await put(as.doc!, p, { expectedVersion: 0, directives: { denyRoles: ['billing'] } });
    expect(set.status).toBe(200);
    expect(set.body).toEqual({ version: 1 });
    const stale = await put(as.doc!, p, { expectedVersion: 0, directives: {} });
    expectError(stale, 412, 'CUSTOS_ERR_VERSION_CONFLICT');
    expect((await as.officer!.get(p)).body).toEqual({
      version: 1,
      directives: { denyUsers: [], denyRoles: ['billing'], withholdCategories: [], portalOptOut: false },
      updatedAt: at,
      updatedBy: staff.doc!.id,
    });
    expectError(await as.bill!.get(`/api/v1/patients/${patientId}/chart`), 404, 'CUSTOS_ERR_NOT_FOUND');
    expect((await put(as.desk!, p, { expectedVersion: 1, directives: {} })).body).toEqual({ version: 2 });
    expect((await as.bill!.get(`/api/v1/patients/${patientId}/chart`)).status).toBe(200);
  });

  it('flags a patient restricted and lifts the flag', async () => {
    const p = `/api/v1/patients/${patientId}/restricted`;
    const on = await put(as.officer!, p, { restricted: true });
    expect(on.status).toBe(200);
    expect(on.body).toEqual({ id: patientId, restricted: true });
    expectError(await as.desk!.get(`/api/v1/patients/${patientId}`), 404, 'CUSTOS_ERR_NOT_FOUND');
    expect((await as.doc!.get(`/api/v1/patients/${patientId}`)).status).toBe(200);
    expectError(await put(as.desk!, p, { restricted: false }), 404, 'CUSTOS_ERR_NOT_FOUND');
    expect((await put(as.doc!, p, { restricted: false })).body).toEqual({ id: patientId, restricted: false });
    expect((await as.desk!.get(`/api/v1/patients/${patientId}`)).status).toBe(200);
  });

  it('shares a psychotherapy note with a colleague and stops; releases a record to the portal', async () => {
    const psy = await as.doc!.post(`/api/v1/patients/${patientId}/records`, {
      kind: 'note',
      body: noteBody(PSY_TEXT),
      sensitivity: 'psychotherapy',
    });
    expect(psy.status).toBe(201);
    const id = (psy.body as { id: string }).id;
    expectError(await as.colleague!.get(`/api/v1/records/${id}`), 404, 'CUSTOS_ERR_NOT_FOUND');
    const shared = await as.doc!.post(`/api/v1/records/${id}/shares`, { userId: staff.colleague!.id });
    expect(shared.status).toBe(200);
    expect(shared.body).toEqual({ recordId: id, userId: staff.colleague!.id, shared: true });
    const seen = await as.colleague!.get(`/api/v1/records/${id}`);
    expect(seen.status).toBe(200);
    expect((seen.body as { body: { body: string } }).body.body).toBe(PSY_TEXT);
    // Only its author changes or shares it.
    expectError(
      await put(as.colleague!, `/api/v1/records/${id}`, { expectedVersion: 1, body: noteBody() }),
      404,
      'CUSTOS_ERR_NOT_FOUND',
    );
    expectError(
      await as.colleague!.post(`/api/v1/records/${id}/shares`, { userId: staff.outsider!.id }),
      404,
      'CUSTOS_ERR_NOT_FOUND',
    );
    expectError(
      await as.doc!.post(`/api/v1/records/${id}/shares`, { userId: staff.doc!.id }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.userId',
    );
    const unshared = await as.doc!.delete(`/api/v1/records/${id}/shares/${staff.colleague!.id}`);
    expect(unshared.status).toBe(204);
    expectError(await as.colleague!.get(`/api/v1/records/${id}`), 404, 'CUSTOS_ERR_NOT_FOUND');

    const released = await put(as.doc!, `/api/v1/records/${conditionId}/release`, { released: true });
    expect(released.status).toBe(200);
    expect(released.body).toEqual({ id: conditionId, released: true });
    // Never a psychotherapy note.
    expectError(
      await put(as.doc!, `/api/v1/records/${id}/release`, { released: true }),
      404,
      'CUSTOS_ERR_NOT_FOUND',
    );
    expect((await put(as.doc!, `/api/v1/records/${conditionId}/release`, { released: false })).body).toEqual({
      id: conditionId,
      released: false,
    });
  });

  it('breaks the glass only after a step-up, for a limited time, reviewed by the privacy officer', async () => {
    const p = `/api/v1/patients/${patientId}/break-glass`;
    const request = {
      reasonCategory: 'emergency-treatment',
      reason: 'Unconscious on arrival, needs history.',
      minutes: 30,
    };
    expectError(await as.outsider!.get(`/api/v1/patients/${patientId}/chart`), 404, 'CUSTOS_ERR_NOT_FOUND');
    // A login counts as a fresh authentication for 5 minutes; after that a step-up is needed.
    server.clock.advance(6 * 60_000);
    const noStepUp = await as.outsider!.post(p, request);
    expect(noStepUp.status).toBe(403);
    expect((noStepUp.body as { error: { code: string } }).error.code).toBe('CUSTOS_ERR_STEP_UP');
    expect(await server.custos.database.db.selectFrom('break_glass_grants').selectAll().execute()).toEqual(
      [],
    );

    await reauth('outsider');
    expectError(
      await as.outsider!.post(p, { ...request, reason: 'because' }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.reason',
    );
    expectError(
      await as.outsider!.post(p, { ...request, minutes: 481 }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.minutes',
    );
    const at = server.clock.now();
    const granted = await as.outsider!.post(p, request);
    expect(granted.status).toBe(201);
    const grantId = (granted.body as { id: string }).id;
    expect(granted.body).toEqual({
      id: grantId,
      patientId,
      startsAt: at.toISOString(),
      expiresAt: new Date(at.getTime() + 30 * 60_000).toISOString(),
      consentOverride: false,
    });
    const chart = await as.outsider!.get(`/api/v1/patients/${patientId}/chart`);
    expect(chart.status).toBe(200);
    // Not needed for someone on the care team; not possible for front desk even after a step-up.
    await reauth('doc');
    expectError(await as.doc!.post(p, request), 409, 'CUSTOS_ERR_CONFLICT');
    await reauth('desk');
    expectError(await as.desk!.post(p, request), 404, 'CUSTOS_ERR_NOT_FOUND');

    // The privacy officer's queue shows it, with the reason; nobody else sees the queue.
    const queue = await as.officer!.get('/api/v1/break-glass/reviews');
    expect(queue.status).toBe(200);
    expect(queue.body).toMatchObject({
      asOf: server.clock.now().toISOString(),
      breakGlassReviewDays: 7,
      overdue: 0,
      grants: [
        {
          id: grantId,
          userId: staff.outsider!.id,
          username: 'outsider',
          patientId,
          reasonCategory: 'emergency-treatment',
          reason: request.reason,
          startsAt: at.toISOString(),
          active: true,
          overdue: false,
        },
      ],
    });
    for (const who of ['doc', 'outsider', 'desk', 'admin', 'bill']) {
      const r = await as[who]!.get('/api/v1/break-glass/reviews');
      expectError(r, 404, 'CUSTOS_ERR_NOT_FOUND');
      expect(r.text).not.toContain('Unconscious');
    }

    // The holder ends it early; access stops.
    const ended = await as.outsider!.post(`/api/v1/break-glass/${grantId}/end`);
    expect(ended.status).toBe(200);
    expect(ended.body).toEqual({ id: grantId, endedAt: server.clock.now().toISOString() });
    expectError(await as.outsider!.get(`/api/v1/patients/${patientId}/chart`), 404, 'CUSTOS_ERR_NOT_FOUND');
    expectError(await as.outsider!.post(`/api/v1/break-glass/${grantId}/end`), 409, 'CUSTOS_ERR_CONFLICT');

    expectError(
      await as.officer!.post(`/api/v1/break-glass/${grantId}/review`, { disposition: 'inappropriate' }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.comment',
    );
    expectError(
      await as.officer!.post(`/api/v1/break-glass/${grantId}/review`, { disposition: 'maybe' }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.disposition',
    );
    const reviewedAt = now();
    const review = await as.officer!.post(`/api/v1/break-glass/${grantId}/review`, {
      disposition: 'appropriate',
      comment: 'On call for the emergency department.',
    });
    expect(review.status).toBe(200);
    expect(review.body).toEqual({
      id: grantId,
      disposition: 'appropriate',
      reviewedBy: staff.officer!.id,
      reviewedAt,
    });
    expectError(
      await as.officer!.post(`/api/v1/break-glass/${grantId}/review`, { disposition: 'appropriate' }),
      409,
      'CUSTOS_ERR_CONFLICT',
    );
    expect((await as.officer!.get('/api/v1/break-glass/reviews')).body).toMatchObject({ grants: [] });
    const history = await as.officer!.get(
      `/api/v1/break-glass/reviewed?since=${encodeURIComponent(reviewedAt)}`,
    );
    expect(history.status).toBe(200);
    expect(history.body).toMatchObject({
      grants: [
        {
          id: grantId,
          disposition: 'appropriate',
          comment: 'On call for the emergency department.',
          reviewer: 'officer',
        },
      ],
    });
    const audit = await server.custos.database.db
      .selectFrom('audit_entries')
      .selectAll()
      .where('action', 'in', ['break-glass', 'break-glass-end', 'break-glass-review'])
      .where('outcome', '=', 'success')
      .orderBy('seq')
      .execute();
    expect(audit.map((e) => [e.action, e.actor_id, e.resource_id])).toEqual([
      ['break-glass', staff.outsider!.id, grantId],
      ['break-glass-end', staff.outsider!.id, grantId],
      ['break-glass-review', staff.officer!.id, grantId],
    ]);
    expect(JSON.stringify(audit)).not.toContain('emergency department');
  });

  it('answers without a session with 401 and documents every chart route in the OpenAPI document', async () => {
    const anon = new Client(server);
    expectError(await anon.get(`/api/v1/patients/${patientId}`), 401, 'CUSTOS_ERR_UNAUTHENTICATED');
    expectError(
      await anon.post('/api/v1/patients/search', { familyPrefix: 'Synth' }),
      401,
      'CUSTOS_ERR_UNAUTHENTICATED',
    );
    const doc = await anon.get('/api/openapi.json');
    expect(doc.status).toBe(200);
    const paths = (
      doc.body as { paths: Record<string, Record<string, { requestBody?: unknown; summary?: string }>> }
    ).paths;
    for (const [method, path] of [
      ['post', '/api/v1/patients'],
      ['post', '/api/v1/patients/search'],
      ['get', '/api/v1/patients/{id}'],
      ['put', '/api/v1/patients/{id}'],
      ['get', '/api/v1/patients/{id}/chart'],
      ['post', '/api/v1/patients/{id}/records'],
      ['put', '/api/v1/records/{id}'],
      ['delete', '/api/v1/records/{id}/shares/{userId}'],
      ['post', '/api/v1/patients/{id}/break-glass'],
      ['get', '/api/v1/break-glass/reviews'],
      ['post', '/api/v1/break-glass/{id}/review'],
    ] as const) {
      expect(paths[path]?.[method], `${method} ${path}`).toBeDefined();
    }
    expect(JSON.stringify(paths['/api/v1/patients/search']?.post?.requestBody)).toContain('familyPrefix');
    expect(paths['/api/v1/patients/{id}/chart']?.get?.summary).toContain('billing');
  });
});

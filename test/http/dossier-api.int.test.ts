import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMailer } from '../../src/notify/mailer.ts';
import { readOutbox } from '../../src/notify/outbox.ts';
import { runReminders } from '../../src/scheduling/reminders.ts';
import { skipReason } from '../support/db.ts';
import { identity } from '../support/fixtures.ts';
import { Client, expectError, type Response, startServer, type TestServer } from '../support/http.ts';
import { enrollStaff, logIn, type Staff } from '../support/staff.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] dossier-api.int.test.ts skipped: ${skip}`);
}

/** The dossier summary, deactivation and ICD-10 code search over real HTTPS, on both engines. */
describe.skipIf(skip)('dossier, deactivation and code search over HTTPS', () => {
  let server: TestServer;
  const staff: Record<string, Staff> = {};
  const as: Record<string, Client> = {};
  let patientId = '';

  beforeAll(async () => {
    server = await startServer();
    for (const [name, roles] of Object.entries({
      doc: ['clinician'],
      outsider: ['clinician'],
      desk: ['frontdesk'],
      bill: ['billing'],
      admin: ['admin'],
    })) {
      staff[name] = await enrollStaff(server, new Client(server), name, roles);
      as[name] = new Client(server);
      await logIn(server, as[name], staff[name]!);
    }
    const p = await as.doc!.post('/api/v1/patients', {
      identity: identity({ name: { given: ['Dora'], family: 'Dossierdottir' } }),
    });
    expect(p.status).toBe(201);
    patientId = (p.body as { id: string }).id;
  }, 180_000);
  afterAll(async () => {
    await server?.close();
  });

  const record = async (kind: string, body: unknown, sensitivity?: string) => {
    const r = await as.doc!.post(`/api/v1/patients/${patientId}/records`, {
      kind,
      body,
      ...(sensitivity ? { sensitivity } : {}),
    });
    expect(r.status).toBe(201);
    return (r.body as { id: string }).id;
  };
  const entries = (action: string, outcome: string) =>
    server.custos.database.db
      .selectFrom('audit_entries')
      .select(['actor_id', 'action', 'resource_type', 'patient_pseudonym', 'outcome', 'detail'])
      .where('action', '=', action)
      .where('outcome', '=', outcome)
      .orderBy('seq')
      .execute();

  it('summarizes the dossier by section, with the fields each role sees, in one audit entry', async () => {
    const asthma = await record('condition', {
      code: {
        system: 'http://hl7.org/fhir/sid/icd-10-cm',
        code: 'J45.909',
        display: 'Unspecified asthma, uncomplicated',
      },
      clinicalStatus: 'active',
      note: 'MARKER-CONDITION-NOTE',
    });
    await record('condition', {
      code: { system: 'http://hl7.org/fhir/sid/icd-10-cm', code: 'J02.9' },
      clinicalStatus: 'resolved',
    });
    const med = await record('medication', {
      status: 'active',
      medication: { system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '745679' },
      dosage: { text: 'MARKER-DOSAGE two puffs' },
    });
    for (const day of ['01', '03', '02']) {
      await record('encounter', {
        type: 'visit',
        status: 'finished',
        class: 'AMB',
        start: `2026-03-${day}T09:00:00Z`,
        reason: 'MARKER-ENCOUNTER-REASON',
      });
    }
    const draft = await record('note', {
      body: 'MARKER-DRAFT-BODY',
      date: '2026-03-03T10:00:00Z',
      title: 'Draft',
    });
    const plan = await record('therapy-plan', {
      status: 'active',
      title: 'Breathing',
      goals: ['Sleep through'],
    });

    const before = (await entries('read', 'success')).length;
    const d = await as.doc!.get(`/api/v1/patients/${patientId}/dossier`);
    expect(d.status).toBe(200);
    const body = d.body as {
      patient: { id: string; identity: { name: { family: string } } };
      sections: Record<string, { count: number; latest: string | null }>;
      problems: { id: string; code: { code: string }; note?: string }[];
      medications: { id: string; dosage?: { text: string } }[];
      plans: { id: string; title?: string }[];
      recentEncounters: { start: string; reason?: string }[];
      drafts: { id: string; title?: string }[];
    };
    expect(body.patient.identity.name.family).toBe('Dossierdottir');
    expect(body.sections.condition).toMatchObject({ count: 2 });
    expect(body.sections.encounter).toMatchObject({ count: 3 });
    expect(body.sections.note).toMatchObject({ count: 1 });
    expect(body.sections.observation).toEqual({ count: 0, latest: null });
    expect(body.problems.map((p) => [p.id, p.code.code])).toEqual([[asthma, 'J45.909']]);
    // A summary list carries only its fields, never the free-text note of the record.
    expect(body.problems[0]).not.toHaveProperty('note');
    expect(body.medications.map((m) => [m.id, m.dosage?.text])).toEqual([[med, 'MARKER-DOSAGE two puffs']]);
    expect(body.plans.map((p) => [p.id, p.title])).toEqual([[plan, 'Breathing']]);
    expect(body.recentEncounters.map((e) => e.start)).toEqual([
      '2026-03-03T09:00:00Z',
      '2026-03-02T09:00:00Z',
      '2026-03-01T09:00:00Z',
    ]);
    expect(body.recentEncounters[0]).not.toHaveProperty('reason');
    expect(body.drafts.map((n) => [n.id, n.title])).toEqual([[draft, 'Draft']]);
    const reads = await entries('read', 'success');
    expect(reads.length).toBe(before + 1);
    expect(reads.at(-1)).toMatchObject({
      actor_id: staff.doc!.id,
      resource_type: 'chart',
      detail: { summary: true },
    });
    expect(reads.at(-1)?.patient_pseudonym).toMatch(/^ps_/);
    expect(JSON.stringify(reads.at(-1))).not.toContain('MARKER');

    // Billing: codes and statuses only; no notes section, no dosage text, no therapy plans.
    const billing = await as.bill!.get(`/api/v1/patients/${patientId}/dossier`);
    expect(billing.status).toBe(200);
    const b = billing.body as typeof body;
    expect(Object.keys(b.sections).sort()).toEqual(['condition', 'encounter', 'medication', 'procedure']);
    expect(b.problems.map((p) => p.code.code)).toEqual(['J45.909']);
    expect(b.medications[0]).not.toHaveProperty('dosage');
    expect(b.drafts).toEqual([]);
    expect(billing.text).not.toContain('MARKER');

    // Front desk: the identity, no clinical section at all.
    const desk = await as.desk!.get(`/api/v1/patients/${patientId}/dossier`);
    expect(desk.status).toBe(200);
    expect((desk.body as typeof body).sections).toEqual({});
    expect(desk.text).not.toContain('MARKER');
    expect(desk.text).not.toContain('J45');
  });

  it('answers the wrong user with 404 and audits the denial', async () => {
    const before = (await entries('read', 'denied')).length;
    expectError(await as.outsider!.get(`/api/v1/patients/${patientId}/dossier`), 404, 'CUSTOS_ERR_NOT_FOUND');
    expectError(await as.admin!.get(`/api/v1/patients/${patientId}/dossier`), 404, 'CUSTOS_ERR_NOT_FOUND');
    expectError(
      await as.outsider!.post(`/api/v1/patients/${patientId}/deactivate`, { reason: 'moved-away' }),
      404,
      'CUSTOS_ERR_NOT_FOUND',
    );
    expectError(
      await as.bill!.post(`/api/v1/patients/${patientId}/reactivate`, {}),
      404,
      'CUSTOS_ERR_NOT_FOUND',
    );
    const denied = await entries('read', 'denied');
    expect(denied.length).toBe(before + 2);
    expect(denied.map((e) => e.actor_id).slice(-2)).toEqual([staff.outsider!.id, staff.admin!.id]);
    const updates = await entries('update', 'denied');
    expect(updates.map((e) => e.actor_id).slice(-2)).toEqual([staff.outsider!.id, staff.bill!.id]);
    expectError(await as.doc!.get('/api/v1/patients/not-a-uuid/dossier'), 404, 'CUSTOS_ERR_NOT_FOUND');
    // Still active: nothing changed.
    const p = await as.doc!.get(`/api/v1/patients/${patientId}`);
    expect((p.body as { active: boolean }).active).toBe(true);
  });

  it('deactivates with a reason code, hides the patient from search, and reactivates', async () => {
    expectError(
      await as.desk!.post(`/api/v1/patients/${patientId}/deactivate`, { reason: 'because' }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.reason',
    );
    expectError(
      await as.desk!.post(`/api/v1/patients/${patientId}/deactivate`, {}),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.reason',
    );
    const search = () => as.desk!.post('/api/v1/patients/search', { familyPrefix: 'Dossier' });
    const ids = (r: Response) => (r.body as { patients: { id: string }[] }).patients.map((p) => p.id);
    expect(ids(await search())).toEqual([patientId]);

    const off = await as.desk!.post(`/api/v1/patients/${patientId}/deactivate`, { reason: 'moved-away' });
    expect(off).toMatchObject({ status: 200, body: { active: false } });
    expectError(
      await as.desk!.post(`/api/v1/patients/${patientId}/deactivate`, { reason: 'moved-away' }),
      409,
      'CUSTOS_ERR_CONFLICT',
    );
    expect(ids(await search())).toEqual([]);
    const withInactive = await as.desk!.post('/api/v1/patients/search', {
      familyPrefix: 'Dossier',
      includeInactive: true,
    });
    expect(ids(withInactive)).toEqual([patientId]);
    // The dossier stays readable to those who may read it.
    const read = await as.doc!.get(`/api/v1/patients/${patientId}`);
    expect(read).toMatchObject({ status: 200, body: { active: false } });
    const [entry] = (await entries('update', 'success')).filter(
      (e) => (e.detail as { active?: boolean } | null)?.active === false,
    );
    expect(entry).toMatchObject({
      actor_id: staff.desk!.id,
      resource_type: 'patient',
      detail: { active: false, reason: 'moved-away' },
    });

    const on = await as.doc!.post(`/api/v1/patients/${patientId}/reactivate`, {});
    expect(on).toMatchObject({ status: 200, body: { active: true } });
    expectError(
      await as.doc!.post(`/api/v1/patients/${patientId}/reactivate`, {}),
      409,
      'CUSTOS_ERR_CONFLICT',
    );
    expect(ids(await search())).toEqual([patientId]);
  });

  it('pages through a section list with an opaque cursor', async () => {
    const p = await as.doc!.post('/api/v1/patients', { identity: identity() });
    const pid = (p.body as { id: string }).id;
    const made: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await as.doc!.post(`/api/v1/patients/${pid}/records`, {
        kind: 'observation',
        body: {
          status: 'final',
          code: { system: 'http://loinc.org', code: '8867-4' },
          value: { quantity: { value: 60 + i, unit: '/min' } },
          effective: '2026-03-01T09:00:00Z',
        },
      });
      made.push((r.body as { id: string }).id);
      server.clock.advance(1000);
    }
    await as.doc!.post(`/api/v1/patients/${pid}/records`, {
      kind: 'note',
      body: { body: 'Synthetic note between pages.', date: '2026-03-01T10:00:00Z' },
    });
    const seen: string[] = [];
    const pages: number[] = [];
    let next: string | null = null;
    do {
      const q: string = `?kind=observation&limit=2${next ? `&after=${next}` : ''}`;
      const r = await as.doc!.get(`/api/v1/patients/${pid}/records${q}`);
      expect(r.status).toBe(200);
      const page = r.body as { records: { id: string; kind: string }[]; next: string | null };
      pages.push(page.records.length);
      seen.push(...page.records.map((x) => x.id));
      expect(page.records.every((x) => x.kind === 'observation')).toBe(true);
      next = page.next;
    } while (next);
    expect(pages).toEqual([2, 2, 1]);
    expect(seen).toEqual(made);
    // Without a limit: the first 100, here all six, and no next page.
    const all = await as.doc!.get(`/api/v1/patients/${pid}/records`);
    expect((all.body as { records: unknown[]; next: null }).records).toHaveLength(6);
    expect((all.body as { next: unknown }).next).toBeNull();
    expectError(
      await as.doc!.get(`/api/v1/patients/${pid}/records?limit=0`),
      400,
      'CUSTOS_ERR_VALIDATION',
      'query.limit',
    );
    expectError(
      await as.doc!.get(`/api/v1/patients/${pid}/records?limit=x`),
      400,
      'CUSTOS_ERR_VALIDATION',
      'query.limit',
    );
    expectError(
      await as.doc!.get(`/api/v1/patients/${pid}/records?after=bm90LWEtY3Vyc29y`),
      400,
      'CUSTOS_ERR_VALIDATION',
      'query.after',
    );
    // The cursor of this patient's list does not open another patient's records.
    const first = await as.doc!.get(`/api/v1/patients/${pid}/records?limit=1`);
    const cursor = (first.body as { next: string }).next;
    expectError(
      await as.outsider!.get(`/api/v1/patients/${pid}/records?limit=1&after=${cursor}`),
      404,
      'CUSTOS_ERR_NOT_FOUND',
    );
  });

  it('cuts pages among the records the caller may see: a cursor never points at a hidden record', async () => {
    const p = await as.doc!.post('/api/v1/patients', { identity: identity() });
    const pid = (p.body as { id: string }).id;
    const conditions: string[] = [];
    for (let i = 0; i < 3; i++) {
      await as.doc!.post(`/api/v1/patients/${pid}/records`, {
        kind: 'note',
        body: { body: 'Synthetic note hidden from billing.', date: '2026-03-01T10:00:00Z' },
      });
      server.clock.advance(1000);
      const c = await as.doc!.post(`/api/v1/patients/${pid}/records`, {
        kind: 'condition',
        body: {
          code: { system: 'http://hl7.org/fhir/sid/icd-10-cm', code: 'J45.909' },
          clinicalStatus: 'active',
        },
      });
      conditions.push((c.body as { id: string }).id);
      server.clock.advance(1000);
    }
    // Two hidden notes after the last condition: a cursor leak would show up as a further page.
    for (let i = 0; i < 2; i++) {
      await as.doc!.post(`/api/v1/patients/${pid}/records`, {
        kind: 'note',
        body: { body: 'Synthetic trailing note.', date: '2026-03-01T10:00:00Z' },
      });
      server.clock.advance(1000);
    }
    const seen: string[] = [];
    const cursors: string[] = [];
    let next: string | null = null;
    do {
      const r = await as.bill!.get(`/api/v1/patients/${pid}/records?limit=1${next ? `&after=${next}` : ''}`);
      expect(r.status).toBe(200);
      const page = r.body as { records: { id: string; kind: string }[]; next: string | null };
      expect(page.records).toHaveLength(1);
      seen.push(...page.records.map((x) => x.id));
      next = page.next;
      if (next) {
        cursors.push(Buffer.from(next, 'base64url').toString('utf8').split('|')[1] ?? '');
      }
    } while (next);
    expect(seen).toEqual(conditions);
    // Each cursor names a record billing saw, never a hidden one.
    expect(cursors).toEqual(conditions.slice(0, 2));
  });

  it('sends no appointment reminder to a deactivated patient', async () => {
    const p = await as.doc!.post('/api/v1/patients', {
      identity: identity({ email: 'moved.away@example.org' }),
    });
    const pid = (p.body as { id: string }).id;
    const start = new Date(
      Math.ceil((server.clock.now().getTime() + 3 * 3_600_000) / 60_000) * 60_000,
    ).toISOString();
    const booked = await as.desk!.post('/api/v1/appointments', {
      patientId: pid,
      clinicianId: staff.doc!.id,
      start,
      durationMinutes: 30,
    });
    expect(booked.status, booked.text).toBe(201);
    const off = await as.desk!.post(`/api/v1/patients/${pid}/deactivate`, { reason: 'moved-away' });
    expect(off.status).toBe(200);
    const outboxDir = fs.mkdtempSync(path.join(os.tmpdir(), 'custos-outbox-'));
    try {
      const job = {
        chart: server.custos.chart,
        db: server.custos.database.db,
        practiceId: server.custos.practiceId,
        mailer: createMailer(
          {
            dataDir: outboxDir,
            smtpUrl: undefined,
            smtpCaFile: undefined,
            mailFrom: 'Custos <no-reply@example.org>',
          },
          { outboxDir },
        ),
        portalUrl: 'https://portal.example.org/',
        clock: server.clock.now,
      };
      expect(await runReminders(job)).toEqual({ due: 1, sent: 0, skipped: 1, failed: 0 });
      expect(await readOutbox(outboxDir)).toEqual([]);
      // Claimed once: the next run finds nothing due.
      expect(await runReminders(job)).toEqual({ due: 0, sent: 0, skipped: 0, failed: 0 });
    } finally {
      fs.rmSync(outboxDir, { recursive: true, force: true });
    }
  });

  it('searches the ICD-10-CM list with the text in the body, for clinical and billing roles only', async () => {
    const r = await as.doc!.post('/api/v1/codes/icd10/search', { text: 'F32.1' });
    expect(r).toMatchObject({
      status: 200,
      body: {
        system: 'http://hl7.org/fhir/sid/icd-10-cm',
        source: 'starter',
        total: 1,
        codes: [{ code: 'F32.1', display: 'Major depressive disorder, single episode, moderate' }],
      },
    });
    const words = await as.bill!.post('/api/v1/codes/icd10/search', { text: 'generalized anx', limit: 3 });
    expect(words.status).toBe(200);
    expect((words.body as { codes: { code: string }[] }).codes.map((c) => c.code)).toEqual(['F41.1']);
    expectError(
      await as.doc!.post('/api/v1/codes/icd10/search', { text: '' }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.text',
    );
    expectError(
      await as.doc!.post('/api/v1/codes/icd10/search', { text: 'F32', limit: 500 }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.limit',
    );
    const inUrl = await as.doc!.post('/api/v1/codes/icd10/search?text=F32', { text: 'F32' });
    expectError(inUrl, 400, 'CUSTOS_ERR_VALIDATION', 'query');
    expectError(
      await as.desk!.post('/api/v1/codes/icd10/search', { text: 'F32' }),
      404,
      'CUSTOS_ERR_NOT_FOUND',
    );
    expectError(
      await as.admin!.post('/api/v1/codes/icd10/search', { text: 'F32' }),
      404,
      'CUSTOS_ERR_NOT_FOUND',
    );
    expectError(
      await new Client(server).post('/api/v1/codes/icd10/search', { text: 'F32' }),
      401,
      'CUSTOS_ERR_UNAUTHENTICATED',
    );
  });
});

import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STAFF_ROLES } from '../../src/access/grants.ts';
import { Chart } from '../../src/chart/gate.ts';
import { buildServer } from '../../src/http/server.ts';
import { buildServices } from '../../src/http/services.ts';
import { loadOrCreateCertificate } from '../../src/http/tls.ts';
import { PasswordHasher } from '../../src/identity/password.ts';
import { totpAt } from '../../src/identity/totp.ts';
import { skipReason, type TestCustos } from '../support/db.ts';
import { identity } from '../support/fixtures.ts';
import { Client, type Response, startServer, type TestServer } from '../support/http.ts';
import { enrollStaff, logIn, PASSWORD, type Staff } from '../support/staff.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] idor.int.test.ts skipped: ${skip}`);
}

/**
 * THE IDOR SUITE (insecure direct object references): for every route that takes an id, a user
 * of each other role, and a user of another practice, gets the same 404 as for an id that does
 * not exist, nothing of the record, and a denial audit entry; a malformed id gets that 404 too.
 *
 * The routes come from the server's own route table (the OpenAPI document Fastify builds from
 * it), so a new route with an id fails here until it has a case below or a reasoned exclusion.
 */

/** Every role without a relationship to the patient (in practice A), and a user of practice B. */
type Outsider = 'admin' | 'officer' | 'desk' | 'bill' | 'clinOff' | 'nurseOff';
const OUTSIDERS: readonly Outsider[] = ['admin', 'officer', 'desk', 'bill', 'clinOff', 'nurseOff'];
type Who = Outsider | 'owner' | 'emergency';

/** Markers of the data behind the ids: none may appear in an answer to someone denied. */
const FAMILY = 'Idorsynthetica';
const NOTE = 'Synthetic IDOR note, never to be shown.';
const PSY = 'Synthetic IDOR psychotherapy content.';
const REASON = 'Synthetic emergency reason for IDOR test.';
const FILE_TEXT = 'Synthetic IDOR file content, never to be shown.';
const SUBJECT = 'Synthetic IDOR thread subject';
const TEXT = 'Synthetic IDOR message text, never to be shown.';

interface Fixture {
  readonly patient: string;
  readonly note: string;
  readonly psy: string;
  readonly grant: string;
  readonly colleague: string;
  readonly request: string;
  /** A file (document record) of the patient, uploaded by the owner, and a download token for it. */
  readonly file: string;
  readonly token: string;
  /** A secure-message thread of the patient, started by the owner. */
  readonly thread: string;
  /** A webhook integration configured by the administrator. */
  readonly integration: string;
  /** One whose allow-list reads the patient's name: it waits for the privacy officer's approval. */
  readonly pendingIntegration: string;
  /** Another patient of the owner's (a would-be duplicate), and a merge of two more of them. */
  readonly duplicate: string;
  readonly merge: string;
  /** An appointment of the patient with the owner, and a waiting-list entry of the patient. */
  readonly appointment: string;
  readonly waiting: string;
  /** The owner as a clinician whose working hours are kept. */
  readonly clinician: string;
}

interface Case {
  /** `METHOD /url` exactly as registered (`:id`, `:userId`). */
  readonly route: string;
  /** The id of a real object of practice A this route acts on. */
  readonly target: (f: Fixture) => string;
  readonly userId?: (f: Fixture) => string;
  readonly query?: string;
  readonly body?: (f: Fixture) => unknown;
  readonly stepUp?: boolean;
  /** Who may legitimately call it with the real id (used for the malformed-id comparison). */
  readonly legit: Who;
  /** Roles the policy lets in, and why: they are not attempts at someone else's object. */
  readonly allowed?: Partial<Record<Outsider, string>>;
}

const IDENTITY_READERS = {
  desk: 'front desk reads the identity of every patient of the practice',
  bill: 'billing reads name, birth date, sex, identifiers and address for invoicing',
} as const;
const CARE_TEAM_MANAGER = { desk: 'front desk manages care teams at intake' } as const;
const HOURS_KEEPERS = {
  admin: 'the administrator keeps working hours (no patient data)',
  desk: 'front desk keeps working hours (no patient data)',
} as const;
const DESK_BOOKS = {
  desk: "front desk books and moves every patient's appointments, without the reason for the visit",
} as const;
const ADMIN_CONFIGURES = { admin: 'the practice’s administrator configures its integrations' } as const;
const OFFICER_APPROVES = {
  officer: 'the privacy officer decides on integrations that disclose patient identity (two-person rule)',
} as const;

const CASES: readonly Case[] = [
  { route: 'GET /api/v1/patients/:id', target: (f) => f.patient, legit: 'owner', allowed: IDENTITY_READERS },
  {
    route: 'GET /api/v1/patients/:id/history',
    target: (f) => f.patient,
    legit: 'owner',
    allowed: IDENTITY_READERS,
  },
  {
    route: 'PUT /api/v1/patients/:id',
    target: (f) => f.patient,
    body: () => ({
      expectedVersion: 1,
      identity: identity({ name: { given: ['Changed'], family: 'Changed' } }),
    }),
    legit: 'owner',
    allowed: { desk: 'front desk keeps demographics and contact details up to date' },
  },
  {
    route: 'GET /api/v1/patients/:id/chart',
    target: (f) => f.patient,
    legit: 'owner',
    allowed: {
      desk: 'front desk sees the identity part of the chart, no records',
      bill: 'billing sees its minimum necessary view (chart-api.int.test.ts checks it)',
    },
  },
  {
    route: 'GET /api/v1/patients/:id/dossier',
    target: (f) => f.patient,
    legit: 'owner',
    allowed: {
      desk: 'front desk sees the identity part of the dossier, no clinical section',
      bill: 'billing sees its minimum necessary view (dossier-api.int.test.ts checks it)',
    },
  },
  {
    route: 'POST /api/v1/patients/:id/deactivate',
    target: (f) => f.patient,
    body: () => ({ reason: 'other' }),
    legit: 'owner',
    allowed: { desk: 'front desk closes dossiers (moved away, deceased)' },
  },
  {
    route: 'POST /api/v1/patients/:id/reactivate',
    target: (f) => f.patient,
    legit: 'owner',
    allowed: { desk: 'front desk reopens dossiers' },
  },
  // Right of access: the care team only (psychotherapy notes never); front desk, billing and the
  // privacy officer have no export grant (the bulk export is another route, without an id).
  { route: 'GET /api/v1/patients/:id/export', target: (f) => f.patient, legit: 'owner' },
  {
    route: 'GET /api/v1/patients/:id/records',
    query: '?kind=note',
    target: (f) => f.patient,
    legit: 'owner',
  },
  {
    route: 'POST /api/v1/patients/:id/records',
    target: (f) => f.patient,
    body: () => ({ kind: 'note', body: { body: 'Synthetic injected note.', date: '2026-01-02T10:00:00Z' } }),
    legit: 'owner',
  },
  {
    route: 'GET /api/v1/patients/:id/care-team',
    target: (f) => f.patient,
    legit: 'owner',
    allowed: { ...IDENTITY_READERS, officer: 'the privacy officer sees who may see a chart (oversight)' },
  },
  {
    route: 'POST /api/v1/patients/:id/care-team',
    target: (f) => f.patient,
    body: () => ({ userId: randomUUIDOf('attacker') }),
    legit: 'owner',
    allowed: CARE_TEAM_MANAGER,
  },
  {
    route: 'DELETE /api/v1/patients/:id/care-team/:userId',
    target: (f) => f.patient,
    userId: (f) => f.colleague,
    legit: 'owner',
    allowed: CARE_TEAM_MANAGER,
  },
  {
    route: 'GET /api/v1/patients/:id/consent',
    target: (f) => f.patient,
    legit: 'owner',
    allowed: {
      desk: 'front desk records consent at intake',
      officer: 'the privacy officer oversees consent',
    },
  },
  {
    route: 'PUT /api/v1/patients/:id/consent',
    target: (f) => f.patient,
    body: () => ({ expectedVersion: 0, directives: { portalOptOut: true } }),
    legit: 'owner',
    allowed: {
      desk: 'front desk records consent at intake',
      officer: 'the privacy officer oversees consent',
    },
  },
  {
    route: 'PUT /api/v1/patients/:id/restricted',
    target: (f) => f.patient,
    body: () => ({ restricted: true }),
    legit: 'owner',
    allowed: { officer: 'the privacy officer flags staff members and public figures' },
  },
  {
    route: 'POST /api/v1/patients/:id/break-glass',
    target: (f) => f.patient,
    body: () => ({ reasonCategory: 'other', reason: 'Synthetic attempt at emergency access.' }),
    stepUp: true,
    legit: 'owner',
    allowed: {
      clinOff: 'emergency access is for a clinician off the care team: granted, audited, reviewed',
      nurseOff: 'emergency access is for a nurse off the care team: granted, audited, reviewed',
    },
  },
  { route: 'GET /api/v1/records/:id', target: (f) => f.note, legit: 'owner' },
  { route: 'GET /api/v1/records/:id/history', target: (f) => f.note, legit: 'owner' },
  {
    route: 'PUT /api/v1/records/:id',
    target: (f) => f.note,
    body: () => ({
      expectedVersion: 1,
      body: { body: 'Synthetic overwrite.', date: '2026-01-02T10:00:00Z' },
    }),
    legit: 'owner',
  },
  {
    route: 'POST /api/v1/records/:id/shares',
    target: (f) => f.psy,
    body: (f) => ({ userId: f.colleague }),
    legit: 'owner',
  },
  {
    route: 'DELETE /api/v1/records/:id/shares/:userId',
    target: (f) => f.psy,
    userId: (f) => f.colleague,
    legit: 'owner',
  },
  {
    route: 'PUT /api/v1/records/:id/release',
    target: (f) => f.note,
    body: () => ({ released: true }),
    legit: 'owner',
  },
  {
    route: 'POST /api/v1/records/:id/sign',
    target: (f) => f.note,
    body: () => ({ expectedVersion: 1 }),
    stepUp: true,
    legit: 'owner',
  },
  {
    route: 'POST /api/v1/records/:id/amendments',
    target: (f) => f.note,
    body: () => ({
      reason: 'Synthetic correction',
      body: { body: 'Synthetic amended text.', date: '2026-01-03T10:00:00Z' },
    }),
    stepUp: true,
    legit: 'owner',
  },
  {
    route: 'POST /api/v1/records/:id/amendment-requests',
    target: (f) => f.note,
    body: () => ({ text: 'Synthetic request by an outsider.' }),
    legit: 'owner',
  },
  {
    route: 'POST /api/v1/amendment-requests/:id/decision',
    target: (f) => f.request,
    body: () => ({ decision: 'denied', reason: 'Synthetic denial reason' }),
    legit: 'owner',
  },
  {
    route: 'GET /api/v1/patients/:id/amendment-requests',
    target: (f) => f.patient,
    legit: 'owner',
  },
  // Files: the gate decides before a byte of an upload is read, so a JSON body is enough here.
  { route: 'POST /api/v1/patients/:id/files', target: (f) => f.patient, legit: 'owner' },
  { route: 'GET /api/v1/records/:id/content', target: (f) => f.file, legit: 'owner' },
  { route: 'POST /api/v1/records/:id/download-tokens', target: (f) => f.file, legit: 'owner' },
  // The owner's token, presented by every other session: refused and audited (other-session).
  { route: 'GET /api/v1/files/:token', target: (f) => f.token, legit: 'owner' },
  // Secure messages: the care team only; front desk and billing reach the patient but not the messages.
  {
    route: 'POST /api/v1/patients/:id/threads',
    target: (f) => f.patient,
    body: () => ({ subject: 'Synthetic outsider subject', text: 'Synthetic outsider message.' }),
    legit: 'owner',
  },
  { route: 'GET /api/v1/patients/:id/threads', target: (f) => f.patient, legit: 'owner' },
  { route: 'GET /api/v1/threads/:id', target: (f) => f.thread, legit: 'owner' },
  {
    route: 'POST /api/v1/threads/:id/messages',
    target: (f) => f.thread,
    body: () => ({ text: 'Synthetic outsider reply.' }),
    legit: 'owner',
  },
  { route: 'POST /api/v1/threads/:id/close', target: (f) => f.thread, legit: 'owner' },
  {
    route: 'POST /api/v1/break-glass/:id/end',
    target: (f) => f.grant,
    legit: 'emergency',
    allowed: { officer: 'the privacy officer may end any grant of the practice early' },
  },
  {
    route: 'POST /api/v1/break-glass/:id/review',
    target: (f) => f.grant,
    body: () => ({ disposition: 'inappropriate', comment: 'Synthetic attacker verdict.' }),
    legit: 'officer',
    allowed: { officer: 'reviewing grants is the privacy officer’s task' },
  },
  // Scheduling (docs/scheduling.md): working hours hold no patient data but are kept by the
  // clinician, the administrator and front desk only; appointments and the waiting list are the
  // patient's, decided per patient in the `appointments` section.
  {
    route: 'GET /api/v1/clinicians/:id/hours',
    target: (f) => f.clinician,
    legit: 'owner',
    allowed: HOURS_KEEPERS,
  },
  {
    route: 'PUT /api/v1/clinicians/:id/hours',
    target: (f) => f.clinician,
    body: () => ({ hours: [{ weekday: 'sun', start: '01:00', end: '02:00' }] }),
    legit: 'owner',
    allowed: HOURS_KEEPERS,
  },
  {
    route: 'PUT /api/v1/appointments/:id',
    target: (f) => f.appointment,
    body: () => ({ expectedVersion: 1, start: '2027-01-06T10:00:00Z', durationMinutes: 30 }),
    legit: 'owner',
    allowed: DESK_BOOKS,
  },
  {
    route: 'POST /api/v1/appointments/:id/cancel',
    target: (f) => f.appointment,
    body: () => ({ reasonCode: 'other' }),
    legit: 'owner',
    allowed: DESK_BOOKS,
  },
  {
    route: 'POST /api/v1/appointments/:id/no-show',
    target: (f) => f.appointment,
    body: () => ({}),
    legit: 'owner',
    allowed: DESK_BOOKS,
  },
  {
    route: 'GET /api/v1/patients/:id/appointments',
    target: (f) => f.patient,
    legit: 'owner',
    allowed: DESK_BOOKS,
  },
  {
    route: 'DELETE /api/v1/waiting-list/:id',
    target: (f) => f.waiting,
    legit: 'owner',
    allowed: DESK_BOOKS,
  },
  {
    route: 'POST /api/v1/waiting-list/:id/offer',
    target: (f) => f.waiting,
    body: () => ({
      clinicianId: randomUUIDOf('attacker'),
      start: '2027-01-07T10:00:00Z',
      durationMinutes: 30,
    }),
    legit: 'owner',
    allowed: DESK_BOOKS,
  },
  // Last: their step-ups move the clock, and the break-glass cases above use a session from the setup.
  // The accounting of disclosures (HIPAA 164.528): the care team and the privacy officer.
  {
    route: 'GET /api/v1/patients/:id/disclosures',
    target: (f) => f.patient,
    legit: 'owner',
    allowed: { officer: 'the privacy officer answers requests for an accounting of disclosures' },
  },
  // Integrations: the administrator's configuration. Every other role gets the route's 404; the
  // administrator of another practice the 404 of a missing integration.
  {
    route: 'PATCH /api/v1/admin/integrations/:id',
    target: (f) => f.integration,
    body: () => ({ name: 'Synthetic takeover', url: 'https://attacker.example.com/hook' }),
    stepUp: true,
    legit: 'admin',
    allowed: ADMIN_CONFIGURES,
  },
  {
    route: 'DELETE /api/v1/admin/integrations/:id',
    target: (f) => f.integration,
    stepUp: true,
    legit: 'admin',
    allowed: ADMIN_CONFIGURES,
  },
  {
    route: 'GET /api/v1/admin/integrations/:id/deliveries',
    target: (f) => f.integration,
    legit: 'admin',
    allowed: ADMIN_CONFIGURES,
  },
  // Merging duplicates: a clinician on both care teams only (docs/merge.md); step-up.
  {
    route: 'POST /api/v1/patients/:id/merge',
    target: (f) => f.patient,
    body: (f) => ({ sourceId: f.duplicate }),
    stepUp: true,
    legit: 'owner',
  },
  { route: 'POST /api/v1/merges/:id/undo', target: (f) => f.merge, stepUp: true, legit: 'owner' },
  {
    route: 'GET /api/v1/patients/:id/merges',
    target: (f) => f.patient,
    legit: 'owner',
    allowed: { ...IDENTITY_READERS, officer: 'the privacy officer oversees merges like care teams' },
  },
  // The two-person rule: only a privacy officer decides (the service checks and audits it, with
  // the integration's id); the administrator who configured it gets the 404 like everyone else.
  // At the very end: their step-ups move the clock 3.5 minutes per case, which placed earlier
  // would idle out the owner's session before the merge cases.
  {
    route: 'POST /api/v1/admin/integrations/:id/approve',
    target: (f) => f.pendingIntegration,
    body: () => ({}),
    stepUp: true,
    legit: 'officer',
    allowed: OFFICER_APPROVES,
  },
  {
    route: 'POST /api/v1/admin/integrations/:id/reject',
    target: (f) => f.pendingIntegration,
    body: () => ({ reason: 'Synthetic IDOR rejection' }),
    stepUp: true,
    legit: 'officer',
    allowed: OFFICER_APPROVES,
  },
];

/** Routes with an id that hold no patient data, each with where it is covered instead. */
const EXCLUDED: Readonly<Record<string, string>> = {
  'POST /api/v1/admin/users/:id/roles': 'account administration, admin only (auth and admin suites)',
  'POST /api/v1/admin/users/:id/disable': 'account administration, admin only (auth and admin suites)',
  'POST /api/v1/admin/users/:id/enable': 'account administration, admin only (auth and admin suites)',
  'POST /api/v1/admin/users/:id/unlock': 'account administration, admin only (auth and admin suites)',
  'POST /api/v1/admin/users/:id/reset': 'account administration, admin only (auth and admin suites)',
  'DELETE /api/v1/admin/blocks/:address': 'an IP address, not an object of a patient (guard suite)',
  'DELETE /api/v1/auth/sessions/:id': "the caller's own sessions only (auth suite)",
  'DELETE /api/v1/auth/passkeys/:id': "the caller's own passkeys only (passkey suite)",
  'POST /api/v1/access-reviews/:userId': 'user accounts, privacy officer only (access-reviews suite)',
};

/** A fixed, valid uuid per label: for bodies that name a user who does not exist. */
const labels = new Map<string, string>();
function randomUUIDOf(label: string): string {
  let id = labels.get(label);
  if (!id) {
    id = randomUUID();
    labels.set(label, id);
  }
  return id;
}

/** The same database served for practice B: its own server, bound to B like a real deployment would be. */
async function practiceServer(a: TestServer, practiceId: string): Promise<TestServer> {
  const database = a.custos.database.forPractice(practiceId);
  const custos = Object.assign(Object.create(null) as object, a.custos, {
    database,
    practiceId,
    chart: new Chart({ db: database.db, keyring: a.custos.keyring, clock: a.clock.now }),
  }) as TestCustos;
  const services = buildServices(custos, {
    clock: a.clock.now,
    hasher: new PasswordHasher({ memoryCost: 1024, timeCost: 1, parallelism: 1 }),
  });
  const tls = await loadOrCreateCertificate({ dataDir: `${a.custos.keyFile}.d` });
  const app = await buildServer(services, {
    tls,
    onInternalError: (e) => console.error('[custos test server B] internal error:', e),
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  return {
    custos,
    services,
    app,
    url: `https://127.0.0.1:${port}`,
    port,
    clock: a.clock,
    ca: tls.cert,
    outboxDir: a.outboxDir,
    close: () => app.close(),
  };
}

const fill = (c: Case, id: string, userId?: string) =>
  `${c.route
    .split(' ')[1]
    ?.replace(':id', id)
    .replace(':token', id)
    .replace(':userId', userId ?? '')}${c.query ?? ''}`;

describe.skipIf(skip)('IDOR: every route with an id', () => {
  let a: TestServer;
  let b: TestServer;
  const staff: Record<string, Staff> = {};
  const as: Record<string, Client> = {};
  let stranger: Staff;
  let strangerClient: Client;
  let f: Fixture;

  beforeAll(async () => {
    a = await startServer();
    const roles: Record<string, string[]> = {
      owner: ['clinician'],
      colleague: ['clinician'],
      emergency: ['clinician'],
      admin: ['admin'],
      officer: ['privacy_officer'],
      desk: ['frontdesk'],
      bill: ['billing'],
      clinOff: ['clinician'],
      nurseOff: ['nurse'],
    };
    for (const [name, r] of Object.entries(roles)) {
      staff[name] = await enrollStaff(a, new Client(a), name, r);
    }
    for (const name of Object.keys(roles)) {
      as[name] = new Client(a);
      await logIn(a, as[name], staff[name]!);
    }
    const other = randomUUID();
    await a.custos.database.owner
      .insertInto('practices')
      .values({ id: other, name: 'Other practice', created_at: a.clock.now() })
      .execute();
    b = await practiceServer(a, other);
    // Every staff role at once: if all of them together reach nothing of practice A, none does.
    stranger = await enrollStaff(b, new Client(b), 'stranger', [...STAFF_ROLES]);
    strangerClient = new Client(b);
    await logIn(b, strangerClient, stranger);

    // The objects: a patient with a normal note and a psychotherapy note, and a grant.
    const created = await as.owner!.post('/api/v1/patients', {
      identity: identity({ name: { given: ['Idora'], family: FAMILY } }),
      careTeam: [staff.colleague!.id],
    });
    const patient = (created.body as { id: string }).id;
    const note = await as.owner!.post(`/api/v1/patients/${patient}/records`, {
      kind: 'note',
      body: { body: NOTE, date: '2026-01-02T10:00:00Z' },
    });
    const psy = await as.owner!.post(`/api/v1/patients/${patient}/records`, {
      kind: 'note',
      body: { body: PSY, date: '2026-01-02T11:00:00Z' },
      sensitivity: 'psychotherapy',
    });
    await reauth(a, as.emergency!, staff.emergency!);
    const grant = await as.emergency!.post(`/api/v1/patients/${patient}/break-glass`, {
      reasonCategory: 'emergency-treatment',
      reason: REASON,
      minutes: 480,
    });
    const request = await as.owner!.post(
      `/api/v1/records/${(note.body as { id: string }).id}/amendment-requests`,
      {
        text: 'Synthetic amendment request text.',
      },
    );
    const boundary = 'idor-boundary';
    const file = await as.owner!.request(
      'POST',
      `/api/v1/patients/${patient}/files`,
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="idor.txt"\r\nContent-Type: text/plain\r\n\r\n${FILE_TEXT}\n\r\n--${boundary}--\r\n`,
      { headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } },
    );
    expect(file.status).toBe(201);
    const fileId = (file.body as { id: string }).id;
    const token = await as.owner!.post(`/api/v1/records/${fileId}/download-tokens`, {});
    expect(token.status).toBe(201);
    await reauth(a, as.admin!, staff.admin!);
    const integration = await as.admin!.post('/api/v1/admin/integrations', {
      name: 'Synthetic reminders',
      url: 'https://hooks.example.com/custos',
      purpose: 'Synthetic appointment reminders',
    });
    expect(integration.status).toBe(201);
    const pendingIntegration = await as.admin!.post('/api/v1/admin/integrations', {
      name: 'Synthetic calendar',
      url: 'https://calendar.example.com/custos',
      purpose: 'Synthetic calendar entries',
      fields: ['start', 'patientName'],
    });
    expect(pendingIntegration.status).toBe(201);
    const thread = await as.owner!.post(`/api/v1/patients/${patient}/threads`, {
      subject: SUBJECT,
      text: TEXT,
    });
    expect(thread.status).toBe(201);
    expect([created.status, note.status, psy.status, grant.status, request.status]).toEqual([
      201, 201, 201, 201, 201,
    ]);
    const registered = async (given: string) => {
      const r = await as.owner!.post('/api/v1/patients', {
        identity: identity({ name: { given: [given], family: 'Idormerge' } }),
      });
      expect(r.status).toBe(201);
      return (r.body as { id: string }).id;
    };
    const duplicate = await registered('Duplica');
    const mergedFrom = await registered('Mergefrom');
    const mergedInto = await registered('Mergeinto');
    await reauth(a, as.owner!, staff.owner!);
    const merge = await as.owner!.post(`/api/v1/patients/${mergedInto}/merge`, { sourceId: mergedFrom });
    expect(merge.status).toBe(200);
    const appointment = await as.owner!.post('/api/v1/appointments', {
      patientId: patient,
      clinicianId: staff.owner!.id,
      start: '2027-01-05T10:00:00Z',
      durationMinutes: 30,
    });
    const waiting = await as.owner!.post('/api/v1/waiting-list', { patientId: patient });
    expect([appointment.status, waiting.status]).toEqual([201, 201]);
    f = {
      patient,
      note: (note.body as { id: string }).id,
      psy: (psy.body as { id: string }).id,
      grant: (grant.body as { id: string }).id,
      colleague: staff.colleague!.id,
      request: (request.body as { id: string }).id,
      file: fileId,
      token: (token.body as { token: string }).token,
      thread: (thread.body as { id: string }).id,
      integration: (integration.body as { integration: { id: string } }).integration.id,
      pendingIntegration: (pendingIntegration.body as { integration: { id: string } }).integration.id,
      duplicate,
      merge: (merge.body as { mergeId: string }).mergeId,
      appointment: (appointment.body as { id: string }).id,
      waiting: (waiting.body as { id: string }).id,
      clinician: staff.owner!.id,
    };
  }, 240_000);
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  async function reauth(server: TestServer, client: Client, who: Staff) {
    const r = await client.post('/api/v1/auth/reauth', {
      password: PASSWORD,
      code: totpAt(who.secret, server.clock.now()),
    });
    expect(r.status).toBe(204);
    server.clock.advance(30_000);
  }
  const call = (client: Client, c: Case, id: string): Promise<Response> => {
    const method = c.route.split(' ')[0] as string;
    const path = fill(c, id, c.userId?.(f));
    const body = c.body?.(f);
    return client.request(method, path, method === 'GET' || method === 'DELETE' ? undefined : (body ?? {}));
  };
  const lastSeq = async () =>
    String(
      (
        await a.custos.database.owner
          .selectFrom('audit_entries')
          .select((eb) => eb.fn.max('seq').as('m'))
          .executeTakeFirst()
      )?.m ?? '0',
    );
  const entriesOf = (actorId: string, since: string) =>
    a.custos.database.owner
      .selectFrom('audit_entries')
      .selectAll()
      .where('seq', '>', since)
      .where('actor_id', '=', actorId)
      .orderBy('seq')
      .execute();

  const MARKERS = () => [
    FAMILY,
    'Idora',
    NOTE,
    PSY,
    REASON,
    FILE_TEXT,
    SUBJECT,
    TEXT,
    f.colleague,
    'MRN-00000001',
    'testa@example.org',
  ];

  /**
   * One denied attempt: the real id and an unknown one give byte-identical 404s, nothing of the
   * object, and one denial entry each for this actor.
   */
  async function expectDenied(c: Case, client: Client, actor: Staff, label: string, practiceId: string) {
    const before = await lastSeq();
    const real = await call(client, c, c.target(f));
    const mid = await lastSeq();
    const unknown = await call(client, c, randomUUID());
    const where = `${c.route} as ${label}`;
    expect(real.status, where).toBe(404);
    expect(real.text, where).toBe(unknown.text);
    expect(real.headers['content-type'], where).toBe(unknown.headers['content-type']);
    expect((real.body as { error: { code: string } }).error.code, where).toBe('CUSTOS_ERR_NOT_FOUND');
    for (const m of MARKERS()) {
      expect(real.text, where).not.toContain(m);
    }
    const realEntries = await entriesOf(actor.id, before);
    const forReal = realEntries.filter((e) => BigInt(e.seq) <= BigInt(mid));
    expect(
      forReal.map((e) => ({ outcome: e.outcome, practice: e.practice_id })),
      where,
    ).toEqual([{ outcome: 'denied', practice: practiceId }]);
    expect(
      realEntries.filter((e) => BigInt(e.seq) > BigInt(mid)).map((e) => e.outcome),
      where,
    ).toEqual(['denied']);
  }

  it('has a case or a reasoned exclusion for every route with an id, and no stale case', async () => {
    const spec = a.app.swagger() as { paths: Record<string, Record<string, unknown>> };
    const withId: string[] = [];
    for (const [path, methods] of Object.entries(spec.paths)) {
      if (!path.includes('{')) {
        continue;
      }
      for (const method of Object.keys(methods)) {
        withId.push(`${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`);
      }
    }
    expect(withId.length, 'routes with an id found in the route table').toBeGreaterThanOrEqual(CASES.length);
    const covered = new Set([...CASES.map((c) => c.route), ...Object.keys(EXCLUDED)]);
    expect(
      withId.filter((r) => !covered.has(r)),
      'routes with an id and no IDOR case',
    ).toEqual([]);
    expect(
      [...covered].filter((r) => !withId.includes(r)),
      'cases for routes that do not exist',
    ).toEqual([]);
    // Nothing under the chart or break-glass prefixes may hide among the exclusions.
    expect(Object.keys(EXCLUDED).filter((r) => /\/(patients|records|break-glass)\b/.test(r))).toEqual([]);
    // Every case says, for each role, either that it is denied (the default) or why it is let in.
    for (const c of CASES) {
      for (const who of Object.keys(c.allowed ?? {})) {
        expect(OUTSIDERS, c.route).toContain(who);
      }
    }
  });

  for (const c of CASES) {
    it(`${c.route}: every unrelated role and another practice get the 404 of a missing id, audited`, async () => {
      const denied = OUTSIDERS.filter((o) => c.allowed?.[o] === undefined);
      for (const who of denied) {
        if (c.stepUp) {
          await reauth(a, as[who]!, staff[who]!);
        }
        await expectDenied(c, as[who]!, staff[who]!, who, a.custos.practiceId);
      }
      if (c.stepUp) {
        await reauth(b, strangerClient, stranger);
      }
      await expectDenied(c, strangerClient, stranger, 'another practice', b.custos.practiceId);

      // A malformed id is answered like a missing one, for someone who may use the route.
      const legit = as[c.legit]!;
      if (c.stepUp) {
        await reauth(a, legit, staff[c.legit]!);
      }
      const unknown = await call(legit, c, randomUUID());
      for (const bad of ['not-a-uuid', '12345', `${randomUUID()}x`]) {
        const before = await lastSeq();
        const r = await call(legit, c, bad);
        expect({ status: r.status, text: r.text }, `${c.route} with ${bad}`).toEqual({
          status: 404,
          text: unknown.text,
        });
        expect(
          (await entriesOf(staff[c.legit]!.id, before)).map((e) => e.outcome),
          `${c.route} with ${bad}`,
        ).toEqual(['denied']);
      }
    });
  }

  it('left every object as it was', async () => {
    const owner = as.owner!;
    expect((await owner.get(`/api/v1/patients/${f.patient}`)).body).toMatchObject({
      version: 1,
      identity: { name: { family: FAMILY } },
    });
    expect((await owner.get(`/api/v1/records/${f.note}`)).body).toMatchObject({
      version: 1,
      body: { body: NOTE },
    });
    const records = (await owner.get(`/api/v1/patients/${f.patient}/records`)).body as {
      records: { id: string }[];
    };
    expect(records.records.map((r) => r.id).sort()).toEqual([f.note, f.psy, f.file].sort());
    expect((await owner.get(`/api/v1/patients/${f.patient}/consent`)).body).toMatchObject({ version: 0 });
    const team = (await owner.get(`/api/v1/patients/${f.patient}/care-team`)).body as {
      members: { userId: string; current: boolean }[];
    };
    expect(team.members.map((m) => [m.userId, m.current]).sort()).toEqual(
      [
        [staff.colleague!.id, true],
        [staff.owner!.id, true],
      ].sort(),
    );
    const db = a.custos.database.owner;
    const grants = await db.selectFrom('break_glass_grants').selectAll().orderBy('starts_at').execute();
    // The owner's grant, plus none from the denied attempts (clinOff and nurseOff were not asked).
    expect(grants.map((g) => [g.id, g.ended_at, g.reviewed_at])).toEqual([[f.grant, null, null]]);
    // Health-data tables are private to src/chart; counting rows needs no import of them.
    for (const table of ['record_shares', 'patient_consents']) {
      const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql.table(table)}`.execute(
        db,
      );
      expect(rows, table).toEqual([{ n: 0 }]);
    }
    const { rows: versions } = await sql<{
      n: number;
    }>`SELECT count(*)::int AS n FROM record_versions`.execute(db);
    expect(versions).toEqual([{ n: 3 }]);
    // The denied uploads stored nothing; the owner's token was never used up by another session.
    const tokens = await sql<{
      used: boolean;
    }>`SELECT used_at IS NOT NULL AS used FROM download_tokens`.execute(db);
    expect(tokens.rows).toEqual([{ used: false }]);
    // The step-up cases moved the clock past the idle timeout: log the colleague in afresh.
    as.colleague = new Client(a);
    await logIn(a, as.colleague, staff.colleague!);
    expect((await as.colleague.get(`/api/v1/records/${f.psy}`)).status).toBe(404);
    // The denied attempts decided no amendment request.
    const requests = await sql<{ status: string }>`SELECT status FROM amendment_requests`.execute(db);
    expect(requests.rows).toEqual([{ status: 'requested' }]);
    // The denied attempts moved, cancelled or booked no appointment and kept no hours.
    const appointments = await sql<{
      id: string;
      status: string;
      version: number;
    }>`SELECT id, status, version FROM appointments`.execute(db);
    expect(appointments.rows).toEqual([{ id: f.appointment, status: 'booked', version: 1 }]);
    const waiting = await sql<{ status: string }>`SELECT status FROM waiting_list_entries`.execute(db);
    expect(waiting.rows).toEqual([{ status: 'waiting' }]);
    const hours = await sql<{ n: number }>`SELECT count(*)::int AS n FROM working_hours`.execute(db);
    expect(hours.rows).toEqual([{ n: 0 }]);
    // The denied attempts changed no integration.
    const integrations = await sql<{ name: string; url: string; active: boolean; approval: string }>`
      SELECT name, url, active, approval FROM integrations ORDER BY name`.execute(db);
    expect(integrations.rows).toEqual([
      {
        name: 'Synthetic calendar',
        url: 'https://calendar.example.com/custos',
        active: true,
        approval: 'pending-approval',
      },
      {
        name: 'Synthetic reminders',
        url: 'https://hooks.example.com/custos',
        active: true,
        approval: 'not-required',
      },
    ]);
    // The denied attempts posted nothing and closed nothing.
    const threads = await sql<{ n: number; open: number }>`
      SELECT (SELECT count(*)::int FROM messages) AS n, count(*) FILTER (WHERE closed_at IS NULL)::int AS open
        FROM message_threads`.execute(db);
    expect(threads.rows).toEqual([{ n: 1, open: 1 }]);
    // The denied attempts merged nothing and undid no merge.
    const merges = await sql<{ undone: boolean }>`
      SELECT unmerged_at IS NOT NULL AS undone FROM patient_merges`.execute(db);
    expect(merges.rows).toEqual([{ undone: false }]);
    const duplicate = (await owner.get(`/api/v1/patients/${f.duplicate}`)).body as { active: boolean };
    expect(duplicate.active).toBe(true);
  });

  it('does not accept a session of another practice at all', async () => {
    const cookie = [...strangerClient.cookies];
    const foreign = new Client(a);
    for (const [k, v] of cookie) {
      foreign.cookies.set(k, v);
    }
    const r = await foreign.get(`/api/v1/patients/${f.patient}`);
    expect(r.status).toBe(401);
    expect(r.text).not.toContain(FAMILY);
  });
});

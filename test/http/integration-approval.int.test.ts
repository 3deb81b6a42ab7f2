import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { totpAt } from '../../src/identity/totp.ts';
import { verifyWebhookSignature } from '../../src/integrations/signature.ts';
import { skipReason } from '../support/db.ts';
import { identity } from '../support/fixtures.ts';
import { Client, expectError, type TestServer } from '../support/http.ts';
import { enrollStaff, logIn, PASSWORD, type Staff } from '../support/staff.ts';
import { certificate, Receiver, startWebhookServer } from '../support/webhooks.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] integration-approval.int.test.ts skipped: ${skip}`);
}

/**
 * The two-person rule (docs/integrations.md): an integration whose allow-list reads about the
 * patient through the gate sends nothing until a privacy officer, not the administrator who made
 * the change, approves exactly that configuration after a step-up.
 */

const FAMILY = 'Approvasynthetica';
const EMAIL = 'approval.synthetic@example.org';
const REJECTION = 'Synthetic rejection: no agreement with this receiver';

interface IntegrationView {
  id: string;
  name: string;
  url: string;
  fields: string[];
  status: string;
  version: number;
  active: boolean;
  approval: {
    state: string;
    required: boolean;
    submittedBy: string | null;
    reviewedBy: string | null;
    reason: string | null;
  };
}

describe.skipIf(skip)('integrations that disclose patient identity need a privacy officer’s approval', () => {
  let server: TestServer;
  let receiver: Receiver;
  let base: string;
  const staff: Record<string, Staff> = {};
  const as: Record<string, Client> = {};
  const secrets = new Map<string, string>();
  let patientId: string;
  let identifying: IntegrationView;
  let slots: IntegrationView;
  let dualOwn: IntegrationView;
  let clinicianBoard: IntegrationView;
  /** Bookings use a new half hour each (no conflicts). */
  let slot = 0;

  beforeAll(async () => {
    const tls = await certificate();
    receiver = new Receiver(tls);
    base = await receiver.listen();
    server = await startWebhookServer(tls.cert);
    for (const [name, roles] of Object.entries({
      admin: ['admin'],
      admin2: ['admin'],
      officer: ['privacy_officer'],
      // One account holding both roles: it may configure and approve, but never its own change.
      dual: ['admin', 'privacy_officer'],
      doc: ['clinician'],
      desk: ['frontdesk'],
    })) {
      staff[name] = await enrollStaff(server, new Client(server), name, roles);
      as[name] = new Client(server);
      await logIn(server, as[name], staff[name]!);
    }
    const p = await as.doc!.post('/api/v1/patients', {
      identity: identity({ name: { given: ['Appra'], family: FAMILY }, email: EMAIL }),
    });
    expect(p.status).toBe(201);
    patientId = (p.body as { id: string }).id;
    const hours = ['mon', 'tue', 'wed', 'thu', 'fri'].map((weekday) => ({
      weekday,
      start: '08:00',
      end: '18:00',
    }));
    const set = await as.doc!.request('PUT', `/api/v1/clinicians/${staff.doc!.id}/hours`, { hours });
    expect(set.status, set.text).toBe(200);
  }, 240_000);
  afterAll(async () => {
    await server?.close();
    await receiver?.close();
  });

  /** A re-authentication now (logging in afresh when the session went idle meanwhile). */
  const reauth = async (who: string) => {
    const body = () => ({ password: PASSWORD, code: totpAt(staff[who]!.secret, server.clock.now()) });
    let r = await as[who]!.post('/api/v1/auth/reauth', body());
    if (r.status === 401) {
      as[who] = new Client(server);
      await logIn(server, as[who], staff[who]!);
      r = await as[who].post('/api/v1/auth/reauth', body());
    }
    expect(r.status, r.text).toBe(204);
    server.clock.advance(30_000);
  };
  const create = async (who: string, body: Record<string, unknown>) => {
    const r = await as[who]!.post('/api/v1/admin/integrations', body);
    expect(r.status, r.text).toBe(201);
    const { integration, secret } = r.body as { integration: IntegrationView; secret: string };
    secrets.set(integration.id, secret);
    return integration;
  };
  /** Approves or rejects; without an explicit expectedVersion, the integration's current one. */
  const decide = async (
    who: string,
    id: string,
    what: 'approve' | 'reject',
    body: Record<string, unknown> = {},
  ) => {
    const row = await server.custos.database.owner
      .selectFrom('integrations' as never)
      .select('version' as never)
      .where('id' as never, '=', id as never)
      .executeTakeFirst();
    const version = (row as { version?: number } | undefined)?.version;
    const sent =
      'expectedVersion' in body || version === undefined ? body : { ...body, expectedVersion: version };
    return as[who]!.post(`/api/v1/admin/integrations/${id}/${what}`, sent);
  };
  /** Books an appointment through the API (the webhook deliveries are queued before it answers). */
  const book = async () => {
    const start = new Date(Date.UTC(2026, 11, 1, 8, 0) + slot++ * 30 * 60_000);
    const body = {
      patientId,
      clinicianId: staff.doc!.id,
      start: start.toISOString(),
      durationMinutes: 30,
      room: 'Room 4',
    };
    let r = await as.doc!.post('/api/v1/appointments', body);
    if (r.status === 401) {
      // The step-up tests move the clock past the idle timeout of an unused session.
      as.doc = new Client(server);
      await logIn(server, as.doc, staff.doc!);
      r = await as.doc.post('/api/v1/appointments', body);
    }
    expect(r.status, r.text).toBe(201);
    return (r.body as { id: string }).id;
  };
  const deliveriesOf = async (integrationId: string) =>
    (
      await sql<{
        id: string;
        status: string | null;
        delivered: boolean;
        given_up: boolean;
      }>`SELECT id, last_status AS status, delivered_at IS NOT NULL AS delivered, gave_up_at IS NOT NULL AS given_up
        FROM webhook_deliveries WHERE integration_id = ${integrationId} ORDER BY created_at, id`.execute(
        server.custos.database.owner,
      )
    ).rows;
  const deliver = () => server.services.webhooks.deliverDue(server.clock.now());
  const entries = (action: string) =>
    server.custos.database.owner
      .selectFrom('audit_entries')
      .selectAll()
      .where('action', '=', action)
      .orderBy('seq')
      .execute();
  const detailOf = (e: { detail: unknown } | undefined) => (e?.detail ?? {}) as Record<string, unknown>;
  const listAs = async (who: string, query = '') => {
    const r = await as[who]!.get(`/api/v1/admin/integrations${query}`);
    expect(r.status, r.text).toBe(200);
    return { list: (r.body as { integrations: IntegrationView[] }).integrations, text: r.text };
  };

  it('creates an integration that reads patient identity as pending-approval, and queues nothing for it', async () => {
    await reauth('admin');
    identifying = await create('admin', {
      name: 'Patient calendar',
      url: `${base}/identity`,
      purpose: 'Calendar entries for patients',
      fields: ['start', 'end', 'appointmentId', 'patientName', 'patientEmail'],
      events: ['booked'],
    });
    expect(identifying).toMatchObject({
      status: 'pending-approval',
      active: true,
      version: 1,
      approval: { state: 'pending-approval', required: true, submittedBy: staff.admin!.id, reviewedBy: null },
    });
    // Time slot, opaque id and room: nothing read through the gate, so no approval is needed.
    slots = await create('admin', {
      name: 'Room display',
      url: `${base}/slots`,
      purpose: 'Room occupancy display',
      fields: ['start', 'end', 'appointmentId', 'room'],
      events: ['booked'],
    });
    expect(slots).toMatchObject({ status: 'active', approval: { state: 'not-required', required: false } });
    // So does the clinician's name: it is read under the patient's appointments, through the gate.
    clinicianBoard = await create('admin', {
      name: 'Clinician board',
      url: `${base}/clinician`,
      purpose: 'Clinician schedule board',
      fields: ['start', 'clinicianName'],
    });
    expect(clinicianBoard.status).toBe('pending-approval');

    const before = receiver.requests.length;
    await book();
    const results = await deliver();
    expect(results.map((r) => [r.integrationId, r.outcome])).toEqual([[slots.id, 'delivered']]);
    expect(receiver.requests.slice(before).map((r) => r.path)).toEqual(['/slots']);
    // Not even queued: no payload naming the patient was built or stored for it.
    expect(await deliveriesOf(identifying.id)).toEqual([]);
    expect(await deliveriesOf(clinicianBoard.id)).toEqual([]);
    const disclosed = await entries('disclose');
    expect(disclosed.map((e) => (detailOf(e) as { recipient: string }).recipient)).toEqual([slots.id]);
    const created = (await entries('integration-created')).find((e) => e.resource_id === identifying.id);
    expect(detailOf(created)).toMatchObject({
      approval: 'pending-approval',
      fields: ['start', 'end', 'appointmentId', 'patientName', 'patientEmail'],
    });
  });

  it('lets neither the administrator who made the change nor any other role approve it, audited', async () => {
    for (const who of ['admin', 'admin2', 'doc', 'desk']) {
      await reauth(who);
      expectError(await decide(who, identifying.id, 'approve'), 404, 'CUSTOS_ERR_NOT_FOUND');
      expectError(
        await decide(who, identifying.id, 'reject', { reason: REJECTION }),
        404,
        'CUSTOS_ERR_NOT_FOUND',
      );
    }
    // An account holding both roles does not approve its own change, nor reject it.
    await reauth('dual');
    dualOwn = await create('dual', {
      name: 'Dual calendar',
      url: `${base}/dual`,
      purpose: 'Calendar entries for patients',
      fields: ['start', 'patientName'],
      events: ['booked'],
    });
    expect(dualOwn.status).toBe('pending-approval');
    const own = await decide('dual', dualOwn.id, 'approve');
    expectError(own, 409, 'CUSTOS_ERR_CONFLICT');
    expect(own.text).toContain('nobody decides on a change of their own');
    expectError(
      await decide('dual', dualOwn.id, 'reject', { reason: REJECTION }),
      409,
      'CUSTOS_ERR_CONFLICT',
    );

    const denied = (await entries('integration-approved')).filter((e) => e.outcome === 'denied');
    expect(denied.map((e) => [e.actor_id, e.resource_id, e.reason])).toEqual([
      [staff.admin!.id, identifying.id, 'role'],
      [staff.admin2!.id, identifying.id, 'role'],
      [staff.doc!.id, identifying.id, 'role'],
      [staff.desk!.id, identifying.id, 'role'],
      [staff.dual!.id, dualOwn.id, 'own-change'],
    ]);
    // The refusal of the own change names the allow-list it was about.
    expect(detailOf(denied.at(-1))).toMatchObject({ fields: ['start', 'patientName'] });
    expect((await entries('integration-rejected')).map((e) => e.outcome)).toEqual(Array(5).fill('denied'));
    expect((await entries('integration-approved')).filter((e) => e.outcome === 'success')).toEqual([]);
    const { list } = await listAs('admin');
    expect(list.find((i) => i.id === identifying.id)?.status).toBe('pending-approval');
  });

  it('asks the privacy officer for a re-authentication within 5 minutes', async () => {
    // A login counts as an authentication: six minutes later it no longer does.
    as.officer = new Client(server);
    await logIn(server, as.officer, staff.officer!);
    server.clock.advance(6 * 60_000);
    expectError(await decide('officer', identifying.id, 'approve'), 403, 'CUSTOS_ERR_STEP_UP');
    await reauth('officer');
    server.clock.advance(5 * 60_000);
    expectError(await decide('officer', identifying.id, 'approve'), 403, 'CUSTOS_ERR_STEP_UP');
    expectError(
      await decide('officer', identifying.id, 'reject', { reason: REJECTION }),
      403,
      'CUSTOS_ERR_STEP_UP',
    );
  });

  it('lists the integrations waiting for approval for the privacy officer, never a secret', async () => {
    const pending = await listAs('officer', '?status=pending');
    expect(pending.list.map((i) => i.id).sort()).toEqual(
      [identifying.id, dualOwn.id, clinicianBoard.id].sort(),
    );
    for (const s of secrets.values()) {
      expect(pending.text).not.toContain(s);
    }
    expect(pending.text).not.toMatch(/whsec_|"secret"/);
    const active = await listAs('officer', '?status=active');
    expect(active.list.map((i) => i.id)).toEqual([slots.id]);
    expect((await listAs('admin', '?status=pending-approval')).list).toHaveLength(3);
    expectError(
      await as.officer!.get('/api/v1/admin/integrations?status=whatever'),
      400,
      'CUSTOS_ERR_VALIDATION',
      'query.status',
    );
    expectError(await as.doc!.get('/api/v1/admin/integrations?status=pending'), 404, 'CUSTOS_ERR_NOT_FOUND');
    // The officer lists; configuring stays the administrator's.
    await reauth('officer');
    expectError(
      await as.officer!.request('PATCH', `/api/v1/admin/integrations/${identifying.id}`, { name: 'x' }),
      404,
      'CUSTOS_ERR_NOT_FOUND',
    );
    expectError(
      await as.officer!.get(`/api/v1/admin/integrations/${identifying.id}/deliveries`),
      404,
      'CUSTOS_ERR_NOT_FOUND',
    );
    const listed = await entries('integration-list');
    expect(listed.some((e) => e.actor_id === staff.officer!.id && e.outcome === 'success')).toBe(true);
  });

  it('approves exactly the version reviewed; then deliveries carry the identity and are disclosed', async () => {
    await reauth('officer');
    const stale = await decide('officer', identifying.id, 'approve', {
      expectedVersion: identifying.version + 5,
    });
    expectError(stale, 412, 'CUSTOS_ERR_VERSION_CONFLICT');
    expectError(
      await decide('officer', identifying.id, 'approve', { expectedVersion: 'one' }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.expectedVersion',
    );
    // Without the version reviewed, nothing is approved: a change just before the click would be.
    expectError(
      await as.officer!.post(`/api/v1/admin/integrations/${identifying.id}/approve`, {}),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.expectedVersion',
    );
    expectError(
      await as.officer!.post(`/api/v1/admin/integrations/${identifying.id}/reject`, {
        reason: 'Synthetic reason',
      }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.expectedVersion',
    );
    const ok = await decide('officer', identifying.id, 'approve', { expectedVersion: identifying.version });
    expect(ok.status, ok.text).toBe(200);
    identifying = ok.body as IntegrationView;
    expect(identifying).toMatchObject({
      status: 'active',
      version: 2,
      approval: {
        state: 'approved',
        submittedBy: staff.admin!.id,
        reviewedBy: staff.officer!.id,
        reason: null,
      },
    });
    expect(ok.text).not.toMatch(/whsec_|"secret"/);
    // Once: nothing waits any more.
    expectError(await decide('officer', identifying.id, 'approve'), 409, 'CUSTOS_ERR_CONFLICT');

    const before = receiver.requests.length;
    await book();
    const results = await deliver();
    expect(results.map((r) => r.integrationId).sort()).toEqual([identifying.id, slots.id].sort());
    expect(results.every((r) => r.outcome === 'delivered')).toBe(true);
    const sent = receiver.requests.slice(before).find((r) => r.path === '/identity');
    const body = JSON.parse(sent!.body) as { data: Record<string, string> };
    expect(body.data).toMatchObject({ patientName: `Appra ${FAMILY}`, patientEmail: EMAIL });
    expect(
      verifyWebhookSignature(
        secrets.get(identifying.id)!,
        sent!.headers['custos-signature'] as string,
        sent!.body,
        server.clock.now(),
      ).ok,
    ).toBe(true);
    // The accounting of disclosures names the receiver and what it got.
    const acc = await as.officer!.get(`/api/v1/patients/${patientId}/disclosures`);
    expect(acc.status).toBe(200);
    const mine = (
      acc.body as { disclosures: { recipient: { id: string }; fields: Record<string, string> }[] }
    ).disclosures.filter((d) => d.recipient.id === identifying.id);
    expect(mine).toHaveLength(1);
    expect(mine[0]!.fields).toMatchObject({ patientName: `Appra ${FAMILY}`, patientEmail: EMAIL });

    // The approval is audited: the officer, the integration, the allow-list, the outcome.
    const approved = (await entries('integration-approved')).filter((e) => e.outcome === 'success');
    expect(approved).toHaveLength(1);
    expect(approved[0]).toMatchObject({
      actor_id: staff.officer!.id,
      resource_id: identifying.id,
      resource_type: 'integration',
      purpose: 'audit',
    });
    expect(detailOf(approved[0]!)).toMatchObject({
      fields: ['start', 'end', 'appointmentId', 'patientName', 'patientEmail'],
      events: ['booked'],
      approval: 'approved',
      reviewedVersion: 1,
      submittedBy: staff.admin!.id,
    });
    const stales = (await entries('integration-approved')).filter((e) => e.reason === 'stale-version');
    expect(stales.map((e) => e.actor_id)).toEqual([staff.officer!.id]);
  });

  it('keeps the approval through a rename, and drops it when the administrator changes the URL: deliveries stop', async () => {
    await reauth('admin');
    const path = `/api/v1/admin/integrations/${identifying.id}`;
    const renamed = await as.admin!.request('PATCH', path, { name: 'Patient calendar 2' });
    expect(renamed.body).toMatchObject({ status: 'active', approval: { state: 'approved' } });
    // One queued for the approved configuration, then the URL moves before it is sent.
    await book();
    const queued = await deliveriesOf(identifying.id);
    expect(queued.at(-1)).toMatchObject({ delivered: false, given_up: false });
    const moved = await as.admin!.request('PATCH', path, { url: `${base}/elsewhere` });
    expect(moved.status, moved.text).toBe(200);
    expect(moved.body).toMatchObject({
      status: 'pending-approval',
      approval: { state: 'pending-approval', submittedBy: staff.admin!.id, reviewedBy: null },
    });
    // What was queued for the approved URL is given up, not sent to the new one.
    expect((await deliveriesOf(identifying.id)).at(-1)).toMatchObject({
      status: 'configuration-changed',
      given_up: true,
    });
    const before = receiver.requests.length;
    await book();
    await deliver();
    // The room display gets both bookings; the moved integration nothing, at either URL.
    expect(receiver.requests.slice(before).map((r) => r.path)).toEqual(['/slots', '/slots']);
    expect((await deliveriesOf(identifying.id)).length).toBe(queued.length);
    // The same holds for a change of the allow-list or the events: back to pending.
    await reauth('officer');
    expect((await decide('officer', identifying.id, 'approve')).status).toBe(200);
    await reauth('admin');
    const widened = await as.admin!.request('PATCH', path, {
      fields: ['start', 'end', 'appointmentId', 'patientName', 'patientEmail', 'patientPhone'],
    });
    expect(widened.body).toMatchObject({ status: 'pending-approval' });
    await reauth('officer');
    expect((await decide('officer', identifying.id, 'approve')).status).toBe(200);
    await reauth('admin');
    const events = await as.admin!.request('PATCH', path, { events: ['booked', 'cancelled'] });
    expect(events.body).toMatchObject({ status: 'pending-approval' });
    const updated = (await entries('integration-updated')).filter((e) => e.resource_id === identifying.id);
    expect(detailOf(updated.at(-1))).toMatchObject({ approval: 'pending-approval' });
  });

  it('rejects with a reason the administrator sees; it stays silent until its configuration changes', async () => {
    await reauth('officer');
    expectError(
      await decide('officer', identifying.id, 'reject', {}),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.reason',
    );
    const r = await decide('officer', identifying.id, 'reject', { reason: REJECTION });
    expect(r.status, r.text).toBe(200);
    expect(r.body).toMatchObject({ status: 'rejected', approval: { state: 'rejected', reason: REJECTION } });
    const { list } = await listAs('admin');
    expect(list.find((i) => i.id === identifying.id)).toMatchObject({
      status: 'rejected',
      approval: { state: 'rejected', reviewedBy: staff.officer!.id, reason: REJECTION },
    });
    const before = receiver.requests.length;
    const count = (await deliveriesOf(identifying.id)).length;
    await book();
    await deliver();
    expect(receiver.requests.slice(before).map((r) => r.path)).toEqual(['/slots']);
    expect(await deliveriesOf(identifying.id)).toHaveLength(count);
    // Audited with the allow-list and the outcome; the reason itself stays out of the trail.
    const rejected = (await entries('integration-rejected')).filter((e) => e.outcome === 'success');
    expect(rejected.map((e) => [e.actor_id, e.resource_id])).toEqual([[staff.officer!.id, identifying.id]]);
    expect(detailOf(rejected[0]!)).toMatchObject({
      fields: ['start', 'end', 'appointmentId', 'patientName', 'patientEmail', 'patientPhone'],
      approval: 'rejected',
    });
    expect(JSON.stringify(rejected)).not.toContain(REJECTION);
    // A rename keeps the rejection; dropping the identifying fields needs no approval.
    await reauth('admin');
    const path = `/api/v1/admin/integrations/${identifying.id}`;
    expect((await as.admin!.request('PATCH', path, { name: 'Patient calendar 3' })).body).toMatchObject({
      status: 'rejected',
    });
    const plain = await as.admin!.request('PATCH', path, { fields: ['start', 'end'] });
    expect(plain.body).toMatchObject({ status: 'active', approval: { state: 'not-required', reason: null } });
    const again = receiver.requests.length;
    await book();
    await deliver();
    expect(
      receiver.requests
        .slice(again)
        .map((r) => r.path)
        .sort(),
    ).toEqual(['/elsewhere', '/slots']);
    const sent = receiver.requests.slice(again).find((r) => r.path === '/elsewhere');
    expect(Object.keys((JSON.parse(sent!.body) as { data: object }).data)).toEqual(['start', 'end']);
  });

  it('lets another privacy officer approve the change of an account holding both roles, and withdraw it', async () => {
    await reauth('officer');
    expect((await decide('officer', dualOwn.id, 'approve')).body).toMatchObject({ status: 'active' });
    const before = receiver.requests.length;
    await book();
    await deliver();
    expect(
      receiver.requests
        .slice(before)
        .map((r) => r.path)
        .sort(),
    ).toEqual(['/dual', '/elsewhere', '/slots']);
    // The officer withdraws the approval: nothing more is sent, and what is queued is given up.
    await book();
    const withdrawn = await decide('officer', dualOwn.id, 'reject', { reason: REJECTION });
    expect(withdrawn.body).toMatchObject({ status: 'rejected' });
    const undelivered = (await deliveriesOf(dualOwn.id)).filter((d) => !d.delivered);
    expect(undelivered.map((d) => [d.status, d.given_up])).toEqual([['approval-rejected', true]]);
    const after = receiver.requests.length;
    await deliver();
    expect(
      receiver.requests
        .slice(after)
        .map((r) => r.path)
        .sort(),
    ).toEqual(['/elsewhere', '/slots']);
  });

  it('never stored an approval or a queued payload for a configuration nobody approved', async () => {
    const { rows } = await sql<{ approval: string; n: number }>`
      SELECT i.approval, count(d.id)::int AS n FROM integrations i
        LEFT JOIN webhook_deliveries d ON d.integration_id = i.id
          AND d.delivered_at IS NULL AND d.gave_up_at IS NULL
        GROUP BY i.id, i.approval`.execute(server.custos.database.owner);
    for (const r of rows) {
      if (r.approval === 'pending-approval' || r.approval === 'rejected') {
        expect(r.n).toBe(0);
      }
    }
    // The database refuses an approved row without the configuration it approved.
    await expect(
      sql`UPDATE integrations SET approval = 'approved', approved_config_hash = NULL WHERE id = ${identifying.id}`.execute(
        server.custos.database.owner,
      ),
    ).rejects.toThrow();
  });
});

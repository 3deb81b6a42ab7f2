import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyWebhookSignature } from '../../src/integrations/signature.ts';
import { type AttemptResult, Webhooks } from '../../src/integrations/webhooks.ts';
import type { AppointmentEvent } from '../../src/scheduling/events.ts';
import { skipReason } from '../support/db.ts';
import { identity } from '../support/fixtures.ts';
import { Client, expectError, type TestServer } from '../support/http.ts';
import { enrollStaff, logIn, reauth as reauthAs, type Staff } from '../support/staff.ts';
import { certificate, Receiver, startWebhookServer } from '../support/webhooks.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] integrations-api.int.test.ts skipped: ${skip}`);
}

const FAMILY = 'Webhooksynthetica';
const EMAIL = 'webhook.synthetic@example.org';
const PHONE = '+31 6 0000 0077';
const PURPOSE = 'Appointment reminders by text message';

interface IntegrationView {
  id: string;
  name: string;
  fields: string[];
  events: string[];
  purpose: string;
  active: boolean;
  status: string;
  version: number;
}

describe.skipIf(skip)('integrations and disclosures over HTTPS', () => {
  let server: TestServer;
  let receiver: Receiver;
  let stranger: Receiver;
  let base: string;
  let strangerBase: string;
  let receiverCert: string;
  const staff: Record<string, Staff> = {};
  const as: Record<string, Client> = {};
  let patientId: string;
  const secrets = new Map<string, string>();
  let slots: IntegrationView;
  let named: IntegrationView;

  beforeAll(async () => {
    const tls = await certificate();
    receiverCert = tls.cert;
    receiver = new Receiver(tls);
    base = await receiver.listen();
    // A receiver whose certificate nobody trusts: delivery must fail, never skip verification.
    stranger = new Receiver(await certificate());
    strangerBase = await stranger.listen();
    server = await startWebhookServer(tls.cert);
    for (const [name, roles] of Object.entries({
      admin: ['admin'],
      doc: ['clinician'],
      officer: ['privacy_officer'],
      desk: ['frontdesk'],
      other: ['clinician'],
    })) {
      staff[name] = await enrollStaff(server, new Client(server), name, roles);
      as[name] = new Client(server);
      await logIn(server, as[name], staff[name]!);
    }
    const p = await as.doc!.post('/api/v1/patients', {
      identity: identity({ name: { given: ['Hooka'], family: FAMILY }, email: EMAIL, phone: PHONE }),
    });
    expect(p.status).toBe(201);
    patientId = (p.body as { id: string }).id;
  }, 240_000);
  afterAll(async () => {
    await server?.close();
    await receiver?.close();
    await stranger?.close();
  });

  const reauth = (who: string) => reauthAs(server, as[who]!, staff[who]!);
  const create = async (body: Record<string, unknown>) => {
    const r = await as.admin!.post('/api/v1/admin/integrations', body);
    expect(r.status, r.text).toBe(201);
    const { integration, secret } = r.body as { integration: IntegrationView; secret: string };
    secrets.set(integration.id, secret);
    return integration;
  };
  const event = (
    kind: AppointmentEvent['kind'],
    appointmentId: string,
    startHour = 10,
  ): AppointmentEvent => ({
    kind,
    practiceId: server.custos.practiceId,
    appointmentId,
    patientId,
    clinicianId: staff.doc!.id,
    room: 'Room 2',
    start: new Date(Date.UTC(2026, 11, 1, startHour, 0)),
    end: new Date(Date.UTC(2026, 11, 1, startHour, 45)),
    at: server.clock.now(),
  });
  const deliver = (at: Date = server.clock.now()): Promise<AttemptResult[]> =>
    server.services.webhooks.deliverDue(at);

  it('lets only an administrator, after a step-up, configure integrations, refusing clinical fields by name', async () => {
    const body = { name: 'Reminder service', url: `${base}/slots`, purpose: PURPOSE };
    // Not an administrator: the 404 of a route the role does not reach.
    await reauth('doc');
    expectError(await as.doc!.post('/api/v1/admin/integrations', body), 404, 'CUSTOS_ERR_NOT_FOUND');
    expectError(await as.officer!.post('/api/v1/admin/integrations', body), 404, 'CUSTOS_ERR_NOT_FOUND');
    // The administrator without a recent re-authentication.
    server.clock.advance(6 * 60_000);
    expectError(await as.admin!.post('/api/v1/admin/integrations', body), 403, 'CUSTOS_ERR_STEP_UP');
    await reauth('admin');
    for (const [fields, index, name] of [
      [['start', 'reason'], 1, 'reason'],
      [['diagnosis'], 0, 'diagnosis'],
      [['start', 'end', 'notes'], 2, 'notes'],
    ] as const) {
      const r = await as.admin!.post('/api/v1/admin/integrations', { ...body, fields });
      expectError(r, 400, 'CUSTOS_ERR_VALIDATION', `body.fields.${index}`);
      expect((r.body as { error: { message: string } }).error.message).toContain(`"${name}"`);
    }
    expectError(
      await as.admin!.post('/api/v1/admin/integrations', { ...body, url: `http://127.0.0.1:1/x` }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.url',
    );
    expectError(
      await as.admin!.post('/api/v1/admin/integrations', { ...body, events: ['exploded'] }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.events.0',
    );
    expectError(
      await as.admin!.post('/api/v1/admin/integrations', { ...body, purpose: '' }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.purpose',
    );

    // Time slot and opaque id only (the default), every event but no-show.
    slots = await create(body);
    expect(slots).toMatchObject({
      fields: ['start', 'end', 'appointmentId'],
      events: ['booked', 'rescheduled', 'cancelled'],
      purpose: PURPOSE,
      active: true,
    });
    expect(secrets.get(slots.id)).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    // A receiver that also gets the patient's name and contact details, on booking only.
    named = await create({
      name: 'Calendar bridge',
      url: `${base}/named`,
      purpose: 'Calendar entries for the patient',
      fields: [
        'start',
        'end',
        'appointmentId',
        'patientName',
        'patientEmail',
        'patientPhone',
        'room',
        'clinicianName',
      ],
      events: ['booked'],
    });
    // It reads the patient's identity through the gate: a privacy officer approves it first
    // (the two-person rule; integration-approval.int.test.ts covers it in full).
    expect(named.status).toBe('pending-approval');
    expect(slots.status).toBe('active');
    await reauth('officer');
    const approved = await as.officer!.post(`/api/v1/admin/integrations/${named.id}/approve`, {
      expectedVersion: named.version,
    });
    expect(approved.status, approved.text).toBe(200);
    expect(approved.body).toMatchObject({ id: named.id, status: 'active', approval: { state: 'approved' } });
    expect(approved.text).not.toMatch(/whsec_|"secret"/);

    // The secret was shown once: lists never carry it.
    const list = await as.admin!.get('/api/v1/admin/integrations');
    expect(list.status).toBe(200);
    expect((list.body as { integrations: IntegrationView[] }).integrations.map((i) => i.id).sort()).toEqual(
      [slots.id, named.id].sort(),
    );
    for (const s of secrets.values()) {
      expect(list.text).not.toContain(s);
    }
    expect(list.text).not.toMatch(/whsec_|"secret"/);
    expectError(await as.doc!.get('/api/v1/admin/integrations'), 404, 'CUSTOS_ERR_NOT_FOUND');

    // The secret is stored sealed, never in the clear.
    const raw = await sql<{ secret: Buffer }>`SELECT secret FROM integrations`.execute(
      server.custos.database.owner,
    );
    for (const r of raw.rows) {
      for (const s of secrets.values()) {
        expect(r.secret.toString('latin1')).not.toContain(s);
      }
    }
    // Every change is audited with the allow-list.
    const audited = await server.custos.database.owner
      .selectFrom('audit_entries')
      .select(['action', 'outcome', 'actor_id', 'resource_id', 'detail'])
      .where('action', '=', 'integration-created')
      .where('outcome', '=', 'success')
      .execute();
    expect(audited.map((e) => e.resource_id).sort()).toEqual([slots.id, named.id].sort());
  });

  it('sends exactly the allow-listed fields, signed, and records each delivery as a disclosure', async () => {
    const appointmentId = randomUUID();
    const booked = event('booked', appointmentId);
    const before = receiver.requests.length;
    await server.services.appointmentEvents.emit(booked);
    const results = await deliver();
    expect(results.map((r) => r.outcome)).toEqual(['delivered', 'delivered']);
    const got = receiver.requests.slice(before);
    expect(got.map((r) => r.path).sort()).toEqual(['/named', '/slots']);
    for (const r of got) {
      const integration = r.path === '/slots' ? slots : named;
      const body = JSON.parse(r.body) as {
        id: string;
        event: string;
        occurredAt: string;
        data: Record<string, string | null>;
      };
      // The signature verifies with that integration's secret only, over the exact bytes.
      const header = r.headers['custos-signature'] as string;
      expect(
        verifyWebhookSignature(secrets.get(integration.id)!, header, r.body, server.clock.now()),
      ).toMatchObject({
        ok: true,
      });
      const otherSecret = secrets.get(integration === slots ? named.id : slots.id)!;
      expect(verifyWebhookSignature(otherSecret, header, r.body, server.clock.now()).ok).toBe(false);
      expect(r.headers['custos-delivery-id']).toBe(body.id);
      expect(r.headers['custos-event']).toBe('appointment.booked');
      expect(r.headers['content-type']).toBe('application/json');
      expect(Object.keys(body).sort()).toEqual(['data', 'event', 'id', 'occurredAt']);
      expect(body.event).toBe('appointment.booked');
      // Exactly the allow-list, in its order.
      expect(Object.keys(body.data)).toEqual(integration.fields);
      expect(body.data.start).toBe('2026-12-01T10:00:00.000Z');
      expect(body.data.end).toBe('2026-12-01T10:45:00.000Z');
      expect(body.data.appointmentId).toMatch(/^apt_[A-Za-z0-9_-]{22}$/);
      // Never the internal ids.
      expect(r.body).not.toContain(appointmentId);
      expect(r.body).not.toContain(patientId);
    }
    const bodies = Object.fromEntries(
      got.map((r) => [r.path, JSON.parse(r.body) as { data: Record<string, string | null> }]),
    );
    expect(bodies['/slots']!.data).not.toHaveProperty('patientName');
    expect(JSON.stringify(bodies['/slots'])).not.toContain(FAMILY);
    expect(bodies['/named']!.data).toMatchObject({
      patientName: `Hooka ${FAMILY}`,
      patientEmail: EMAIL,
      patientPhone: PHONE,
      room: 'Room 2',
      clinicianName: 'doc',
    });
    // Opaque ids differ between receivers (they cannot join their data).
    expect(bodies['/slots']!.data.appointmentId).not.toBe(bodies['/named']!.data.appointmentId);

    // The accounting of disclosures: recipient, purpose, date and what was sent.
    const disclosedAt = server.clock.now().toISOString();
    const r = await as.doc!.get(`/api/v1/patients/${patientId}/disclosures`);
    expect(r.status).toBe(200);
    const list = (r.body as { disclosures: Record<string, unknown>[] }).disclosures;
    expect(list).toHaveLength(2);
    const byRecipient = Object.fromEntries(list.map((d) => [(d.recipient as { id: string }).id, d]));
    expect(byRecipient[named.id]).toMatchObject({
      recipient: { id: named.id, name: 'Calendar bridge' },
      purpose: 'Calendar entries for the patient',
      event: 'appointment.booked',
      disclosedAt,
      disclosedBy: 'system',
      fields: bodies['/named']!.data,
      delivery: { status: 'delivered', deliveredAt: disclosedAt },
    });
    expect(byRecipient[slots.id]).toMatchObject({
      recipient: { id: slots.id, name: 'Reminder service' },
      purpose: PURPOSE,
      fields: bodies['/slots']!.data,
      delivery: { status: 'delivered' },
    });
    // The privacy officer reads it too.
    const officer = await as.officer!.get(`/api/v1/patients/${patientId}/disclosures`);
    expect(officer.status).toBe(200);
    expect((officer.body as { disclosures: unknown[] }).disclosures).toHaveLength(2);

    // The gate read is audited: system actor, purpose operations, on behalf of the administrator,
    // the patient's pseudonym and the field names, never the values.
    const entries = await server.custos.database.owner
      .selectFrom('audit_entries')
      .selectAll()
      .where('action', '=', 'disclose')
      .execute();
    expect(entries).toHaveLength(2);
    for (const e of entries) {
      expect(e).toMatchObject({
        actor_kind: 'system',
        purpose: 'operations',
        on_behalf_of: staff.admin!.id,
        outcome: 'success',
        resource_type: 'disclosure',
      });
      expect(e.patient_pseudonym).toMatch(/^ps_/);
      const text = JSON.stringify(e);
      for (const m of [FAMILY, EMAIL, PHONE, 'Hooka']) {
        expect(text).not.toContain(m);
      }
    }
    const reads = await server.custos.database.owner
      .selectFrom('audit_entries')
      .selectAll()
      .where('action', '=', 'list')
      .where('resource_type', '=', 'disclosure')
      .execute();
    expect(reads.map((e) => [e.actor_id, e.outcome]).sort()).toEqual(
      [
        [staff.doc!.id, 'success'],
        [staff.officer!.id, 'success'],
      ].sort(),
    );

    // Nothing readable at rest: the delivered payloads are gone, the disclosures sealed.
    for (const table of ['webhook_deliveries', 'disclosures']) {
      const { rows } = await sql<Record<string, unknown>>`SELECT * FROM ${sql.table(table)}`.execute(
        server.custos.database.owner,
      );
      const text = rows
        .map((x) =>
          JSON.stringify(x, (_k, v) => (v?.type === 'Buffer' ? Buffer.from(v.data).toString('latin1') : v)),
        )
        .join('\n');
      for (const m of [FAMILY, EMAIL, PHONE, 'Hooka']) {
        expect(text, table).not.toContain(m);
      }
    }
    const { rows: payloads } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM webhook_deliveries
      WHERE payload IS NOT NULL`.execute(server.custos.database.owner);
    expect(payloads).toEqual([{ n: 0 }]);
  });

  it('keeps the opaque id stable for one receiver across events of the same appointment', async () => {
    const appointmentId = randomUUID();
    const before = receiver.requests.length;
    await server.services.appointmentEvents.emit(event('booked', appointmentId));
    await deliver();
    await server.services.appointmentEvents.emit(event('rescheduled', appointmentId, 14));
    await deliver();
    const slotsBodies = receiver.requests
      .slice(before)
      .filter((r) => r.path === '/slots')
      .map((r) => JSON.parse(r.body) as { event: string; data: { appointmentId: string; start: string } });
    expect(slotsBodies.map((b) => b.event)).toEqual(['appointment.booked', 'appointment.rescheduled']);
    expect(slotsBodies[0]!.data.appointmentId).toBe(slotsBodies[1]!.data.appointmentId);
    expect(slotsBodies[1]!.data.start).toBe('2026-12-01T14:00:00.000Z');
    // The calendar bridge is subscribed to bookings only.
    expect(receiver.requests.slice(before).filter((r) => r.path === '/named')).toHaveLength(1);
  });

  it('retries a failed delivery at the backoff time, with the same body, and delivers it', async () => {
    receiver.script.set('/slots', [500]);
    const before = receiver.on('/slots').length;
    await server.services.appointmentEvents.emit(event('rescheduled', randomUUID(), 15));
    const t0 = server.clock.now();
    const [first] = await deliver();
    expect(first).toMatchObject({ outcome: 'retry', status: '500', attempt: 1 });
    const wait = first!.nextAttemptAt!.getTime() - t0.getTime();
    // 30 s, plus at most 10% jitter: never earlier.
    expect(wait).toBeGreaterThanOrEqual(30_000);
    expect(wait).toBeLessThanOrEqual(33_000);
    server.clock.advance(29_000);
    expect(await deliver()).toEqual([]);
    server.clock.advance(wait - 29_000);
    const [second] = await deliver();
    expect(second).toMatchObject({
      outcome: 'delivered',
      status: '200',
      attempt: 2,
      deliveryId: first!.deliveryId,
    });
    const sent = receiver.on('/slots').slice(before);
    expect(sent).toHaveLength(2);
    expect(sent[0]!.body).toBe(sent[1]!.body);
    expect(sent[0]!.headers['custos-delivery-id']).toBe(sent[1]!.headers['custos-delivery-id']);
    // A fresh timestamp, and a signature that verifies at the retry's time.
    expect(sent[0]!.headers['custos-signature']).not.toBe(sent[1]!.headers['custos-signature']);
    expect(
      verifyWebhookSignature(
        secrets.get(slots.id)!,
        sent[1]!.headers['custos-signature'],
        sent[1]!.body,
        server.clock.now(),
      ).ok,
    ).toBe(true);
  });

  it('continues a queued delivery after a restart, and two servers never send it twice', async () => {
    const before = receiver.on('/slots').length;
    // Queued by this server, which "stops" before sending it.
    const queued = await server.services.webhooks.enqueue(event('cancelled', randomUUID(), 11));
    expect(queued).toHaveLength(1);
    // Two fresh dispatchers on the same database (a restarted server and a second one).
    const options = {
      db: server.custos.database.db,
      keyring: server.custos.keyring,
      chart: server.custos.chart,
      clock: server.clock.now,
      receivers: { allowPrivateAddresses: true },
      ca: receiverCert,
    };
    const [a, b] = [new Webhooks(options), new Webhooks(options)];
    const results = (await Promise.all([a.deliverDue(), b.deliverDue()])).flat();
    expect(results.map((r) => [r.deliveryId, r.outcome])).toEqual([[queued[0], 'delivered']]);
    const sent = receiver.on('/slots').slice(before);
    expect(sent.map((r) => r.headers['custos-delivery-id'])).toEqual(queued);
    expect(await a.deliverDue(new Date(server.clock.now().getTime() + 86_400_000))).toEqual([]);
  });

  it('gives up after the last backoff, records it, and lists it for the administrator', async () => {
    receiver.script.set('/slots', [500, 503, 500, 502, 500, 500]);
    await server.services.appointmentEvents.emit(event('cancelled', randomUUID(), 16));
    let at = server.clock.now();
    const outcomes: AttemptResult[] = [];
    for (let i = 0; i < 6; i++) {
      const [r] = await deliver(at);
      outcomes.push(r!);
      at = r!.nextAttemptAt ?? at;
    }
    expect(outcomes.map((r) => r.outcome)).toEqual(['retry', 'retry', 'retry', 'retry', 'retry', 'gave-up']);
    // Waits of 30 s, 2 min, 10 min, 1 h, 6 h (each plus at most 10%).
    const waits = outcomes
      .slice(0, 5)
      .map(
        (r, i) =>
          r.nextAttemptAt!.getTime() -
          (i === 0 ? server.clock.now() : outcomes[i - 1]!.nextAttemptAt!).getTime(),
      );
    [30_000, 120_000, 600_000, 3_600_000, 21_600_000].forEach((base, i) => {
      expect(waits[i]).toBeGreaterThanOrEqual(base);
      expect(waits[i]).toBeLessThanOrEqual(base * 1.1);
    });
    expect(await deliver(new Date(at.getTime() + 86_400_000))).toEqual([]);
    const r = await as.admin!.get(`/api/v1/admin/integrations/${slots.id}/deliveries`);
    expect(r.status).toBe(200);
    const latest = (r.body as { deliveries: Record<string, unknown>[] }).deliveries.find(
      (d) => d.id === outcomes[0]!.deliveryId,
    );
    expect(latest).toMatchObject({
      id: outcomes[0]!.deliveryId,
      event: 'cancelled',
      status: 'failed',
      attempts: 6,
      lastStatus: '500',
      nextAttemptAt: null,
    });
    expect(r.text).not.toContain(FAMILY);
    expectError(
      await as.doc!.get(`/api/v1/admin/integrations/${slots.id}/deliveries`),
      404,
      'CUSTOS_ERR_NOT_FOUND',
    );
    // The accounting says so too: recorded when prepared, shown as not delivered.
    const acc = await as.doc!.get(`/api/v1/patients/${patientId}/disclosures`);
    const d = (
      acc.body as { disclosures: { deliveryId: string; delivery: { status: string } }[] }
    ).disclosures.find((x) => x.deliveryId === outcomes[0]!.deliveryId);
    expect(d?.delivery.status).toBe('failed');
  });

  it('does not follow redirects, keeps to its deadline, and never skips certificate checks', async () => {
    await reauth('admin');
    const redirect = await create({
      name: 'Redirecting',
      url: `${base}/redirect`,
      purpose: 'Synthetic test receiver',
      events: ['no-show'],
    });
    const slow = await create({
      name: 'Slow',
      url: `${base}/slow`,
      purpose: 'Synthetic test receiver',
      events: ['no-show'],
    });
    const untrusted = await create({
      name: 'Untrusted',
      url: `${strangerBase}/x`,
      purpose: 'Synthetic test receiver',
      events: ['no-show'],
    });
    receiver.script.set('/redirect', [302]);
    receiver.script.set('/slow', ['hang']);
    await server.services.appointmentEvents.emit(event('no-show', randomUUID()));
    const results = await deliver();
    const by = Object.fromEntries(results.map((r) => [r.integrationId, r]));
    expect(by[redirect.id]).toMatchObject({ outcome: 'retry', status: '302' });
    expect(receiver.on('/elsewhere')).toHaveLength(0);
    expect(by[slow.id]).toMatchObject({ outcome: 'retry', status: 'timeout' });
    expect(by[untrusted.id]).toMatchObject({ outcome: 'retry', status: 'tls-error' });
    expect(stranger.requests).toHaveLength(0);
    // Deactivated: pending deliveries are given up and nothing more is queued or sent.
    for (const i of [redirect, slow, untrusted]) {
      const del = await as.admin!.delete(`/api/v1/admin/integrations/${i.id}`);
      expect(del.status).toBe(204);
    }
    expect(await deliver(new Date(server.clock.now().getTime() + 86_400_000))).toEqual([]);
    expect(await server.services.webhooks.enqueue(event('no-show', randomUUID()))).toEqual([]);
    const list = (await as.admin!.get('/api/v1/admin/integrations')).body as {
      integrations: IntegrationView[];
    };
    expect(list.integrations.find((i) => i.id === slow.id)?.active).toBe(false);
  });

  it('updates an integration with a step-up, refusing forbidden fields the same way', async () => {
    await reauth('admin');
    const path = `/api/v1/admin/integrations/${named.id}`;
    const bad = await as.admin!.request('PATCH', path, { fields: ['start', 'reason'] });
    expectError(bad, 400, 'CUSTOS_ERR_VALIDATION', 'body.fields.1');
    expect((bad.body as { error: { message: string } }).error.message).toContain('"reason"');
    const ok = await as.admin!.request('PATCH', path, {
      fields: ['start', 'end'],
      name: 'Calendar bridge 2',
    });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ id: named.id, fields: ['start', 'end'], name: 'Calendar bridge 2' });
    expect(ok.text).not.toContain('whsec_');
    expectError(await as.doc!.request('PATCH', path, { name: 'x' }), 404, 'CUSTOS_ERR_NOT_FOUND');
    server.clock.advance(6 * 60_000);
    expectError(await as.admin!.request('PATCH', path, { name: 'x' }), 403, 'CUSTOS_ERR_STEP_UP');
  });

  it('shows the accounting only to the privacy officer and the care team: everyone else gets the 404 of a missing patient', async () => {
    for (const who of ['admin', 'desk', 'other']) {
      const c = new Client(server);
      await logIn(server, c, staff[who]!);
      as[who] = c;
    }
    const missing = await as.doc!.get(`/api/v1/patients/${randomUUID()}/disclosures`);
    expectError(missing, 404, 'CUSTOS_ERR_NOT_FOUND');
    for (const who of ['admin', 'desk', 'other']) {
      const r = await as[who]!.get(`/api/v1/patients/${patientId}/disclosures`);
      expect({ who, status: r.status, text: r.text }).toEqual({ who, status: 404, text: missing.text });
    }
    const denied = await server.custos.database.owner
      .selectFrom('audit_entries')
      .select(['actor_id', 'outcome', 'reason'])
      .where('action', '=', 'list')
      .where('resource_type', '=', 'disclosure')
      .where('outcome', '=', 'denied')
      .execute();
    for (const who of ['admin', 'desk', 'other']) {
      expect(
        denied.some((e) => e.actor_id === staff[who]!.id),
        who,
      ).toBe(true);
    }
  });

  it('sends the webhooks of an appointment booked and cancelled through the API, never its reason', async () => {
    const REASON = 'Synthetic reason marker: never to leave the practice';
    const hours = ['mon', 'tue', 'wed', 'thu', 'fri'].map((weekday) => ({
      weekday,
      start: '09:00',
      end: '17:00',
    }));
    const set = await as.doc!.request('PUT', `/api/v1/clinicians/${staff.doc!.id}/hours`, { hours });
    expect(set.status, set.text).toBe(200);
    const before = receiver.requests.length;
    const booked = await as.doc!.post('/api/v1/appointments', {
      patientId,
      clinicianId: staff.doc!.id,
      start: '2026-11-24T09:00:00.000Z',
      durationMinutes: 30,
      room: 'Room 2',
      reason: REASON,
    });
    expect(booked.status, booked.text).toBe(201);
    const appointmentId = (booked.body as { id: string }).id;
    // The booking queued one delivery per subscribed integration (and its disclosure) before answering.
    expect((await deliver()).map((r) => r.outcome)).toEqual(['delivered', 'delivered']);
    const cancelled = await as.doc!.post(`/api/v1/appointments/${appointmentId}/cancel`, {
      reasonCode: 'patient-request',
    });
    expect(cancelled.status, cancelled.text).toBe(200);
    expect((await deliver()).map((r) => r.outcome)).toEqual(['delivered']);
    const got = receiver.requests.slice(before);
    expect(got.map((r) => `${r.path} ${r.headers['custos-event']}`).sort()).toEqual([
      '/named appointment.booked',
      '/slots appointment.booked',
      '/slots appointment.cancelled',
    ]);
    const slotsBodies = got
      .filter((r) => r.path === '/slots')
      .map((r) => JSON.parse(r.body) as { data: Record<string, string> });
    expect(slotsBodies.map((b) => b.data)).toEqual([
      {
        start: '2026-11-24T09:00:00.000Z',
        end: '2026-11-24T09:30:00.000Z',
        appointmentId: expect.stringMatching(/^apt_/),
      },
      {
        start: '2026-11-24T09:00:00.000Z',
        end: '2026-11-24T09:30:00.000Z',
        appointmentId: slotsBodies[0]!.data.appointmentId,
      },
    ]);
    for (const r of got) {
      expect(r.body).not.toContain(REASON);
      expect(r.body).not.toContain('reason');
      expect(r.body).not.toContain(appointmentId);
    }
    // Both bookings' deliveries are in the accounting.
    const acc = await as.doc!.get(`/api/v1/patients/${patientId}/disclosures`);
    const ids = got.map((r) => r.headers['custos-delivery-id']);
    const listed = (acc.body as { disclosures: { deliveryId: string }[] }).disclosures.map(
      (d) => d.deliveryId,
    );
    expect(listed).toEqual(expect.arrayContaining(ids));
  });

  it('never carried a field outside the allow-lists in any request it made', () => {
    const allowed = new Set([
      ...slots.fields,
      ...named.fields,
      'patientEmail',
      'patientPhone',
      'room',
      'clinicianName',
      'patientName',
    ]);
    expect(receiver.requests.length).toBeGreaterThan(5);
    for (const r of receiver.requests) {
      for (const k of Object.keys((JSON.parse(r.body) as { data: object }).data)) {
        expect(allowed.has(k), k).toBe(true);
      }
    }
  });
});

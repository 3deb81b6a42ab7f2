import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMailer } from '../../src/notify/mailer.ts';
import { readOutbox } from '../../src/notify/outbox.ts';
import type { AppointmentEvent } from '../../src/scheduling/events.ts';
import { runReminders } from '../../src/scheduling/reminders.ts';
import { skipReason } from '../support/db.ts';
import { identity } from '../support/fixtures.ts';
import { Client, expectError, startServer, type TestServer } from '../support/http.ts';
import { enrollStaff, logIn, reauth as reauthAs, type Staff } from '../support/staff.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] scheduling-api.int.test.ts skipped: ${skip}`);
}

/** Clinical markers: none may reach a reminder, an audit entry or front desk. */
const REASON = 'Synthetic reason: biopsy results discussion';
const NOTE = 'Synthetic waiting note: prefers the anxiety group';
const SPECIALTY = 'Oncology';
const ROOM = 'Oncology Suite';
const DIAGNOSIS = 'Synthetic Carcinoma Marker';
const FAMILY = 'Schedulsynthetica';
const PORTAL = 'https://portal.example.org';

interface Appt {
  id: string;
  patientId: string;
  version: number;
  start: string;
  end: string;
  clinicianId: string;
  room: string | null;
  status: string;
  seriesId: string | null;
  reason?: string | null;
}

/** Scheduling over real HTTPS on both engines (issue 6 items 5 and 6). */
describe.skipIf(skip)('scheduling API over HTTPS', () => {
  let server: TestServer;
  const staff: Record<string, Staff> = {};
  const as: Record<string, Client> = {};
  const events: AppointmentEvent[] = [];
  let patient: string;
  let deskPatient: string;
  let outbox: string;

  beforeAll(async () => {
    server = await startServer();
    for (const [name, roles] of Object.entries({
      'oncology-doc': ['clinician'],
      colleague: ['clinician'],
      desk: ['frontdesk'],
      bill: ['billing'],
      clinoff: ['clinician'],
      nurse: ['nurse'],
      admin: ['admin'],
    })) {
      staff[name] = await enrollStaff(server, new Client(server), name, roles);
      as[name] = new Client(server);
      await logIn(server, as[name], staff[name]!);
    }
    server.services.appointmentEvents.subscribe(async (e) => {
      events.push(e);
    });
    const p = await as['oncology-doc']!.post('/api/v1/patients', {
      identity: identity({ name: { given: ['Sched'], family: FAMILY } }),
    });
    patient = (p.body as { id: string }).id;
    const cond = await as['oncology-doc']!.post(`/api/v1/patients/${patient}/records`, {
      kind: 'condition',
      body: {
        code: { system: 'http://hl7.org/fhir/sid/icd-10', code: 'C50.9', display: DIAGNOSIS },
        clinicalStatus: 'active',
        onset: '2026-01-01',
      },
    });
    const d = await as.desk!.post('/api/v1/patients', {
      identity: identity({
        name: { given: ['Deskina'], family: 'Frontsynthetica' },
        email: 'front@example.org',
      }),
    });
    deskPatient = (d.body as { id: string }).id;
    expect([p.status, cond.status, d.status]).toEqual([201, 201, 201]);
    outbox = fs.mkdtempSync(path.join(os.tmpdir(), 'custos-outbox-'));
  }, 240_000);
  afterAll(async () => {
    await server?.close();
    if (outbox) {
      fs.rmSync(outbox, { recursive: true, force: true });
    }
  });

  const doc = () => as['oncology-doc']!;
  const docId = () => staff['oncology-doc']!.id;
  const put = (c: Client, url: string, body: unknown) => c.request('PUT', url, body);
  /** Local Amsterdam time in winter (UTC+1) as an instant. */
  const cet = (day: string, hhmm: string) => new Date(`${day}T${hhmm}:00+01:00`).toISOString();
  const book = (c: Client, body: Record<string, unknown>) =>
    c.post('/api/v1/appointments', { patientId: patient, clinicianId: docId(), ...body });
  const reauth = (who: string) => reauthAs(server, as[who]!, staff[who]!);

  it('keeps working hours: the clinician, front desk and the administrator; nobody else', async () => {
    const week = ['mon', 'tue', 'wed', 'thu', 'fri'].map((weekday) => ({
      weekday,
      start: '09:00',
      end: '17:00',
      room: ROOM,
    }));
    const set = await put(doc(), `/api/v1/clinicians/${docId()}/hours`, { hours: week });
    expect(set.status, set.text).toBe(200);
    expect(set.body).toMatchObject({ clinicianId: docId(), timeZone: 'Europe/Amsterdam' });
    expectError(
      await put(doc(), `/api/v1/clinicians/${docId()}/hours`, {
        hours: [{ weekday: 'mon', start: '12:00', end: '11:00' }],
      }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.hours.0.end',
    );
    expectError(
      await put(doc(), `/api/v1/clinicians/${docId()}/hours`, {
        hours: [{ weekday: 'someday', start: '09:00', end: '11:00' }],
      }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.hours.0.weekday',
    );
    for (const who of ['desk', 'admin', 'oncology-doc']) {
      const r = await as[who]!.get(`/api/v1/clinicians/${docId()}/hours`);
      expect(r.status, who).toBe(200);
      expect((r.body as { hours: unknown[] }).hours).toHaveLength(5);
    }
    for (const who of ['bill', 'colleague', 'nurse']) {
      expectError(await as[who]!.get(`/api/v1/clinicians/${docId()}/hours`), 404, 'CUSTOS_ERR_NOT_FOUND');
    }
  });

  it('shows free time and slots without patient data', async () => {
    const r = await as.desk!.post('/api/v1/availability', {
      clinicianId: docId(),
      from: cet('2026-11-24', '00:00'),
      to: cet('2026-11-25', '00:00'),
      slotMinutes: 60,
    });
    expect(r.status, r.text).toBe(200);
    const body = r.body as { free: { start: string; end: string }[]; slots: unknown[]; hoursSet: boolean };
    expect(body.hoursSet).toBe(true);
    expect(body.free).toEqual([{ start: cet('2026-11-24', '09:00'), end: cet('2026-11-24', '17:00') }]);
    expect(body.slots).toHaveLength(8);
    expectError(
      await as.desk!.post('/api/v1/availability', {
        clinicianId: docId(),
        from: cet('2026-11-24', '10:00'),
        to: cet('2026-11-24', '09:00'),
      }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.to',
    );
    expectError(
      await as.desk!.post('/api/v1/availability', {
        clinicianId: docId(),
        from: 'tomorrow',
        to: cet('2026-11-24', '09:00'),
      }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.from',
    );
    expectError(
      await as.bill!.post('/api/v1/availability', {
        clinicianId: docId(),
        from: cet('2026-11-24', '00:00'),
        to: cet('2026-11-25', '00:00'),
      }),
      404,
      'CUSTOS_ERR_NOT_FOUND',
    );
  });

  it('books, refuses double booking of the clinician and of the room (409), reschedules with the version read (412 when stale), cancels', async () => {
    const before = events.length;
    const r = await book(doc(), { start: cet('2026-11-24', '10:00'), durationMinutes: 50, reason: REASON });
    expect(r.status, r.text).toBe(201);
    const a = r.body as Appt;
    expect(a).toMatchObject({
      patientId: patient,
      version: 1,
      start: cet('2026-11-24', '10:00'),
      end: cet('2026-11-24', '10:50'),
      clinicianId: docId(),
      room: ROOM,
      status: 'booked',
      reason: REASON,
    });
    // The clinician is busy: 409 naming the clinician and the time, no patient data.
    const busy = await book(as.desk!, {
      start: cet('2026-11-24', '10:30'),
      durationMinutes: 30,
      room: 'Room 2',
    });
    expectError(busy, 409, 'CUSTOS_ERR_CONFLICT');
    expect((busy.body as { error: { conflicts: unknown[] } }).error.conflicts).toEqual([
      { kind: 'clinician', start: cet('2026-11-24', '10:00'), end: cet('2026-11-24', '10:50') },
    ]);
    for (const marker of [REASON, FAMILY, patient, a.id]) {
      expect(busy.text).not.toContain(marker);
    }
    // The room is taken by another clinician's patient.
    const colleagueBooking = await as.colleague!.post('/api/v1/appointments', {
      patientId: deskPatient,
      clinicianId: staff.colleague!.id,
      start: cet('2026-11-24', '10:20'),
      end: cet('2026-11-24', '11:00'),
      room: ROOM,
    });
    // The colleague is not on that patient's care team and may not reach it.
    expectError(colleagueBooking, 404, 'CUSTOS_ERR_NOT_FOUND');
    const room = await as.desk!.post('/api/v1/appointments', {
      patientId: deskPatient,
      clinicianId: staff.colleague!.id,
      start: cet('2026-11-24', '10:20'),
      end: cet('2026-11-24', '11:00'),
      room: ROOM,
    });
    expectError(room, 409, 'CUSTOS_ERR_CONFLICT');
    expect(
      (room.body as { error: { conflicts: { kind: string }[] } }).error.conflicts.map((c) => c.kind),
    ).toEqual(['room']);
    // Outside the clinician's working hours.
    const late = await book(doc(), { start: cet('2026-11-24', '17:30'), durationMinutes: 30 });
    expectError(late, 409, 'CUSTOS_ERR_CONFLICT');
    expect(
      (late.body as { error: { conflicts: { kind: string }[] } }).error.conflicts.map((c) => c.kind),
    ).toEqual(['hours']);
    // Validation names the field.
    expectError(
      await book(doc(), { start: cet('2026-11-24', '12:00') }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.end',
    );
    expectError(
      await book(doc(), { start: cet('2026-11-20', '12:00'), durationMinutes: 30 }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.start',
    );
    expectError(
      await book(doc(), { start: cet('2026-11-24', '12:00'), durationMinutes: 2 }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.durationMinutes',
    );
    expectError(
      await book(doc(), {
        clinicianId: staff.desk!.id,
        start: cet('2026-11-24', '12:00'),
        durationMinutes: 30,
      }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.clinicianId',
    );
    expectError(
      await book(doc(), { patientId: 'nope', start: cet('2026-11-24', '12:00'), durationMinutes: 30 }),
      404,
      'CUSTOS_ERR_NOT_FOUND',
    );

    // Reschedule with the version read; a second writer with the same version gets 412.
    const moved = await put(doc(), `/api/v1/appointments/${a.id}`, {
      expectedVersion: 1,
      start: cet('2026-11-24', '11:00'),
      durationMinutes: 50,
    });
    expect(moved.status, moved.text).toBe(200);
    expect(moved.body).toMatchObject({
      version: 2,
      start: cet('2026-11-24', '11:00'),
      reason: REASON,
      room: ROOM,
    });
    expectError(
      await put(as.desk!, `/api/v1/appointments/${a.id}`, {
        expectedVersion: 1,
        start: cet('2026-11-24', '13:00'),
        durationMinutes: 50,
      }),
      412,
      'CUSTOS_ERR_VERSION_CONFLICT',
    );
    expectError(
      await put(doc(), `/api/v1/appointments/${a.id}`, {
        expectedVersion: 2,
        start: cet('2026-11-24', '13:00'),
      }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.end',
    );
    // The old slot is free again: the desk patient can have 10:20 in that room now.
    const freed = await as.desk!.post('/api/v1/appointments', {
      patientId: deskPatient,
      clinicianId: staff.colleague!.id,
      start: cet('2026-11-24', '10:00'),
      end: cet('2026-11-24', '10:50'),
      room: ROOM,
    });
    expect(freed.status, freed.text).toBe(201);
    const cancelled = await as.desk!.post(`/api/v1/appointments/${(freed.body as Appt).id}/cancel`, {
      reasonCode: 'patient-request',
      expectedVersion: 1,
    });
    expect(cancelled.status, cancelled.text).toBe(200);
    expect(cancelled.body).toMatchObject({ status: 'cancelled', cancelCode: 'patient-request', version: 2 });
    expectError(
      await as.desk!.post(`/api/v1/appointments/${(freed.body as Appt).id}/cancel`, {
        reasonCode: 'patient-request',
      }),
      409,
      'CUSTOS_ERR_CONFLICT',
    );
    expectError(
      await as.desk!.post(`/api/v1/appointments/${(freed.body as Appt).id}/cancel`, { reasonCode: 'bored' }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.reasonCode',
    );

    // One event per committed change, ids and times only.
    const mine = events.slice(before);
    expect(mine.map((e) => e.kind)).toEqual(['booked', 'rescheduled', 'booked', 'cancelled']);
    expect(mine[1]).toEqual({
      kind: 'rescheduled',
      practiceId: server.custos.practiceId,
      appointmentId: a.id,
      patientId: patient,
      clinicianId: docId(),
      room: ROOM,
      start: new Date(cet('2026-11-24', '11:00')),
      end: new Date(cet('2026-11-24', '11:50')),
      at: expect.any(Date),
    });
  });

  it('lets front desk book and see appointments with names and contact, never the reason', async () => {
    const r = await as.desk!.post('/api/v1/appointments', {
      patientId: deskPatient,
      clinicianId: docId(),
      start: cet('2026-11-25', '09:00'),
      durationMinutes: 45,
    });
    expect(r.status, r.text).toBe(201);
    expect(r.body).not.toHaveProperty('reason');
    // The booked clinician joined the patient's care team.
    const team = (await as.desk!.get(`/api/v1/patients/${deskPatient}/care-team`)).body as {
      members: { userId: string; current: boolean }[];
    };
    expect(team.members.some((m) => m.userId === docId() && m.current)).toBe(true);
    expectError(
      await as.desk!.post('/api/v1/appointments', {
        patientId: deskPatient,
        clinicianId: docId(),
        start: cet('2026-11-25', '11:00'),
        durationMinutes: 45,
        reason: 'Synthetic reason typed at the desk',
      }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.reason',
    );
    const list = await as.desk!.get(`/api/v1/patients/${patient}/appointments`);
    expect(list.status, list.text).toBe(200);
    const appts = (list.body as { appointments: Appt[] }).appointments;
    expect(appts.length).toBeGreaterThan(0);
    expect(list.text).not.toContain(REASON);
    for (const a of appts) {
      expect(a).not.toHaveProperty('reason');
    }
    const cal = await as.desk!.post('/api/v1/calendar', {
      clinicianId: docId(),
      from: cet('2026-11-24', '00:00'),
      to: cet('2026-11-26', '00:00'),
    });
    expect(cal.status, cal.text).toBe(200);
    expect(cal.text).not.toContain(REASON);
    const entries = (
      cal.body as {
        entries: { appointment?: Appt; patient?: { name?: { family: string }; phone?: string } }[];
      }
    ).entries;
    const named = entries.filter((e) => e.patient?.name);
    expect(named.map((e) => e.patient?.name?.family).sort()).toEqual([FAMILY, 'Frontsynthetica'].sort());
    expect(named.every((e) => e.patient?.phone !== undefined)).toBe(true);
    // The clinician sees the reason in their own calendar.
    const own = await doc().post('/api/v1/calendar', {
      from: cet('2026-11-24', '00:00'),
      to: cet('2026-11-26', '00:00'),
    });
    expect(own.status, own.text).toBe(200);
    expect(own.text).toContain(REASON);
  });

  it('shows a clinician off the care team busy time only, and gives billing and them 404 for the patient', async () => {
    for (const who of ['bill', 'clinoff', 'admin']) {
      expectError(
        await as[who]!.get(`/api/v1/patients/${patient}/appointments`),
        404,
        'CUSTOS_ERR_NOT_FOUND',
      );
    }
    const cal = await as.clinoff!.post('/api/v1/calendar', {
      clinicianId: docId(),
      from: cet('2026-11-24', '00:00'),
      to: cet('2026-11-26', '00:00'),
    });
    expect(cal.status, cal.text).toBe(200);
    for (const marker of [REASON, FAMILY, patient, 'Frontsynthetica']) {
      expect(cal.text).not.toContain(marker);
    }
    const entries = (cal.body as { entries: { status: string; appointment?: unknown }[] }).entries;
    expect(entries.length).toBeGreaterThan(0);
    expect(entries.every((e) => e.status === 'busy' && e.appointment === undefined)).toBe(true);
    expectError(
      await as.bill!.post('/api/v1/calendar', {
        clinicianId: docId(),
        from: cet('2026-11-24', '00:00'),
        to: cet('2026-11-26', '00:00'),
      }),
      404,
      'CUSTOS_ERR_NOT_FOUND',
    );
  });

  it('books a weekly series across the change to summer time, all or nothing, conflicts per occurrence', async () => {
    // Tuesdays 16:00 local from 2027-03-16; summer time begins on 2027-03-28.
    const series = {
      patientId: patient,
      clinicianId: docId(),
      start: cet('2027-03-16', '16:00'),
      durationMinutes: 50,
      count: 4,
      reason: REASON,
    };
    const r = await doc().post('/api/v1/appointments/series', series);
    expect(r.status, r.text).toBe(201);
    const body = r.body as { seriesId: string; appointments: Appt[] };
    expect(body.appointments.map((a) => a.start)).toEqual([
      '2027-03-16T15:00:00.000Z',
      '2027-03-23T15:00:00.000Z',
      '2027-03-30T14:00:00.000Z',
      '2027-04-06T14:00:00.000Z',
    ]);
    expect(new Set(body.appointments.map((a) => a.seriesId))).toEqual(new Set([body.seriesId]));
    // A second series that meets the first on two Tuesdays: both reported, nothing booked.
    const before = (await doc().get(`/api/v1/patients/${patient}/appointments`)).body as {
      appointments: Appt[];
    };
    const clash = await doc().post('/api/v1/appointments/series', {
      ...series,
      start: cet('2027-03-09', '15:30'),
      count: 3,
    });
    expectError(clash, 409, 'CUSTOS_ERR_CONFLICT');
    const occ = (clash.body as { error: { occurrences: { index: number; conflicts: { kind: string }[] }[] } })
      .error.occurrences;
    expect(occ.map((o) => [o.index, o.conflicts.map((c) => c.kind)])).toEqual([
      [1, ['clinician', 'room']],
      [2, ['clinician', 'room']],
    ]);
    const after = (await doc().get(`/api/v1/patients/${patient}/appointments`)).body as {
      appointments: Appt[];
    };
    expect(after.appointments.length).toBe(before.appointments.length);
    expectError(
      await doc().post('/api/v1/appointments/series', { ...series, count: undefined }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.count',
    );
    expectError(
      await doc().post('/api/v1/appointments/series', { ...series, count: 500 }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.count',
    );
  });

  it('books a slot once when several requests race for it', async () => {
    const patients: string[] = [];
    for (let i = 0; i < 4; i++) {
      const p = await as.desk!.post('/api/v1/patients', {
        identity: identity({ name: { given: ['Race'], family: `Racesynthetica${i}` } }),
      });
      patients.push((p.body as { id: string }).id);
    }
    const results = await Promise.all(
      patients.map((patientId) =>
        as.desk!.post('/api/v1/appointments', {
          patientId,
          clinicianId: docId(),
          start: cet('2026-11-27', '14:00'),
          durationMinutes: 50,
        }),
      ),
    );
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409, 409]);
  });

  it('marks a no-show only once the appointment has started', async () => {
    const soon = new Date(server.clock.now().getTime() + 10 * 60_000);
    soon.setUTCSeconds(0, 0);
    const r = await as.desk!.post('/api/v1/appointments', {
      patientId: deskPatient,
      clinicianId: staff.colleague!.id,
      start: soon.toISOString(),
      durationMinutes: 30,
    });
    expect(r.status, r.text).toBe(201);
    const id = (r.body as Appt).id;
    expectError(await as.desk!.post(`/api/v1/appointments/${id}/no-show`, {}), 409, 'CUSTOS_ERR_CONFLICT');
    server.clock.advance(12 * 60_000);
    const ns = await as.desk!.post(`/api/v1/appointments/${id}/no-show`, { expectedVersion: 1 });
    expect(ns.status, ns.text).toBe(200);
    expect(ns.body).toMatchObject({ status: 'no-show', version: 2 });
    expect(events.at(-1)).toMatchObject({ kind: 'no-show', appointmentId: id });
  });

  it('refuses an overlapping appointment in the database itself (the trigger), whoever writes it', async () => {
    const owner = server.custos.database.owner;
    const { rows } = await sql<{
      pseudonym: string;
      starts_at: Date;
      ends_at: Date;
    }>`SELECT pseudonym, starts_at, ends_at FROM appointments WHERE status = 'booked' AND room = ${ROOM} ORDER BY starts_at LIMIT 1`.execute(
      owner,
    );
    const row = rows[0]!;
    const attempt =
      sql`INSERT INTO appointments (id, practice_id, pseudonym, clinician_id, room, starts_at, ends_at,
        status, version, created_at, created_by, updated_at, updated_by)
      VALUES (gen_random_uuid(), ${server.custos.practiceId}, ${row.pseudonym}, ${staff.nurse!.id}, ${ROOM},
        ${row.starts_at}, ${row.ends_at}, 'booked', 1, now(), 'test', now(), 'test')`.execute(owner);
    await expect(attempt).rejects.toMatchObject({ code: '23P01', constraint: 'appointments_room_overlap' });
  });

  it('manages the waiting list and offers a freed slot', async () => {
    const add = await doc().post('/api/v1/waiting-list', {
      patientId: patient,
      clinicianId: docId(),
      note: NOTE,
      preferred: { weekdays: ['thu'], from: '09:00', to: '12:00' },
    });
    expect(add.status, add.text).toBe(201);
    const entry = add.body as { id: string; note: string };
    expect(entry.note).toBe(NOTE);
    server.clock.advance(1000);
    expectError(
      await as.desk!.post('/api/v1/waiting-list', { patientId: deskPatient, note: 'Synthetic desk note' }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.note',
    );
    expectError(
      await as.desk!.post('/api/v1/waiting-list', {
        patientId: deskPatient,
        preferred: { from: '12:00', to: '09:00' },
      }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.preferred.to',
    );
    const deskEntry = await as.desk!.post('/api/v1/waiting-list', { patientId: deskPatient });
    expect(deskEntry.status, deskEntry.text).toBe(201);
    const deskList = await as.desk!.get('/api/v1/waiting-list');
    expect(deskList.status, deskList.text).toBe(200);
    expect(deskList.text).not.toContain(NOTE);
    const listed = (deskList.body as { entries: { id: string; patient: { name?: { family: string } } }[] })
      .entries;
    expect(listed.map((e) => e.id)).toEqual([entry.id, (deskEntry.body as { id: string }).id]);
    expect(listed[0]!.patient.name?.family).toBe(FAMILY);
    expectError(await as.bill!.get('/api/v1/waiting-list'), 404, 'CUSTOS_ERR_NOT_FOUND');
    expect(((await as.clinoff!.get('/api/v1/waiting-list')).body as { entries: unknown[] }).entries).toEqual(
      [],
    );
    // Thursday 10:00 local suits the first entry; Friday does not.
    const thu = await as.desk!.post('/api/v1/waiting-list/matches', {
      clinicianId: docId(),
      start: cet('2026-11-26', '10:00'),
      end: cet('2026-11-26', '10:50'),
    });
    expect((thu.body as { entries: { id: string }[] }).entries.map((e) => e.id)).toEqual([
      entry.id,
      (deskEntry.body as { id: string }).id,
    ]);
    const fri = await as.desk!.post('/api/v1/waiting-list/matches', {
      clinicianId: docId(),
      start: cet('2026-11-27', '10:00'),
      end: cet('2026-11-27', '10:50'),
    });
    expect((fri.body as { entries: { id: string }[] }).entries.map((e) => e.id)).toEqual([
      (deskEntry.body as { id: string }).id,
    ]);
    const offered = await as.desk!.post(`/api/v1/waiting-list/${entry.id}/offer`, {
      start: cet('2026-11-26', '10:00'),
      durationMinutes: 50,
    });
    expect(offered.status, offered.text).toBe(201);
    expect(offered.body).toMatchObject({ patientId: patient, clinicianId: docId(), status: 'booked' });
    expect(offered.body).not.toHaveProperty('reason');
    expect(events.at(-1)).toMatchObject({ kind: 'booked', appointmentId: (offered.body as Appt).id });
    expectError(
      await as.desk!.post(`/api/v1/waiting-list/${entry.id}/offer`, {
        start: cet('2026-11-26', '11:00'),
        durationMinutes: 50,
      }),
      409,
      'CUSTOS_ERR_CONFLICT',
    );
    const removed = await as.desk!.delete(`/api/v1/waiting-list/${(deskEntry.body as { id: string }).id}`);
    expect(removed.status).toBe(204);
    expect(((await as.desk!.get('/api/v1/waiting-list')).body as { entries: unknown[] }).entries).toEqual([]);
  });

  it('sends each reminder once, carrying no clinical data, no name and no clinician', async () => {
    // Two appointments tomorrow morning, within the default 24 hours.
    const tomorrow = await book(doc(), {
      start: cet('2026-11-24', '09:00'),
      durationMinutes: 50,
      reason: REASON,
    });
    const other = await as.desk!.post('/api/v1/appointments', {
      patientId: deskPatient,
      clinicianId: staff.colleague!.id,
      start: cet('2026-11-24', '09:15'),
      durationMinutes: 30,
    });
    expect([tomorrow.status, other.status]).toEqual([201, 201]);
    const mailer = createMailer(
      { dataDir: outbox, smtpUrl: undefined, smtpCaFile: undefined, mailFrom: 'Custos <no-reply@localhost>' },
      { outboxDir: outbox },
    );
    const job = {
      chart: server.custos.chart,
      db: server.custos.database.db,
      practiceId: server.custos.practiceId,
      mailer,
      portalUrl: PORTAL,
      clock: server.clock.now,
    };
    const now = server.clock.now().getTime();
    const due = await sql<{ n: number }>`SELECT count(*)::int AS n FROM appointments
      WHERE status = 'booked' AND starts_at > ${new Date(now)} AND starts_at <= ${new Date(now + 86_400_000)}`.execute(
      server.custos.database.owner,
    );
    // A relay that cannot be reached: nothing is sent, every claim is given back for the next run.
    const down = createMailer({
      dataDir: outbox,
      smtpUrl: 'smtp://127.0.0.1:1',
      smtpCaFile: undefined,
      mailFrom: 'Custos <no-reply@localhost>',
    });
    const failed = await runReminders({ ...job, mailer: down });
    down.close();
    expect(failed).toEqual({ due: due.rows[0]!.n, sent: 0, skipped: 0, failed: due.rows[0]!.n });
    expect(await readOutbox(outbox)).toEqual([]);
    const first = await runReminders(job);
    expect(first.due).toBe(due.rows[0]!.n);
    expect(first.due).toBeGreaterThan(1);
    expect(first).toMatchObject({ sent: first.due, skipped: 0, failed: 0 });
    const mails = await readOutbox(outbox);
    expect(mails).toHaveLength(first.sent);
    const markers = [
      REASON,
      NOTE,
      DIAGNOSIS,
      'C50.9',
      SPECIALTY,
      SPECIALTY.toLowerCase(),
      ROOM,
      FAMILY,
      'Deskina',
      'Frontsynthetica',
      'oncology-doc',
      docId(),
      staff.colleague!.id,
      patient,
      deskPatient,
    ];
    for (const m of mails) {
      expect(m.to === 'testa@example.org' || m.to === 'front@example.org', m.to).toBe(true);
      expect(m.text).toContain(PORTAL);
      const ics = m.attachments.map((a) => a.content.toString('utf8')).join('\n');
      expect(ics).toContain('BEGIN:VCALENDAR');
      for (const marker of markers) {
        expect(m.raw.toLowerCase(), marker).not.toContain(marker.toLowerCase());
        expect(ics.toLowerCase(), marker).not.toContain(marker.toLowerCase());
        expect((m.text ?? '').toLowerCase(), marker).not.toContain(marker.toLowerCase());
        expect((m.html ?? '').toLowerCase(), marker).not.toContain(marker.toLowerCase());
        expect((m.subject ?? '').toLowerCase(), marker).not.toContain(marker.toLowerCase());
      }
    }
    // Sent once: a second run finds nothing.
    expect(await runReminders(job)).toEqual({ due: 0, sent: 0, skipped: 0, failed: 0 });
    expect(await readOutbox(outbox)).toHaveLength(first.sent);
    // Each claim read the patient's address through the gate: one `notify` entry each (the failed
    // run's claims too), as the system actor for operations.
    const notify = await server.custos.database.owner
      .selectFrom('audit_entries')
      .select(['actor_kind', 'purpose', 'patient_pseudonym', 'outcome'])
      .where('action', '=', 'notify')
      .execute();
    expect(notify).toHaveLength(failed.due + first.sent);
    expect(
      notify.every((e) => e.actor_kind === 'system' && e.purpose === 'operations' && e.patient_pseudonym),
    ).toBe(true);
    mailer.close();
  });

  it('writes one audit entry per call, with ids and pseudonyms only', async () => {
    const entries = await server.custos.database.owner
      .selectFrom('audit_entries')
      .selectAll()
      .where('resource_type', 'in', [
        'appointment',
        'appointment-series',
        'working-hours',
        'availability',
        'calendar',
        'waiting-list',
      ])
      .execute();
    expect(entries.length).toBeGreaterThan(20);
    const text = JSON.stringify(entries);
    for (const marker of [REASON, NOTE, ROOM, FAMILY, DIAGNOSIS]) {
      expect(text).not.toContain(marker);
    }
    const denied = entries.filter((e) => e.outcome === 'denied');
    expect(denied.length).toBeGreaterThan(0);
    // At rest: the pseudonym, never the patient id; the reason and the note only as ciphertext.
    const rows = await sql<{
      pseudonym: string;
      reason: Buffer | null;
    }>`SELECT pseudonym, reason FROM appointments`.execute(server.custos.database.owner);
    const notes = await sql<{ note: Buffer | null }>`SELECT note FROM waiting_list_entries`.execute(
      server.custos.database.owner,
    );
    expect(rows.rows.some((r) => r.reason !== null)).toBe(true);
    for (const r of rows.rows) {
      expect([patient, deskPatient]).not.toContain(r.pseudonym);
      expect(r.reason?.includes(Buffer.from('biopsy')) ?? false).toBe(false);
    }
    expect(notes.rows.some((r) => r.note !== null)).toBe(true);
    expect(notes.rows.every((r) => !(r.note?.includes(Buffer.from('anxiety')) ?? false))).toBe(true);
  });

  it('lets the administrator set the practice time zone after a re-authentication', async () => {
    as.admin = new Client(server);
    await logIn(server, as.admin, staff.admin!);
    server.clock.advance(6 * 60_000);
    expectError(
      await put(as.admin!, '/api/v1/scheduling/settings', { timeZone: 'Europe/London' }),
      403,
      'CUSTOS_ERR_STEP_UP',
    );
    await reauth('admin');
    expectError(
      await put(as.admin!, '/api/v1/scheduling/settings', { timeZone: 'Nowhere/Atlantis' }),
      400,
      'CUSTOS_ERR_VALIDATION',
      'body.timeZone',
    );
    const r = await put(as.admin!, '/api/v1/scheduling/settings', {
      timeZone: 'Europe/London',
      reminderLeadHours: 48,
    });
    expect(r.status, r.text).toBe(200);
    expect(r.body).toMatchObject({ timeZone: 'Europe/London', reminderLeadHours: 48 });
    expect((await as.desk!.get('/api/v1/scheduling/settings')).body).toMatchObject({
      timeZone: 'Europe/London',
    });
    expectError(
      await put(as.desk!, '/api/v1/scheduling/settings', { timeZone: 'UTC' }),
      404,
      'CUSTOS_ERR_NOT_FOUND',
    );
  });
});

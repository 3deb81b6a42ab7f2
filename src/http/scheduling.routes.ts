import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import type { AppointmentChange } from '../chart/appointments.service.ts';
import { validationError } from '../errors.ts';
import { securityEvent } from '../identity/events.ts';
import { SlotConflict } from '../scheduling/conflicts.ts';
import type { AppointmentEventKind } from '../scheduling/events.ts';
import { WorkingHoursInput } from '../scheduling/hours.ts';
import {
  AvailabilityInput,
  BookInput,
  CancelInput,
  MatchInput,
  NoShowInput,
  OfferInput,
  RangeInput,
  RescheduleInput,
  SeriesInput,
  WaitingInput,
} from '../scheduling/inputs.ts';
import { announce } from '../scheduling/notify-change.ts';
import {
  SchedulingSettingsInput,
  schedulingSettings,
  setSchedulingSettings,
} from '../scheduling/settings.ts';
import { defineRoute, inBody, named, type Resolve } from './route.ts';
import type { Services } from './services.ts';

/**
 * Scheduling over HTTPS (issue 6 item 5): working hours, free time, booking (single and weekly
 * series), rescheduling, cancelling, no-shows, calendars, a patient's appointments and the
 * waiting list. Every call goes through the gate (one audit entry each; a denial is the 404 of a
 * missing id). Conflicts are 409 naming what conflicts (clinician, room, working hours) and when,
 * never whose appointment is in the way; a stale version is 412. After each committed booking,
 * reschedule, cancellation or no-show an appointment event goes to the listeners (webhooks).
 */

const TAGS = ['scheduling'] as const;
const anId = (what: string) =>
  z.string().meta({ format: 'uuid', description: `${what} id; any other value is answered 404` });
const ClinicianParams = z.object({ id: anId('clinician (user)') });
const AppointmentParams = z.object({ id: anId('appointment') });
const PatientParams = z.object({ id: anId('patient') });
const EntryParams = z.object({ id: anId('waiting-list entry') });

const SEES =
  'Fields by role: clinicians and nurses on the care team see the reason for the visit; front desk sees appointments with names and contact details but never the reason (it may not write one either); billing, the administrator, the privacy officer and clinicians off the care team see nothing (404).';

/** The 409 of a conflict: what conflicts and when, per occurrence; no patient data. */
function conflict(reply: FastifyReply, e: SlotConflict, series: boolean) {
  const occurrences = e.occurrences.map((o) => ({
    index: o.index,
    start: o.start,
    end: o.end,
    conflicts: o.conflicts.map((c) => ({ kind: c.kind, start: c.start, end: c.end })),
  }));
  return reply.code(409).send({
    error: {
      code: e.code,
      message: e.message,
      ...(series ? { occurrences } : { conflicts: occurrences[0]?.conflicts ?? [] }),
    },
  });
}

export function registerSchedulingRoutes(app: FastifyInstance, s: Services, resolve: Resolve): void {
  const chart = s.custos.chart;

  /** Runs a gate call that books or moves; a SlotConflict is answered 409 with its conflicts. */
  async function booking<T>(
    reply: FastifyReply,
    call: Promise<T>,
    series = false,
  ): Promise<{ value: T } | { sent: FastifyReply }> {
    try {
      return { value: await named(call, inBody) };
    } catch (e) {
      if (e instanceof SlotConflict) {
        return { sent: conflict(reply, e, series) };
      }
      throw e;
    }
  }

  const emit = (kind: AppointmentEventKind, practiceId: string, changes: readonly AppointmentChange[]) =>
    announce(s.appointmentEvents, kind, practiceId, changes, s.clock());

  // --- working hours and free time (no patient data) -------------------------------------------
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/clinicians/:id/hours',
      summary:
        "A clinician's working hours {clinicianId, timeZone, hours: [{weekday, start, end, room}]} (local times in the practice's zone): the clinician, the administrator, front desk",
      tags: TAGS,
      auth: 'session',
      params: ClinicianParams,
      handler: async (req) => chart.readWorkingHours(req.ctx, req.params.id),
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'PUT',
      url: '/api/v1/clinicians/:id/hours',
      summary:
        "Replace a clinician's week {hours: [{weekday: mon…sun, start: HH:MM, end: HH:MM, room?}]}: split shifts are several entries; entries of a day may not overlap. The clinician, the administrator, front desk",
      tags: TAGS,
      auth: 'session',
      params: ClinicianParams,
      body: WorkingHoursInput,
      handler: async (req) => named(chart.setWorkingHours(req.ctx, req.params.id, req.body), inBody),
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/availability',
      summary:
        "A clinician's free time {clinicianId, from, to, slotMinutes?, stepMinutes?} over at most 92 days: working hours minus booked appointments and the past, and bookable slots of a length. Times only, no patient data {clinicianId, timeZone, hoursSet, free, slots?}",
      tags: TAGS,
      auth: 'session',
      body: AvailabilityInput,
      handler: async (req) => named(chart.availability(req.ctx, req.body), inBody),
    },
    resolve,
  );

  // --- appointments -----------------------------------------------------------------------------
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/appointments',
      summary: `Book {patientId, clinicianId, start, end | durationMinutes, room?, reason?}. The clinician joins the patient's care team if not on it. 201 the appointment; 409 {conflicts: [{kind: clinician|room|hours, start, end}]}. ${SEES}`,
      tags: TAGS,
      auth: 'session',
      body: BookInput,
      handler: async (req, reply) => {
        const r = await booking(reply, chart.bookAppointment(req.ctx, req.body));
        if ('sent' in r) {
          return r.sent;
        }
        const booked = r.value;
        await emit('booked', req.ctx.practiceId, [booked.change]);
        return reply.code(201).send(booked.appointment);
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/appointments/series',
      summary: `Book a weekly series {…as a booking, count | until, everyWeeks?}: the same weekday and local time (across daylight-saving changes), at most 104 occurrences, all or nothing. 201 {seriesId, appointments}; 409 {occurrences: [{index, start, end, conflicts}]}. ${SEES}`,
      tags: TAGS,
      auth: 'session',
      body: SeriesInput,
      handler: async (req, reply) => {
        const r = await booking(reply, chart.bookSeries(req.ctx, req.body), true);
        if ('sent' in r) {
          return r.sent;
        }
        const booked = r.value;
        await emit('booked', req.ctx.practiceId, booked.changes);
        return reply.code(201).send({ seriesId: booked.seriesId, appointments: booked.appointments });
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'PUT',
      url: '/api/v1/appointments/:id',
      summary: `Reschedule a booked appointment {expectedVersion, start, end | durationMinutes, clinicianId?, room?, reason?}: 412 when the version is stale, 409 on conflicts; its reminder is due again. ${SEES}`,
      tags: TAGS,
      auth: 'session',
      params: AppointmentParams,
      body: RescheduleInput,
      handler: async (req, reply) => {
        const r = await booking(reply, chart.rescheduleAppointment(req.ctx, req.params.id, req.body));
        if ('sent' in r) {
          return r.sent;
        }
        const moved = r.value;
        await emit('rescheduled', req.ctx.practiceId, [moved.change]);
        return moved.appointment;
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/appointments/:id/cancel',
      summary: `Cancel a booked appointment {reasonCode: patient-request|clinician-unavailable|practice|weather|other, expectedVersion?}; the slot is free again (POST /api/v1/waiting-list/matches finds who could take it). ${SEES}`,
      tags: TAGS,
      auth: 'session',
      params: AppointmentParams,
      body: CancelInput,
      handler: async (req) => {
        const r = await named(chart.cancelAppointment(req.ctx, req.params.id, req.body), inBody);
        await emit('cancelled', req.ctx.practiceId, [r.change]);
        return r.appointment;
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/appointments/:id/no-show',
      summary: `Mark a booked appointment that has started a no-show {expectedVersion?}. ${SEES}`,
      tags: TAGS,
      auth: 'session',
      params: AppointmentParams,
      body: NoShowInput,
      handler: async (req) => {
        const r = await named(chart.markNoShow(req.ctx, req.params.id, req.body), inBody);
        await emit('no-show', req.ctx.practiceId, [r.change]);
        return r.appointment;
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/calendar',
      summary: `A clinician's calendar {clinicianId? (default: the caller), from, to} over at most 92 days, cancelled appointments left out {clinicianId, timeZone, entries: [{start, end, room, status, appointment?, patient?: {id, name?, phone?, email?}}]}: a patient the caller may not see is only busy time. ${SEES}`,
      tags: TAGS,
      auth: 'session',
      body: RangeInput,
      handler: async (req) => named(chart.calendar(req.ctx, req.body), inBody),
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/patients/:id/appointments',
      summary: `A patient's appointments, oldest first {appointments}. ${SEES}`,
      tags: TAGS,
      auth: 'session',
      params: PatientParams,
      handler: async (req) => ({ appointments: await chart.listPatientAppointments(req.ctx, req.params.id) }),
    },
    resolve,
  );

  // --- waiting list -----------------------------------------------------------------------------
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/waiting-list',
      summary: `Put a patient on the waiting list {patientId, clinicianId? (absent: any), note?, preferred?: {weekdays?, from?, to?}}. 201 the entry. The note is clinical, like the reason for a visit. ${SEES}`,
      tags: TAGS,
      auth: 'session',
      body: WaitingInput,
      handler: async (req, reply) =>
        reply.code(201).send(await named(chart.addToWaitingList(req.ctx, req.body), inBody)),
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/waiting-list',
      summary:
        'The waiting list, oldest first {entries: [{id, patientId, clinicianId, preferred, status, note?, patient}]}; `?clinicianId=` keeps that clinician’s entries and those for any clinician. Only patients the caller may see',
      tags: TAGS,
      auth: 'session',
      handler: async (req) => {
        const q = (req.raw.query ?? {}) as Record<string, unknown>;
        const extra = Object.keys(q).filter((k) => k !== 'clinicianId');
        if (extra.length > 0 || (q.clinicianId !== undefined && typeof q.clinicianId !== 'string')) {
          throw validationError('query', 'takes clinicianId only');
        }
        const clinicianId = q.clinicianId as string | undefined;
        return {
          entries: await named(chart.listWaitingList(req.ctx, clinicianId), (f) => `query.${f}`),
        };
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/waiting-list/matches',
      summary:
        'The waiting entries a freed slot {clinicianId, start, end} suits (that clinician or any, preferred weekdays and times), oldest first {entries}',
      tags: TAGS,
      auth: 'session',
      body: MatchInput,
      handler: async (req) => ({ entries: await named(chart.matchWaitingList(req.ctx, req.body), inBody) }),
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'DELETE',
      url: '/api/v1/waiting-list/:id',
      summary: 'Take a patient off the waiting list. 204',
      tags: TAGS,
      auth: 'session',
      params: EntryParams,
      handler: async (req, reply) => {
        await chart.removeFromWaitingList(req.ctx, req.params.id);
        return reply.code(204).send();
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/waiting-list/:id/offer',
      summary:
        "Book a freed slot for a waiting patient {start, end | durationMinutes, clinicianId? (default: the entry's), room?} and close the entry. 201 the appointment; 409 on conflicts",
      tags: TAGS,
      auth: 'session',
      params: EntryParams,
      body: OfferInput,
      handler: async (req, reply) => {
        const r = await booking(reply, chart.offerSlot(req.ctx, req.params.id, req.body));
        if ('sent' in r) {
          return r.sent;
        }
        const booked = r.value;
        await emit('booked', req.ctx.practiceId, [booked.change]);
        return reply.code(201).send(booked.appointment);
      },
    },
    resolve,
  );

  // --- the practice's scheduling settings -------------------------------------------------------
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/scheduling/settings',
      summary:
        "The practice's time zone (working hours, series and reminders are in it) and reminder lead time {practiceName, timeZone, reminderLeadHours}",
      tags: TAGS,
      auth: 'session',
      handler: async (req) => schedulingSettings(s.custos.database.db, req.ctx.practiceId),
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'PUT',
      url: '/api/v1/scheduling/settings',
      summary:
        'Set {timeZone?: IANA name, reminderLeadHours?: 1–168} (administrator, re-authentication within 5 minutes)',
      tags: TAGS,
      auth: 'session',
      roles: ['admin'],
      stepUp: true,
      body: SchedulingSettingsInput,
      handler: async (req) => {
        const set = await named(
          setSchedulingSettings(s.custos.database.db, req.ctx.practiceId, req.body),
          (f) => (f.startsWith('settings.') ? `body.${f.slice('settings.'.length)}` : inBody(f)),
        );
        await securityEvent(
          s.custos.database.db,
          req.ctx,
          {
            action: 'settings-changed',
            resourceType: 'practice',
            resourceId: req.ctx.practiceId,
            outcome: 'success',
            detail: { scheduling: true, timeZone: set.timeZone, reminderLeadHours: set.reminderLeadHours },
          },
          s.clock(),
        );
        return set;
      },
    },
    resolve,
  );
}

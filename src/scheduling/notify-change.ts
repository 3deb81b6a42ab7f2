import type { AppointmentChange } from '../chart/appointments.service.ts';
import type { AppointmentEventKind, AppointmentEvents } from './events.ts';

/**
 * Tells the listeners (webhooks) about committed appointment changes, after the gate call that
 * made them has returned: an event per appointment, ids and the time slot only. A listener's
 * failure is the listener's (AppointmentEvents reports it); the change stands.
 */
export async function announce(
  events: AppointmentEvents,
  kind: AppointmentEventKind,
  practiceId: string,
  changes: readonly AppointmentChange[],
  at: Date,
): Promise<void> {
  for (const c of changes) {
    await events.emit({
      kind,
      practiceId,
      appointmentId: c.appointmentId,
      patientId: c.patientId,
      clinicianId: c.clinicianId,
      room: c.room,
      start: c.start,
      end: c.end,
      at,
    });
  }
}

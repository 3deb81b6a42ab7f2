import { GRANTS } from '../access/grants.ts';
import type { Subject } from '../access/policy.ts';

/**
 * Who may do what with schedules that are not a patient's: working hours, free time, a
 * clinician's calendar as a whole. Deny by default. Whatever touches a patient (booking, the
 * patients in a calendar) is decided per patient by the policy (`src/access/policy.ts`), in the
 * `appointments` section.
 */

/** Roles that book appointments (they write the `appointments` section): clinician, nurse, front desk. */
export const SCHEDULING_ROLES = Object.freeze(
  (Object.keys(GRANTS) as (keyof typeof GRANTS)[]).filter(
    (r) => r !== 'patient' && GRANTS[r].write.includes('appointments'),
  ),
);

/** Roles that may see and be booked as a clinician. */
export const BOOKABLE_ROLES = Object.freeze(['clinician', 'nurse'] as const);

/** Roles that keep anyone's working hours (besides the clinician's own). */
const HOURS_KEEPERS = ['admin', 'frontdesk'] as const;

/** Working hours: the clinician's own, the administrator's and front desk's; the system actor. */
export function mayKeepHours(subject: Subject, clinicianId: string): boolean {
  if (subject.kind === 'system') {
    return true;
  }
  if (subject.kind !== 'user') {
    return false;
  }
  return (
    subject.id === clinicianId || subject.roles.some((r) => (HOURS_KEEPERS as readonly string[]).includes(r))
  );
}

/** Free time, calendars and the waiting list: the roles that book, and the system actor. */
export function maySchedule(subject: Subject): boolean {
  if (subject.kind === 'system') {
    return true;
  }
  return (
    subject.kind === 'user' && subject.roles.some((r) => (SCHEDULING_ROLES as readonly string[]).includes(r))
  );
}

/** Whether a user account with these roles can be booked as the clinician of an appointment. */
export const isBookable = (roles: readonly string[]): boolean =>
  roles.some((r) => (BOOKABLE_ROLES as readonly string[]).includes(r));

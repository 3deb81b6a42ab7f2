import { createHash } from 'node:crypto';
import { isGateRead } from './config.ts';

/**
 * The two-person rule for integrations (docs/integrations.md). The administrator configures
 * receivers but may not read any chart; an allow-list that reads about the patient through the
 * gate would let them route patient identities to a server of their choosing. So such an
 * integration delivers nothing until a privacy officer, another person, approves exactly that
 * configuration (NIST SP 800-53 AC-5 separation of duties; HIPAA 45 CFR 164.308(a)(3)).
 *
 * Which fields need approval: every field read through the gate (`DISCLOSURE_READS`):
 * `patientName`, `patientEmail`, `patientPhone`, and `clinicianName` too. The last names a staff
 * member, but it is read under the patient's appointments and tells the receiver whom the patient
 * sees, which can reveal the kind of care (the specialty is never sent for that reason). Fields
 * taken from the event itself (`start`, `end`, the opaque `appointmentId`, `room`) do not.
 *
 * This module is pure: states, the configuration hash an approval binds to, and the transitions.
 */

export const APPROVAL_STATES = ['not-required', 'pending-approval', 'approved', 'rejected'] as const;
export type ApprovalState = (typeof APPROVAL_STATES)[number];

/** What an integration looks like from outside: the admin's on/off switch and the approval together. */
export type IntegrationStatus = 'active' | 'pending-approval' | 'rejected' | 'inactive';
export const INTEGRATION_STATUSES: readonly IntegrationStatus[] = [
  'active',
  'pending-approval',
  'rejected',
  'inactive',
];

/** Whether an allow-list needs a privacy officer's approval: it names a field read through the gate. */
export const needsApproval = (fields: readonly string[]): boolean => fields.some(isGateRead);

/** What an approval covers: where the data goes, which fields, on which events, and why. */
export interface ApprovedConfig {
  readonly url: string;
  readonly fields: readonly string[];
  readonly events: readonly string[];
  readonly purpose: string;
}

/**
 * SHA-256 (hex) of a configuration in a canonical form: fields and events as sorted sets (their
 * order changes nothing that is sent), the URL as stored (already normalized by `checkUrl`).
 * The purpose is part of it: the officer approves a disclosure for a stated reason, and it is
 * what each patient's accounting shows.
 *
 * @example configHash({ url: 'https://h.example/x', fields: ['start'], events: ['booked'], purpose: 'p' })
 */
export function configHash(c: ApprovedConfig): string {
  const canonical = JSON.stringify({
    v: 1,
    url: c.url,
    fields: [...new Set(c.fields)].sort(),
    events: [...new Set(c.events)].sort(),
    purpose: c.purpose,
  });
  return createHash('sha256').update(canonical, 'utf8').digest('hex');
}

/**
 * What a change of the configuration does to the approval:
 * - `not-required`: the new allow-list reads nothing through the gate;
 * - `submit`: it does, and the new configuration is not the approved one (or there was no
 *   request yet, or a decided request is replaced by a new configuration): wait for approval;
 * - `keep`: nothing that an approval covers changed (a rename, the on/off switch), so the
 *   state stays as it is: approved, pending (same submitter) or rejected.
 */
export function afterChange(
  before: { readonly state: ApprovalState; readonly hash: string; readonly approvedHash: string | null },
  after: { readonly fields: readonly string[]; readonly hash: string },
): 'keep' | 'not-required' | 'submit' {
  if (!needsApproval(after.fields)) {
    return before.state === 'not-required' ? 'keep' : 'not-required';
  }
  switch (before.state) {
    case 'not-required':
      return 'submit';
    case 'approved':
      return after.hash === before.approvedHash ? 'keep' : 'submit';
    case 'pending-approval':
    case 'rejected':
      return after.hash === before.hash ? 'keep' : 'submit';
    default:
      return 'submit';
  }
}

/**
 * Whether an integration's current configuration may be delivered to (its on/off switch aside):
 * either it reads nothing through the gate, or an approval covers exactly this configuration.
 * Checked when a delivery is queued and again before each attempt.
 */
export function mayDeliver(i: {
  readonly approval: ApprovalState;
  readonly approved_config_hash: string | null;
  readonly url: string;
  readonly fields: readonly string[];
  readonly events: readonly string[];
  readonly purpose: string;
}): boolean {
  switch (i.approval) {
    case 'not-required':
      return !needsApproval(i.fields);
    case 'approved':
      return i.approved_config_hash !== null && i.approved_config_hash === configHash(i);
    default:
      return false;
  }
}

/** The status shown to the administrator and the officer. */
export function integrationStatus(i: {
  readonly active: boolean;
  readonly approval: ApprovalState;
}): IntegrationStatus {
  if (!i.active) {
    return 'inactive';
  }
  if (i.approval === 'pending-approval' || i.approval === 'rejected') {
    return i.approval;
  }
  return 'active';
}

import { BlockList, isIP } from 'node:net';
import { z } from 'zod';
import { DISCLOSURE_READS, type DisclosureRead } from '../chart/disclosures.service.ts';
import { validationError } from '../errors.ts';
import type { AppointmentEventKind } from '../scheduling/events.ts';

/**
 * What an integration may be configured with (HIPAA 45 CFR 164.502(b), minimum necessary): the
 * fields a receiver gets are an explicit allow-list, checked here at configuration time, so a
 * forbidden field is refused with a 400 naming it before anything is ever sent.
 */

export const APPOINTMENT_EVENTS = [
  'booked',
  'rescheduled',
  'cancelled',
  'no-show',
] as const satisfies readonly AppointmentEventKind[];

/** The default allow-list: the time slot and an opaque appointment id (not the internal uuid). */
export const DEFAULT_FIELDS = ['start', 'end', 'appointmentId'] as const;

/** Fields taken from the event itself. */
export const EVENT_FIELDS = ['start', 'end', 'appointmentId', 'room'] as const;

/** Every field an integration may be configured with. */
export const ALLOWED_FIELDS = [...EVENT_FIELDS, ...DISCLOSURE_READS] as const;
export type AllowedField = (typeof ALLOWED_FIELDS)[number];

export const isGateRead = (f: string): f is DisclosureRead =>
  (DISCLOSURE_READS as readonly string[]).includes(f);

/**
 * Names that are never sent to a third party, with the reason given in the 400. Compared without
 * case. Anything else not in ALLOWED_FIELDS is refused as unknown.
 */
const NEVER: Readonly<Record<string, string>> = Object.fromEntries([
  ...[
    'reason',
    'visitreason',
    'reasonforvisit',
    'note',
    'notes',
    'clinicalnotes',
    'diagnosis',
    'diagnoses',
    'condition',
    'conditions',
    'procedure',
    'procedures',
    'medication',
    'medications',
    'observation',
    'observations',
    'encounter',
    'treatment',
    'treatments',
    'therapyplan',
    'specialty',
    'clinicianspecialty',
    'appointmenttype',
    'type',
  ].map((f) => [f, 'clinical content is never sent to a third party']),
  ...[
    'patientid',
    'pseudonym',
    'birthdate',
    'patientbirthdate',
    'identifiers',
    'mrn',
    'ssn',
    'bsn',
    'address',
    'patientaddress',
  ].map((f) => [f, 'an identifier or detail beyond what an appointment event needs is never sent']),
]);

/** Why a field may never be configured, or undefined when it is not one of those. */
export const neverReason = (field: string): string | undefined => NEVER[field.toLowerCase()];

/** Checks an allow-list; a refused field is a 400 naming it (`fields.<index>`). Duplicates collapse. */
export function checkFields(fields: readonly string[]): AllowedField[] {
  const out: AllowedField[] = [];
  fields.forEach((f, i) => {
    const never = neverReason(f);
    if (never !== undefined) {
      throw validationError(`fields.${i}`, `"${f}" may not be sent: ${never}`);
    }
    if (!(ALLOWED_FIELDS as readonly string[]).includes(f)) {
      throw validationError(`fields.${i}`, `must be one of ${ALLOWED_FIELDS.join(', ')}`);
    }
    if (!out.includes(f as AllowedField)) {
      out.push(f as AllowedField);
    }
  });
  if (out.length === 0) {
    throw validationError('fields', 'must name at least one field');
  }
  return out;
}

/** Where receivers may be: public HTTPS hosts, and private ones only when the operator allows it. */
export interface ReceiverPolicy {
  /**
   * Loopback, private, link-local and other non-public addresses (tests; an on-premises
   * receiver). Off by default: an integration must not become a way into the internal network.
   */
  readonly allowPrivateAddresses: boolean;
}

const NON_PUBLIC = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 3],
] as const) {
  NON_PUBLIC.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 127],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
  ['64:ff9b::', 96],
] as const) {
  NON_PUBLIC.addSubnet(net, prefix, 'ipv6');
}

/** Whether an IP address is loopback, private, link-local, multicast or otherwise not public. */
export function isNonPublicAddress(address: string): boolean {
  const v = isIP(address);
  if (v === 4) {
    return NON_PUBLIC.check(address, 'ipv4');
  }
  if (v === 6) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (mapped?.[1]) {
      return NON_PUBLIC.check(mapped[1], 'ipv4');
    }
    return NON_PUBLIC.check(address, 'ipv6');
  }
  return true;
}

/** The host of a URL as an address to check (`[::1]` -> `::1`). */
export const hostOf = (u: URL): string => u.hostname.replace(/^\[(.*)\]$/, '$1');

/** Checks a receiver URL: https only, no credentials or fragment, a public host unless allowed. */
export function checkUrl(raw: string, policy: ReceiverPolicy): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw validationError('url', 'must be an absolute https:// URL');
  }
  if (u.protocol !== 'https:') {
    throw validationError('url', 'must use https://');
  }
  if (u.username !== '' || u.password !== '') {
    throw validationError('url', 'must not carry credentials (the signature authenticates Custos)');
  }
  if (u.hash !== '') {
    throw validationError('url', 'must not have a fragment');
  }
  const host = hostOf(u);
  const lower = host.toLowerCase();
  const local = lower === 'localhost' || lower.endsWith('.localhost') || lower.endsWith('.local');
  if (!policy.allowPrivateAddresses && (local || (isIP(host) !== 0 && isNonPublicAddress(host)))) {
    throw validationError('url', 'must be a public host (private and loopback receivers are not enabled)');
  }
  return u.toString();
}

const text = (max: number, min = 1) =>
  z
    .string('must be a string')
    .trim()
    .min(min, min === 1 ? 'must not be empty' : `must have at least ${min} characters`)
    .max(max, `must be at most ${max} characters`);

export const IntegrationInput = z
  .object({
    name: text(100),
    url: z.string('must be a string').max(2000, 'must be at most 2000 characters'),
    fields: z.array(z.string('must be a string').max(100, 'is not a known field')).max(20).optional(),
    events: z
      .array(z.enum(APPOINTMENT_EVENTS, `must be one of ${APPOINTMENT_EVENTS.join(', ')}`))
      .min(1, 'must name at least one event')
      .optional(),
    /** Why the receiver gets the data (shown in the accounting of disclosures). Never health data. */
    purpose: text(200, 3),
  })
  .strict();
export type IntegrationInput = z.infer<typeof IntegrationInput>;

export const IntegrationPatch = IntegrationInput.partial()
  .extend({ active: z.boolean('must be true or false').optional() })
  .strict();
export type IntegrationPatch = z.infer<typeof IntegrationPatch>;

const expectedVersion = z
  .number('must be a number')
  .int('must be a whole number')
  .min(1, 'must be at least 1')
  .optional();

/** The privacy officer's approval: optionally of the version they reviewed (412 when it changed since). */
export const ApproveInput = z.object({ expectedVersion }).strict();

/** A rejection says why, for the administrator (about the configuration; never health data). */
export const RejectInput = z.object({ reason: text(500, 3), expectedVersion }).strict();

/** Parses with zod; a failure is a validation error naming the field (without the value). */
export function parse<T extends z.ZodType>(schema: T, input: unknown): z.infer<T> {
  const r = schema.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = (issue?.path ?? []).map(String).join('.') || 'integration';
    throw validationError(field, issue?.message ?? 'is invalid');
  }
  return r.data;
}

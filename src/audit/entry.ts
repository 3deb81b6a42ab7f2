/**
 * What an audit entry records (DESIGN.md "The audit trail"): who, what, which, when, where,
 * why and the outcome. Entries hold ids and pseudonyms only, never health data or names.
 */
export type AuditOutcome = 'success' | 'denied' | 'error';

export interface AuditEvent {
  readonly action: string;
  readonly resourceType: string;
  readonly resourceId?: string | null;
  readonly patientPseudonym?: string | null;
  readonly outcome: AuditOutcome;
  /** A reason code (`no-relationship`, `version-conflict`), never free text from a user. */
  readonly reason?: string | null;
  /** Ids, pseudonyms and counts only (for a search: the pseudonyms it returned). */
  readonly detail?: Readonly<Record<string, string | number | boolean | readonly string[]>> | null;
}

/**
 * Encodes control characters so that no field can forge a line in a log or a report
 * (OWASP log injection): `\n` becomes `\u000a`.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

export function encodeControl(value: string): string {
  return value.replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

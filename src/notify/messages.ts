import { CustosError, validationError } from '../errors.ts';
import { buildIcs } from './ics.ts';

/**
 * Notification builders. A notification leaves the clinic by e-mail, over networks and into
 * mailboxes we do not control, so it carries only what the minimum-necessary standard allows
 * (45 CFR 164.502(b), 164.514(d)): the practice's name, the date and time, and a link to the
 * portal. Never the clinician, their specialty, the reason for the visit or any clinical content:
 * "Appointment at the oncology clinic with Dr X about the biopsy" is health data.
 *
 * The builders take only those fields, by construction: the parameter types reject any other
 * property at compile time (passing a whole appointment object does not compile), and a runtime
 * allow-list throws on any other key, for callers that launder the type. The mailer accepts only
 * what these builders return (see `notificationContent`), so no other text can be mailed.
 */

/** What an appointment reminder may say. */
export interface AppointmentReminderInput {
  readonly practiceName: string;
  readonly startsAt: Date;
  readonly endsAt: Date;
  /** IANA time zone the patient sees the time in, e.g. `Europe/Amsterdam`. */
  readonly timeZone: string;
  readonly portalUrl: string;
  /** Opaque, stable id of the appointment (the calendar UID); never a name or a code. */
  readonly appointmentRef: string;
  /** BCP 47 locale for the date and time (default `en-GB`); the wording is English. */
  readonly locale?: string;
}

/** What a "you have a new message" notice may say. */
export interface NewMessageNoticeInput {
  readonly practiceName: string;
  readonly portalUrl: string;
}

const BUILT = Symbol('custos.notification');

/** The content of a notification: what the e-mail says. */
export interface NotificationContent {
  readonly subject: string;
  readonly text: string;
  readonly html: string;
  /** RFC 5545 calendar object (CRLF line ends), for appointment reminders. */
  readonly ics?: string;
}

/**
 * A message made by one of the builders below; the only thing `Mailer.send` accepts. It keeps
 * a reference to the content the builder made (a module-private symbol), so a copy with a field
 * replaced (`{ ...notice, text: chartNote }`) is recognized and refused.
 */
export interface Notification extends NotificationContent {
  readonly [BUILT]: NotificationContent;
}

const made = new WeakSet<NotificationContent>();

const seal = (content: NotificationContent): Notification => {
  const original = Object.freeze({ ...content });
  made.add(original);
  return Object.freeze({ ...original, [BUILT]: original });
};

/**
 * The content a builder made, when `value` is that builder's result or a copy of it with other
 * fields added (`{ to, ...notification }`); undefined when it is not, or when its subject, text,
 * html or ics differ from what the builder made.
 */
export function notificationContent(value: unknown): NotificationContent | undefined {
  if (typeof value !== 'object' || value === null) {
    return undefined;
  }
  const original = (value as { [BUILT]?: unknown })[BUILT];
  if (typeof original !== 'object' || original === null || !made.has(original as NotificationContent)) {
    return undefined;
  }
  const o = original as NotificationContent;
  const v = value as Partial<NotificationContent>;
  const same = v.subject === o.subject && v.text === o.text && v.html === o.html && v.ics === o.ics;
  return same ? o : undefined;
}

/** `T` with every property that `Shape` does not name typed `never`: extra fields do not compile. */
export type Exactly<T, Shape> = T & Record<Exclude<keyof T, keyof Shape>, never>;

const REMINDER_KEYS = [
  'practiceName',
  'startsAt',
  'endsAt',
  'timeZone',
  'portalUrl',
  'appointmentRef',
  'locale',
] as const satisfies readonly (keyof AppointmentReminderInput)[];
const NOTICE_KEYS = ['practiceName', 'portalUrl'] as const satisfies readonly (keyof NewMessageNoticeInput)[];

const DEFAULT_LOCALE = 'en-GB';
const FOOTER = 'This message was sent automatically. Please do not reply to it.';

/**
 * Appointment reminder: practice, date and time, portal link, and an .ics calendar object.
 * `now` is the calendar's DTSTAMP (default the current time).
 * @example
 * const n = appointmentReminder({
 *   practiceName: 'Praktijk Zuid', startsAt, endsAt, timeZone: 'Europe/Amsterdam',
 *   portalUrl: config.portalUrl, appointmentRef: appointment.id,
 * });
 * await mailer.send({ to, ...n });
 */
export function appointmentReminder<T extends AppointmentReminderInput>(
  input: Exactly<T, AppointmentReminderInput>,
  options: { readonly now?: Date } = {},
): Notification {
  const fields = allowOnly(input, REMINDER_KEYS, 'appointmentReminder');
  const practiceName = checkPracticeName(fields.practiceName);
  const portalUrl = checkPortalUrl(fields.portalUrl);
  const startsAt = checkDate(fields.startsAt, 'startsAt');
  const endsAt = checkDate(fields.endsAt, 'endsAt');
  if (endsAt.getTime() <= startsAt.getTime()) {
    throw validationError('endsAt', 'must be after startsAt');
  }
  const timeZone = checkTimeZone(fields.timeZone);
  const locale = checkLocale(fields.locale);
  const appointmentRef = checkRef(fields.appointmentRef);
  const now = options.now === undefined ? new Date() : checkDate(options.now, 'now');

  const when = formatWhen(startsAt, timeZone, locale);
  const sentence = `Reminder: your appointment at ${practiceName} on ${when.date} at ${when.time}`;
  const subject = sentence;
  const text = [
    `${sentence} (${when.zone}).`,
    '',
    'Sign in to the patient portal for details:',
    portalUrl,
    '',
    FOOTER,
    '',
  ].join('\n');
  const html = page(subject, [
    `${escapeHtml(sentence)} (${escapeHtml(when.zone)}).`,
    `Sign in to the <a href="${escapeHtml(portalUrl)}">patient portal</a> for details.`,
    escapeHtml(FOOTER),
  ]);
  const ics = buildIcs({
    uid: `appointment-${appointmentRef}@custos`,
    practiceName,
    startsAt,
    endsAt,
    now,
    portalUrl,
  });
  return seal({ subject, text, html, ics });
}

/**
 * "You have a new message" notice: the practice and a portal link, never the message.
 * @example await mailer.send({ to, ...newMessageNotice({ practiceName, portalUrl: config.portalUrl }) });
 */
export function newMessageNotice<T extends NewMessageNoticeInput>(
  input: Exactly<T, NewMessageNoticeInput>,
): Notification {
  const fields = allowOnly(input, NOTICE_KEYS, 'newMessageNotice');
  const practiceName = checkPracticeName(fields.practiceName);
  const portalUrl = checkPortalUrl(fields.portalUrl);
  const subject = `You have a new message from ${practiceName}`;
  const text = [`${subject}; read it in the portal:`, portalUrl, '', FOOTER, ''].join('\n');
  const html = page(subject, [
    `${escapeHtml(subject)}; read it in the <a href="${escapeHtml(portalUrl)}">patient portal</a>.`,
    escapeHtml(FOOTER),
  ]);
  return seal({ subject, text, html });
}

/**
 * The runtime allow-list: a plain object whose own keys are all in `allowed`. Error messages
 * name the unexpected field (when it looks like an identifier), never a value.
 */
function allowOnly<K extends string>(
  input: unknown,
  allowed: readonly K[],
  what: string,
): Partial<Record<K, unknown>> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw validationError(what, 'expects an object');
  }
  const proto = Object.getPrototypeOf(input);
  if (proto !== Object.prototype && proto !== null) {
    // A class instance (an Appointment entity) may carry more than its own keys show.
    throw validationError(what, 'expects a plain object with only the allowed fields');
  }
  for (const key of Reflect.ownKeys(input)) {
    if (typeof key !== 'string' || !(allowed as readonly string[]).includes(key)) {
      const name =
        typeof key === 'string' && /^[A-Za-z_$][\w$]{0,63}$/.test(key) ? key : 'an unexpected field';
      throw validationError(`${what}.${name}`, 'is not allowed in a notification (minimum necessary)');
    }
  }
  return input as Partial<Record<K, unknown>>;
}

/**
 * C0 and C1 controls, DEL and the Unicode line and paragraph separators: a line break in a
 * value that ends up in a header is header injection (a Bcc: line, a second message).
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
export const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

function checkPracticeName(value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '' || value.length > 200) {
    throw validationError('practiceName', 'must be 1-200 characters');
  }
  if (CONTROL.test(value)) {
    throw validationError('practiceName', 'must not contain line breaks or control characters');
  }
  return value.trim();
}

function checkPortalUrl(value: unknown): string {
  if (typeof value !== 'string' || value.length > 2048 || CONTROL.test(value) || /\s/.test(value)) {
    throw validationError('portalUrl', 'must be an https URL');
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw validationError('portalUrl', 'must be an https URL');
  }
  if (url.protocol !== 'https:') {
    throw validationError('portalUrl', 'must be an https URL');
  }
  if (url.username !== '' || url.password !== '') {
    throw validationError('portalUrl', 'must not carry credentials');
  }
  return url.href;
}

function checkDate(value: unknown, field: string): Date {
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) {
    throw validationError(field, 'must be a valid Date');
  }
  return new Date(value.getTime());
}

function checkTimeZone(value: unknown): string {
  if (typeof value !== 'string' || value === '') {
    throw validationError('timeZone', 'must be an IANA time zone name');
  }
  try {
    return new Intl.DateTimeFormat('en', { timeZone: value }).resolvedOptions().timeZone;
  } catch {
    throw validationError('timeZone', 'must be an IANA time zone name');
  }
}

function checkLocale(value: unknown): string {
  if (value === undefined) {
    return DEFAULT_LOCALE;
  }
  try {
    const [canonical] = typeof value === 'string' ? Intl.getCanonicalLocales(value) : [];
    if (canonical) {
      return canonical;
    }
  } catch {
    // RangeError for a malformed tag: reported below.
  }
  throw validationError('locale', 'must be a BCP 47 language tag');
}

function checkRef(value: unknown): string {
  if (typeof value !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(value)) {
    throw validationError('appointmentRef', 'must be an opaque id (letters, digits, . _ -; at most 128)');
  }
  return value;
}

/** Date, time and zone abbreviation as the patient reads them, in their time zone. */
function formatWhen(
  at: Date,
  timeZone: string,
  locale: string,
): { date: string; time: string; zone: string } {
  const date = new Intl.DateTimeFormat(locale, { dateStyle: 'full', timeZone }).format(at);
  const time = new Intl.DateTimeFormat(locale, { timeStyle: 'short', timeZone }).format(at);
  const zone =
    new Intl.DateTimeFormat(locale, { timeZone, timeZoneName: 'short' })
      .formatToParts(at)
      .find((p) => p.type === 'timeZoneName')?.value ?? timeZone;
  if (CONTROL.test(date + time + zone)) {
    // ICU output goes into the Subject header; it never contains controls, but say so loudly if it does.
    throw new CustosError('CUSTOS_ERR_INTEGRITY', 'date formatting produced control characters');
  }
  return { date, time, zone };
}

/** Escapes text for HTML element content and double-quoted attribute values. */
export function escapeHtml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** A minimal HTML body: paragraphs that are already escaped, no images, no remote content, no script. */
function page(title: string, paragraphs: readonly string[]): string {
  return [
    '<!DOCTYPE html>',
    `<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body>`,
    ...paragraphs.map((p) => `<p>${p}</p>`),
    '</body></html>',
    '',
  ].join('\n');
}

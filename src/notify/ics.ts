/**
 * The calendar object attached to an appointment reminder, RFC 5545 (iCalendar). It says as
 * little as the e-mail around it: SUMMARY "Appointment at <practice>", LOCATION the practice's
 * name, the times in UTC, a URL to the portal. No DESCRIPTION, no ORGANIZER or ATTENDEE (that
 * would name the clinician and the patient), no categories.
 *
 * No METHOD either: with METHOD:REQUEST the object becomes an iTIP invitation (RFC 5546 3.2.2,
 * iMIP RFC 6047) that must name an ORGANIZER and the ATTENDEEs and asks the patient to reply
 * to a no-reply address. A plain calendar object is what "add to my calendar" needs.
 */
export interface IcsEvent {
  readonly uid: string;
  readonly practiceName: string;
  readonly startsAt: Date;
  readonly endsAt: Date;
  /** DTSTAMP: when the object was made. */
  readonly now: Date;
  readonly portalUrl: string;
}

/** Builds the VCALENDAR text: CRLF line ends, lines folded at 75 octets, TEXT values escaped. */
export function buildIcs(event: IcsEvent): string {
  const lines = [
    'BEGIN:VCALENDAR',
    'VERSION:2.0',
    'PRODID:-//Custos//Notifications//EN',
    'CALSCALE:GREGORIAN',
    'BEGIN:VEVENT',
    `UID:${escapeText(event.uid)}`,
    `DTSTAMP:${utcDateTime(event.now)}`,
    `DTSTART:${utcDateTime(event.startsAt)}`,
    `DTEND:${utcDateTime(event.endsAt)}`,
    `SUMMARY:${escapeText(`Appointment at ${event.practiceName}`)}`,
    `LOCATION:${escapeText(event.practiceName)}`,
    // URL has value type URI (RFC 5545 3.8.4.6), not TEXT: it is not backslash-escaped. The
    // caller passes a parsed URL's href, which holds no line break.
    `URL:${event.portalUrl}`,
    'END:VEVENT',
    'END:VCALENDAR',
  ];
  return `${lines.map(foldLine).join('\r\n')}\r\n`;
}

/** TEXT escaping, RFC 5545 3.3.11: backslash, semicolon, comma, and line breaks as `\n`. */
export function escapeText(value: string): string {
  return value
    .replace(/\\/g, '\\\\')
    .replace(/;/g, '\\;')
    .replace(/,/g, '\\,')
    .replace(/\r\n|\r|\n/g, '\\n');
}

/** DATE-TIME in UTC form, RFC 5545 3.3.5 form #2: `19980119T070000Z` (seconds, no fraction). */
export function utcDateTime(at: Date): string {
  return at
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:]/g, '');
}

/**
 * Content-line folding, RFC 5545 3.1: no line longer than 75 octets excluding the CRLF; a long
 * line continues on the next after CRLF and one space. Splits between code points only, never
 * inside a UTF-8 sequence.
 */
export function foldLine(line: string): string {
  const limit = 75;
  const parts: string[] = [];
  let current = '';
  let octets = 0;
  for (const ch of line) {
    const size = Buffer.byteLength(ch, 'utf8');
    if (octets + size > limit) {
      parts.push(current);
      current = ' ';
      octets = 1;
    }
    current += ch;
    octets += size;
  }
  parts.push(current);
  return parts.join('\r\n');
}

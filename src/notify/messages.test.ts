import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isCustosError } from '../errors.ts';
import { escapeText, foldLine } from './ics.ts';
import { appointmentReminder, newMessageNotice, notificationContent } from './messages.ts';

const portalUrl = 'https://portal.example.org/';
const now = new Date('2026-03-20T09:00:00.250Z');

/** A reminder in Amsterdam; `at` is the start in UTC, the appointment lasts 30 minutes. */
const reminder = (at: string, extra: { practiceName?: string; locale?: string } = {}) =>
  appointmentReminder(
    {
      practiceName: extra.practiceName ?? 'Praktijk Zuid',
      startsAt: new Date(at),
      endsAt: new Date(new Date(at).getTime() + 30 * 60_000),
      timeZone: 'Europe/Amsterdam',
      portalUrl,
      appointmentRef: 'apt-7f3a9c',
      ...(extra.locale ? { locale: extra.locale } : {}),
    },
    { now },
  );

const unfold = (ics: string) => ics.replace(/\r\n[ \t]/g, '');

const expectValidation = (fn: () => unknown, field: string) => {
  try {
    fn();
  } catch (e) {
    expect(isCustosError(e, 'CUSTOS_ERR_VALIDATION')).toBe(true);
    expect((e as { field?: string }).field).toBe(field);
    return;
  }
  expect.fail(`expected a validation error on ${field}`);
};

describe('appointmentReminder', () => {
  it("says the practice, the date and the time in the patient's time zone, and links the portal", () => {
    const n = reminder('2026-06-16T12:30:00Z');
    expect(n.subject).toBe('Reminder: your appointment at Praktijk Zuid on Tuesday, 16 June 2026 at 14:30');
    expect(n.text).toBe(
      [
        'Reminder: your appointment at Praktijk Zuid on Tuesday, 16 June 2026 at 14:30 (CEST).',
        '',
        'Sign in to the patient portal for details:',
        'https://portal.example.org/',
        '',
        'This message was sent automatically. Please do not reply to it.',
        '',
      ].join('\n'),
    );
    expect(n.html).toBe(
      [
        '<!DOCTYPE html>',
        '<html><head><meta charset="utf-8"><title>Reminder: your appointment at Praktijk Zuid on Tuesday, 16 June 2026 at 14:30</title></head><body>',
        '<p>Reminder: your appointment at Praktijk Zuid on Tuesday, 16 June 2026 at 14:30 (CEST).</p>',
        '<p>Sign in to the <a href="https://portal.example.org/">patient portal</a> for details.</p>',
        '<p>This message was sent automatically. Please do not reply to it.</p>',
        '</body></html>',
        '',
      ].join('\n'),
    );
  });

  it('writes an RFC 5545 calendar object with the times in UTC and nothing but the practice', () => {
    expect(reminder('2026-06-16T12:30:00Z').ics).toBe(
      [
        'BEGIN:VCALENDAR',
        'VERSION:2.0',
        'PRODID:-//Custos//Notifications//EN',
        'CALSCALE:GREGORIAN',
        'BEGIN:VEVENT',
        'UID:appointment-apt-7f3a9c@custos',
        'DTSTAMP:20260320T090000Z',
        'DTSTART:20260616T123000Z',
        'DTEND:20260616T130000Z',
        'SUMMARY:Appointment at Praktijk Zuid',
        'LOCATION:Praktijk Zuid',
        'URL:https://portal.example.org/',
        'END:VEVENT',
        'END:VCALENDAR',
        '',
      ].join('\r\n'),
    );
  });

  it('follows daylight saving time: CET in winter, CEST in summer, and the day the clocks change', () => {
    expect(reminder('2026-01-13T08:00:00Z').text).toContain('on Tuesday, 13 January 2026 at 09:00 (CET).');
    // Spring forward, 29 March 2026: 02:00 CET becomes 03:00 CEST, so 01:30 UTC is 03:30.
    expect(reminder('2026-03-29T00:30:00Z').text).toContain('on Sunday, 29 March 2026 at 01:30 (CET).');
    expect(reminder('2026-03-29T01:30:00Z').text).toContain('on Sunday, 29 March 2026 at 03:30 (CEST).');
    // Fall back, 25 October 2026: 02:30 happens twice; the zone tells them apart, the .ics by UTC.
    const first = reminder('2026-10-25T00:30:00Z');
    const second = reminder('2026-10-25T01:30:00Z');
    expect(first.text).toContain('on Sunday, 25 October 2026 at 02:30 (CEST).');
    expect(second.text).toContain('on Sunday, 25 October 2026 at 02:30 (CET).');
    expect(first.ics).toContain('\r\nDTSTART:20261025T003000Z\r\n');
    expect(second.ics).toContain('\r\nDTSTART:20261025T013000Z\r\n');
  });

  it('formats the date in the requested locale', () => {
    expect(reminder('2026-06-16T12:30:00Z', { locale: 'nl-NL' }).subject).toBe(
      'Reminder: your appointment at Praktijk Zuid on dinsdag 16 juni 2026 at 14:30',
    );
  });

  it('escapes commas, semicolons and backslashes in the calendar and markup in the HTML', () => {
    const n = reminder('2026-06-16T12:30:00Z', { practiceName: 'Zuid, Noord; West \\ <b>Oost</b> & "Co"' });
    expect(n.ics).toContain('\r\nSUMMARY:Appointment at Zuid\\, Noord\\; West \\\\ <b>Oost</b> & "Co"\r\n');
    expect(n.ics).toContain('\r\nLOCATION:Zuid\\, Noord\\; West \\\\ <b>Oost</b> & "Co"\r\n');
    expect(n.html).toContain('Zuid, Noord; West \\ &lt;b&gt;Oost&lt;/b&gt; &amp; &quot;Co&quot;');
    expect(n.html).not.toContain('<b>');
    expect(escapeText('a\nb\r\nc,d;e\\f')).toBe('a\\nb\\nc\\,d\\;e\\\\f');
  });

  it('folds long lines at 75 octets without splitting a UTF-8 sequence, with CRLF line ends only', () => {
    const practiceName = `Praktijk voor fysiotherapie en manuele therapie Ærøskøbing–Zuidoost ${'é'.repeat(60)}`;
    const ics = reminder('2026-06-16T12:30:00Z', { practiceName }).ics ?? '';
    expect(ics.endsWith('\r\n')).toBe(true);
    expect(ics.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
    const lines = ics.slice(0, -2).split('\r\n');
    for (const line of lines) {
      expect(Buffer.byteLength(line, 'utf8')).toBeLessThanOrEqual(75);
      expect(line).not.toContain('\uFFFD');
    }
    expect(lines.filter((l) => l.startsWith(' ')).length).toBeGreaterThan(2);
    const unfolded = unfold(ics);
    expect(unfolded).toContain(`\r\nSUMMARY:Appointment at ${practiceName}\r\n`);
    expect(unfolded).toContain(`\r\nLOCATION:${practiceName}\r\n`);
  });

  it('folding is undone by unfolding, for any text (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 300 }), (s) => {
        const folded = foldLine(`X:${s}`);
        for (const line of folded.split('\r\n')) {
          expect(Buffer.byteLength(line, 'utf8')).toBeLessThanOrEqual(75);
        }
        expect(unfold(folded)).toBe(`X:${s}`);
      }),
    );
  });

  it('refuses any field beyond the allowed ones, at compile time and at run time', () => {
    const appointment = {
      practiceName: 'Praktijk Zuid',
      startsAt: new Date('2026-06-16T12:30:00Z'),
      endsAt: new Date('2026-06-16T13:00:00Z'),
      timeZone: 'Europe/Amsterdam',
      portalUrl,
      appointmentRef: 'apt-1',
      reason: 'MARKER-REASON',
      clinicianSpecialty: 'MARKER-SPECIALTY',
    };
    // @ts-expect-error a whole appointment does not compile: reason and clinicianSpecialty are never
    expectValidation(() => appointmentReminder(appointment), 'appointmentReminder.reason');
    const laundered = appointment as unknown as Parameters<typeof appointmentReminder>[0];
    expectValidation(() => appointmentReminder(laundered), 'appointmentReminder.reason');
    expectValidation(
      // @ts-expect-error diagnosis is not a field of a notice
      () => newMessageNotice({ practiceName: 'Praktijk Zuid', portalUrl, diagnosis: 'MARKER-DIAGNOSIS' }),
      'newMessageNotice.diagnosis',
    );
    const withSymbol = { practiceName: 'Praktijk Zuid', portalUrl, [Symbol('note')]: 'x' };
    // @ts-expect-error symbol keys are refused as well
    expectValidation(() => newMessageNotice(withSymbol), 'newMessageNotice.an unexpected field');
    class Entity {
      practiceName = 'Praktijk Zuid';
      portalUrl = portalUrl;
    }
    expectValidation(() => newMessageNotice(new Entity()), 'newMessageNotice');
  });

  it('rejects line breaks and control characters in the practice name (header injection)', () => {
    for (const practiceName of [
      'Zuid\r\nBcc: all@example.org',
      'Zuid\nX',
      'Zuid\rX',
      'Zuid\u2028X',
      'Zuid\u0000',
    ]) {
      expectValidation(() => newMessageNotice({ practiceName, portalUrl }), 'practiceName');
      expectValidation(() => reminder('2026-06-16T12:30:00Z', { practiceName }), 'practiceName');
    }
    expectValidation(() => newMessageNotice({ practiceName: '  ', portalUrl }), 'practiceName');
    expectValidation(() => newMessageNotice({ practiceName: 'x'.repeat(201), portalUrl }), 'practiceName');
  });

  it('checks the other fields', () => {
    const base = {
      practiceName: 'Praktijk Zuid',
      startsAt: new Date('2026-06-16T12:30:00Z'),
      endsAt: new Date('2026-06-16T13:00:00Z'),
      timeZone: 'Europe/Amsterdam',
      portalUrl,
      appointmentRef: 'apt-1',
    };
    expectValidation(() => appointmentReminder({ ...base, endsAt: base.startsAt }), 'endsAt');
    expectValidation(() => appointmentReminder({ ...base, startsAt: new Date('nope') }), 'startsAt');
    expectValidation(() => appointmentReminder({ ...base, timeZone: 'Mars/Olympus' }), 'timeZone');
    expectValidation(() => appointmentReminder({ ...base, locale: 'not a locale!' }), 'locale');
    expectValidation(
      () => appointmentReminder({ ...base, appointmentRef: 'Jansen, P. 1970-01-01' }),
      'appointmentRef',
    );
    expectValidation(
      () => appointmentReminder({ ...base, portalUrl: 'http://portal.example.org/' }),
      'portalUrl',
    );
    expectValidation(
      () => appointmentReminder({ ...base, portalUrl: 'https://u:p@portal.example.org/' }),
      'portalUrl',
    );
    expectValidation(
      () => appointmentReminder({ ...base, portalUrl: 'https://portal.example.org/\r\nX' }),
      'portalUrl',
    );
    expectValidation(() => appointmentReminder({ ...base, portalUrl: 'javascript:alert(1)' }), 'portalUrl');
  });
});

describe('newMessageNotice', () => {
  it('names the practice and links the portal, nothing else', () => {
    const n = newMessageNotice({ practiceName: 'Praktijk Zuid', portalUrl });
    expect(n.subject).toBe('You have a new message from Praktijk Zuid');
    expect(n.text).toBe(
      [
        'You have a new message from Praktijk Zuid; read it in the portal:',
        'https://portal.example.org/',
        '',
        'This message was sent automatically. Please do not reply to it.',
        '',
      ].join('\n'),
    );
    expect(n.html).toContain(
      '<p>You have a new message from Praktijk Zuid; read it in the <a href="https://portal.example.org/">patient portal</a>.</p>',
    );
    expect(n.ics).toBeUndefined();
  });
});

describe('notificationContent', () => {
  it("recognizes a builder's result and copies of it with a recipient, and nothing else", () => {
    const n = newMessageNotice({ practiceName: 'Praktijk Zuid', portalUrl });
    expect(notificationContent(n)?.subject).toBe(n.subject);
    expect(notificationContent({ to: 'p@example.org', ...n })?.text).toBe(n.text);
    expect(notificationContent({ ...n, text: 'Your biopsy result: MARKER-DIAGNOSIS' })).toBeUndefined();
    expect(notificationContent({ subject: n.subject, text: n.text, html: n.html })).toBeUndefined();
    expect(Object.isFrozen(n)).toBe(true);
  });
});

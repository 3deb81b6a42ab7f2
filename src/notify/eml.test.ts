import fc from 'fast-check';
import nodemailer from 'nodemailer';
import { describe, expect, it } from 'vitest';
import { decodeQuotedPrintable, decodeWords, parseMessage } from './eml.ts';

const composer = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'windows' });

const compose = async (mail: { subject: string; text: string; html: string; ics: string }) => {
  const info = await composer.sendMail({
    from: 'Custos <no-reply@localhost>',
    to: 'p@example.org',
    subject: mail.subject,
    text: mail.text,
    html: mail.html,
    attachments: [
      { filename: 'appointment.ics', content: mail.ics, contentType: 'text/calendar; charset=utf-8' },
    ],
  });
  return (info.message as Buffer).toString('utf8');
};

// Text as nodemailer carries it: it leaves out empty parts and turns lone CR and LF into CRLF,
// so compare on LF.
const text = fc
  .string({ unit: 'grapheme', minLength: 1, maxLength: 400 })
  .map((s) => s.replace(/\r\n?/g, '\n'));
const lf = (s: string | undefined) => s?.replace(/\r\n/g, '\n');

describe('parseMessage', () => {
  it('reads back what nodemailer composed: subject, text, html and the attachment (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc
          .string({ unit: 'grapheme', minLength: 1, maxLength: 120 })
          .filter((s) => !/[\r\n]/.test(s) && s.trim() === s),
        text,
        text,
        text,
        async (subject, body, html, ics) => {
          const parsed = parseMessage(await compose({ subject, text: body, html, ics }));
          expect(parsed.headers.get('subject')).toBe(subject);
          expect(lf(parsed.text)).toBe(body);
          expect(lf(parsed.html)).toBe(html);
          expect(parsed.attachments).toHaveLength(1);
          expect(parsed.attachments[0]!.filename).toBe('appointment.ics');
          expect(lf(parsed.attachments[0]!.content.toString('utf8'))).toBe(ics);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('decodes quoted-printable soft breaks and octets, and RFC 2047 encoded words', () => {
    expect(decodeQuotedPrintable('Praktijk =C3=86r=C3=B8 =\r\nZuid =3D').toString('utf8')).toBe(
      'Praktijk Ærø Zuid =',
    );
    expect(decodeWords('=?UTF-8?Q?Praktijk_=C3=86r=C3=B8?= =?UTF-8?B?IFp1aWQ=?= x')).toBe(
      'Praktijk Ærø Zuid x',
    );
  });
});

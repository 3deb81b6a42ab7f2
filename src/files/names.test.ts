import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { contentDisposition, sanitizeFileName } from './names.ts';

const bytes = (s: string): number => Buffer.byteLength(s, 'utf8');

/** Strings built from the characters that make names tricky: separators, dots, marks, controls. */
const tricky = fc
  .array(
    fc.constantFrom(
      '/',
      '\\',
      '.',
      '..',
      ' ',
      'e',
      '\u0301',
      '\u200b',
      '\u202e',
      '\ud83d',
      '\ude00',
      'CON',
      'a'.repeat(100),
      'ä'.repeat(60),
      '\u0000',
      '"',
      ':',
      '\u00a0',
      '\u2215',
      '.pdf',
    ),
    { maxLength: 30 },
  )
  .map((parts) => parts.join(''));

describe('sanitizing uploaded file names', () => {
  it.each<[string, string]>([
    ['../../etc/passwd', 'passwd'],
    ['..\\..\\boot.ini', 'boot.ini'],
    ['C:\\Users\\dr\\Scans\\befund.pdf', 'befund.pdf'],
    ['/var/www/../../root/.ssh/id_rsa', 'id_rsa'],
    ['report.pdf/..', 'report.pdf'],
    ['scan/', 'scan'],
    ['..', 'file'],
    ['...', 'file'],
    ['', 'file'],
    ['   ', 'file'],
    ['.htaccess', 'htaccess'],
    ['...hidden.txt', 'hidden.txt'],
    ['report..pdf', 'report.pdf'],
    ['report.pdf. . .', 'report.pdf'],
    ['report.pdf   ', 'report.pdf'],
    ['  spaced   out  name.txt', 'spaced out name.txt'],
    ['CON', '_CON'],
    ['con.txt', '_con.txt'],
    ['Nul.tar.gz', '_Nul.tar.gz'],
    ['COM1.pdf', '_COM1.pdf'],
    ['lpt9', '_lpt9'],
    ['COM¹.txt', '_COM¹.txt'],
    ['CON .txt', '_CON .txt'],
    ['CONSOLE.txt', 'CONSOLE.txt'],
    ['icon.png', 'icon.png'],
    ['a:b*c?d"e<f>g|h.pdf', 'a_b_c_d_e_f_g_h.pdf'],
    ['evil\u202efdp.exe', 'evilfdp.exe'],
    ['x\u2066y\u2069z\u200f.pdf', 'xyz.pdf'],
    ['zero\u200bwidth\ufeff.txt', 'zerowidth.txt'],
    ['a\u0000b\nc\rd\u007fe\u0085.pdf', 'abcde.pdf'],
    ['Me\u0301lanie.pdf', 'M\u00e9lanie.pdf'],
    ['Me\u200b\u0301lanie.pdf', 'M\u00e9lanie.pdf'],
    ['report\u2215..\u2215secret', 'report_._secret'],
    ['\ud800broken.txt', 'broken.txt'],
    ['Arztbrief Müller – 2024.pdf', 'Arztbrief Müller – 2024.pdf'],
    ['👩‍⚕️ note.txt', '👩‍⚕️ note.txt'],
  ])('%j becomes %j', (raw, safe) => {
    expect(sanitizeFileName(raw)).toBe(safe);
  });

  it('shortens to 255 UTF-8 bytes and keeps the extension', () => {
    const ascii = sanitizeFileName(`${'a'.repeat(400)}.pdf`);
    expect(bytes(ascii)).toBe(255);
    expect(ascii.endsWith('.pdf')).toBe(true);
    const umlauts = sanitizeFileName(`${'ä'.repeat(300)}.jpeg`);
    expect(bytes(umlauts)).toBeLessThanOrEqual(255);
    expect(umlauts).toMatch(/^ä+\.jpeg$/);
    const emoji = sanitizeFileName(`${'👩‍⚕️'.repeat(40)}.txt`); // 13 bytes each, never split
    expect(bytes(emoji)).toBeLessThanOrEqual(255);
    expect(emoji).toMatch(/^(?:👩‍⚕️)+\.txt$/u);
    const noExtension = sanitizeFileName('b'.repeat(300));
    expect(noExtension).toBe('b'.repeat(255));
  });

  it('gives a safe, stable name for any input', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 400 }), tricky), (raw) => {
        const safe = sanitizeFileName(raw);
        expect(safe.length).toBeGreaterThan(0);
        expect(bytes(safe)).toBeLessThanOrEqual(255);
        expect(safe).not.toMatch(/[/\\\p{Cc}\u202a-\u202e\u2066-\u2069<>:"|?*]/u);
        expect(safe).not.toMatch(/^[.\s]|[.\s]$/u);
        expect(safe).not.toMatch(/\.\./);
        expect(safe).not.toMatch(/^(?:con|prn|aux|nul|com\d|lpt\d)(?:\.|$)/i);
        expect(safe.normalize('NFC')).toBe(safe);
        expect(sanitizeFileName(safe)).toBe(safe);
        expect(() => encodeURIComponent(safe)).not.toThrow(); // no lone surrogates
      }),
      { numRuns: 2000 },
    );
  });

  it('keeps only the last path segment of any path', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom('..', '.', 'etc', 'C:', 'x y'), { maxLength: 5 }),
        fc.constantFrom('/', '\\'),
        fc.stringMatching(/^[a-z]{1,8}\.txt$/),
        (dirs, sep, leaf) => {
          expect(sanitizeFileName([...dirs, leaf].join(sep))).toBe(leaf);
        },
      ),
    );
  });
});

describe('the Content-Disposition header', () => {
  it('gives an ASCII fallback and the UTF-8 name per RFC 8187', () => {
    expect(contentDisposition('Befund März.pdf', false)).toBe(
      `attachment; filename="Befund M_rz.pdf"; filename*=UTF-8''Befund%20M%C3%A4rz.pdf`,
    );
    expect(contentDisposition('scan.png', true)).toBe(
      `inline; filename="scan.png"; filename*=UTF-8''scan.png`,
    );
  });

  it('cannot be used to inject a header, a parameter or a path', () => {
    const value = contentDisposition('a"; filename=evil.exe\r\nSet-Cookie: x=1\\..\\x.pdf', false);
    expect(value).not.toMatch(/[\r\n]/);
    expect(value).toBe(`attachment; filename="x.pdf"; filename*=UTF-8''x.pdf`);
    const quoted = contentDisposition('say "hi" 100%.txt', false);
    expect(quoted).toBe(`attachment; filename="say _hi_ 100_.txt"; filename*=UTF-8''say%20_hi_%20100%25.txt`);
  });

  it('is always well-formed and round-trips the sanitized name', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }), fc.boolean(), (raw, inline) => {
        const value = contentDisposition(raw, inline);
        const m =
          /^(inline|attachment); filename="([\x20-\x7e]*)"; filename\*=UTF-8''([A-Za-z0-9!#$&+\-.^_`|~%]*)$/.exec(
            value,
          );
        expect(m).not.toBeNull();
        expect(m?.[2]).not.toMatch(/["\\%]/);
        expect(decodeURIComponent(m?.[3] ?? '')).toBe(sanitizeFileName(raw));
      }),
      { numRuns: 1000 },
    );
  });
});

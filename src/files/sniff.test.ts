import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  fakeExecutable,
  PNG_SIGNATURE,
  pngChunk,
  pngText,
  tinyDicom,
  tinyJpeg,
  tinyPdf,
  tinyPng,
  tinyZip,
} from './fixtures.ts';
import { FileRejectedError, type RejectReason } from './rejection.ts';
import { ALL_TYPES, DEFAULT_LIMIT, detectType, type FileType, Sniffer, type SniffOptions } from './sniff.ts';

const ascii = (s: string): Buffer => Buffer.from(s, 'latin1');
const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');

const verdict = (b: Buffer, options?: SniffOptions): FileType | RejectReason => {
  const r = detectType(b, options);
  return r.ok ? r.type : r.reason;
};

/** Feeds `b` in pieces of the given sizes (cycled) and returns the verdict. */
function fed(b: Buffer, sizes: readonly number[], options?: SniffOptions): FileType | RejectReason {
  const s = new Sniffer(options);
  try {
    for (let i = 0, k = 0; i < b.length; k++) {
      const n = Math.max(1, sizes[k % sizes.length] ?? 1);
      s.push(b.subarray(i, i + n));
      i += n;
    }
    return s.end();
  } catch (e) {
    if (e instanceof FileRejectedError) {
      return e.reason;
    }
    throw e;
  }
}

/** Larger than the 1 KiB head, so `push` decides without waiting for `end`. */
const bigExecutable = (): Buffer => Buffer.concat([fakeExecutable(), Buffer.alloc(2000)]);

const text = (n: number, line = 'Patient reports mild headache, 5 mg as needed.\n'): Buffer =>
  utf8(line.repeat(Math.ceil(n / line.length)).slice(0, n));

describe('detecting the type from content', () => {
  it.each<[string, Buffer, FileType]>([
    ['a PDF', tinyPdf(), 'application/pdf'],
    [
      'a PDF 2.0 ending with CRLF',
      Buffer.concat([ascii('%PDF-2.0\r\n'), tinyPdf().subarray(9, -1), ascii('\r\n')]),
      'application/pdf',
    ],
    ['a PNG', tinyPng(), 'image/png'],
    ['a PNG with a text chunk', tinyPng([pngText('Comment', 'scanned 2024')]), 'image/png'],
    ['a JPEG', tinyJpeg(), 'image/jpeg'],
    ['a JPEG with a comment', tinyJpeg('scanner: synthetic'), 'image/jpeg'],
    ['plain ASCII text', utf8('Blood pressure 120/80.\r\nNext visit in 2 weeks.\n'), 'text/plain'],
    [
      'UTF-8 text with a BOM, umlauts and emoji',
      utf8('\ufeffBefund: Größe 1,80 m, Gewicht 75 kg ✓ 🩺\n'),
      'text/plain',
    ],
    ['text with "<" in prose', utf8('Dose <5 mg if eGFR < 30; a<b and x <= y.\n'), 'text/plain'],
    ['a single character', utf8('x'), 'text/plain'],
  ])('accepts %s', (_name, bytes, type) => {
    expect(verdict(bytes)).toBe(type);
  });

  it('accepts DICOM only when it is allowed', () => {
    expect(verdict(tinyDicom())).toBe('not-allowed');
    expect(verdict(tinyDicom(), { allowed: ALL_TYPES })).toBe('application/dicom');
  });

  it('refuses a type left off the allow-list', () => {
    expect(verdict(tinyPng(), { allowed: ['application/pdf'] })).toBe('not-allowed');
    expect(verdict(utf8('hello'), { allowed: ['image/png'] })).toBe('not-allowed');
  });
});

describe('spoofed and dangerous files (the requirement’s cases)', () => {
  it('refuses an executable renamed .pdf: the name is never consulted, the MZ header is', () => {
    expect(verdict(fakeExecutable())).toBe('executable');
  });

  it.each<[string, Buffer]>([
    ['ELF', Buffer.concat([ascii('\x7fELF\x02\x01\x01'), Buffer.alloc(100)])],
    ['Mach-O 64', Buffer.concat([Buffer.from([0xcf, 0xfa, 0xed, 0xfe]), Buffer.alloc(100)])],
    [
      'Mach-O universal / Java class',
      Buffer.concat([Buffer.from([0xca, 0xfe, 0xba, 0xbe]), Buffer.alloc(100)]),
    ],
    ['WebAssembly', Buffer.concat([ascii('\0asm'), Buffer.from([1, 0, 0, 0])])],
    ['a shell script', utf8('#!/bin/sh\nrm -rf /\n')],
    ['a script with env', utf8('#!/usr/bin/env python3\nprint(1)\n')],
  ])('refuses an executable: %s', (_name, bytes) => {
    expect(verdict(bytes)).toBe('executable');
  });

  it.each<[string, Buffer]>([
    ['ZIP', tinyZip()],
    ['empty ZIP', Buffer.concat([ascii('PK\x05\x06'), Buffer.alloc(18)])],
    ['gzip', Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0]), Buffer.alloc(20)])],
    ['7z', Buffer.concat([Buffer.from([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c]), Buffer.alloc(26)])],
    ['RAR', Buffer.concat([ascii('Rar!\x1a\x07\x01\x00'), Buffer.alloc(20)])],
    ['bzip2', Buffer.concat([ascii('BZh91AY&SY'), Buffer.alloc(20)])],
    ['xz', Buffer.concat([Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), Buffer.alloc(20)])],
    ['tar', Buffer.concat([Buffer.alloc(257), ascii('ustar\x0000'), Buffer.alloc(254)])],
  ])('refuses an archive: %s', (_name, bytes) => {
    expect(verdict(bytes)).toBe('archive');
  });

  it('refuses a PNG with a ZIP appended (polyglot)', () => {
    expect(verdict(Buffer.concat([tinyPng(), tinyZip()]))).toBe('polyglot');
  });

  it('refuses a PNG with a ZIP appended and a forged IEND after it', () => {
    const forged = Buffer.concat([tinyPng(), tinyZip(), pngChunk('IEND', Buffer.alloc(0))]);
    expect(verdict(forged)).toBe('polyglot');
  });

  it('refuses a PNG carrying a ZIP inside a well-formed chunk (readers find its end record)', () => {
    expect(verdict(tinyPng([pngChunk('zIPp', tinyZip())]))).toBe('polyglot');
  });

  it('refuses a JPEG with HTML appended (polyglot)', () => {
    const html = ascii('<html><body><script>alert(document.cookie)</script></body></html>');
    expect(verdict(Buffer.concat([tinyJpeg(), html]))).toBe('polyglot');
  });

  it('refuses a JPEG whose comment holds HTML in the first KiB (browsers would sniff it)', () => {
    expect(verdict(tinyJpeg('<script>alert(1)</script>'))).toBe('polyglot');
  });

  it('refuses a JPEG that is also a PDF (%PDF- in the first KiB)', () => {
    expect(verdict(tinyJpeg('%PDF-1.4 1 0 obj'))).toBe('polyglot');
  });

  it('refuses a PDF whose first KiB holds HTML or script', () => {
    const pdf = tinyPdf().toString('latin1');
    const withHtml = pdf.replace(
      '%\xe2\xe3\xcf\xd3\n',
      '%\xe2\xe3\xcf\xd3\n% <html><script>alert(1)</script>\n',
    );
    expect(verdict(Buffer.from(withHtml, 'latin1'))).toBe('polyglot');
  });

  it('refuses a PDF with data after %%EOF, and a PDF with a ZIP before a forged %%EOF', () => {
    expect(verdict(Buffer.concat([tinyPdf(), ascii('<html>trailing</html>')]))).toBe('polyglot');
    expect(verdict(Buffer.concat([tinyPdf(), tinyZip(), ascii('\n%%EOF\n')]))).toBe('polyglot');
  });

  it('refuses an image carrying a RAR or a Windows executable anywhere', () => {
    const rar = Buffer.concat([ascii('Rar!\x1a\x07\x00'), Buffer.alloc(40)]);
    expect(verdict(tinyPng([pngChunk('raRr', rar)]))).toBe('polyglot');
    expect(verdict(tinyPng([pngChunk('exEc', fakeExecutable())]))).toBe('polyglot');
  });

  it('refuses DICOM with anything in its preamble (DICOM/PE polyglots, CVE-2019-11687)', () => {
    const preamble = Buffer.alloc(128);
    preamble.write('II*\0', 0, 'latin1'); // a TIFF header
    expect(verdict(tinyDicom(preamble), { allowed: ALL_TYPES })).toBe('polyglot');
    expect(verdict(tinyDicom(fakeExecutable()), { allowed: ALL_TYPES })).toBe('executable');
  });

  it.each<[string, string]>([
    ['an SVG with a script', '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'],
    [
      'an SVG with an XML prolog',
      '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
    ],
    ['an SVG after blank lines', '\n\n   <svg><circle r="1"/></svg>'],
    ['an SVG later in a text', `${'Report line.\n'.repeat(200)}<svg onload=alert(1)>`],
  ])('refuses %s as svg', (_name, s) => {
    expect(verdict(utf8(s))).toBe('svg');
  });

  it.each<[string, string]>([
    ['HTML', '<!DOCTYPE html><html><body>hi</body></html>'],
    ['HTML in upper case after a BOM', '\ufeff  <HTML><BODY>hi</BODY></HTML>'],
    ['XML', '<?xml version="1.0"?><note>hi</note>'],
    ['a script tag in the middle of text', `${'Normal line.\n'.repeat(5000)}<script>alert(1)</script>\n`],
    ['an img onerror in text', 'See <img src=x onerror=alert(1)> here'],
    ['any text starting with a tag', '<b>bold</b>'],
  ])('refuses %s as markup', (_name, s) => {
    expect(verdict(utf8(s))).toBe('markup');
  });

  it('finds a script tag split across chunks at any position', () => {
    const body = utf8(`${'x'.repeat(1500)}<script>alert(1)</script>`);
    for (const size of [1, 2, 3, 1024, 1501, 1503, 1507]) {
      expect(fed(body, [size]), `chunks of ${size}`).toBe('markup');
    }
  });

  it('refuses a zero-byte file', () => {
    expect(verdict(Buffer.alloc(0))).toBe('empty');
    const s = new Sniffer();
    s.push(Buffer.alloc(0));
    expect(() => s.end()).toThrow('file: empty');
  });

  it('refuses 25 MiB + 1 byte as soon as the limit is passed, and accepts exactly 25 MiB', () => {
    const chunk = text(64 * 1024);
    const s = new Sniffer();
    let pushed = 0;
    let error: unknown;
    try {
      for (;;) {
        s.push(pushed + chunk.length > DEFAULT_LIMIT ? chunk.subarray(0, DEFAULT_LIMIT + 1 - pushed) : chunk);
        pushed += chunk.length;
      }
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(FileRejectedError);
    expect((error as FileRejectedError).reason).toBe('too-large');
    expect((error as FileRejectedError).message).toBe(
      `file: larger than the limit of ${DEFAULT_LIMIT} bytes`,
    );
    expect(s.size).toBe(DEFAULT_LIMIT + 1);
    expect(verdict(text(DEFAULT_LIMIT))).toBe('text/plain');
    expect(verdict(text(DEFAULT_LIMIT + 1))).toBe('too-large');
    expect(verdict(text(101), { limit: 100 })).toBe('too-large');
  });

  it('keeps refusing after a rejection', () => {
    const s = new Sniffer();
    expect(() => s.push(bigExecutable())).toThrow('executable');
    expect(() => s.push(utf8('more'))).toThrow('executable');
    expect(() => s.end()).toThrow('executable');
  });
});

describe('structure checks', () => {
  it.each<[string, Buffer, RejectReason]>([
    ['a PNG cut before IEND', tinyPng().subarray(0, -12), 'malformed'],
    ['a PNG cut mid-chunk', tinyPng().subarray(0, 40), 'malformed'],
    [
      'a PNG with a bad CRC',
      (() => {
        const b = Buffer.from(tinyPng());
        b[30] = (b[30] ?? 0) ^ 1;
        return b;
      })(),
      'malformed',
    ],
    [
      'a PNG without IHDR first',
      Buffer.concat([PNG_SIGNATURE, pngText('a', 'b'), tinyPng().subarray(8)]),
      'malformed',
    ],
    ['a PNG signature alone', PNG_SIGNATURE, 'malformed'],
    ['a PNG with one byte after IEND', Buffer.concat([tinyPng(), Buffer.from([0])]), 'polyglot'],
    ['a JPEG cut before EOI', tinyJpeg().subarray(0, -2), 'malformed'],
    ['a JPEG with a byte after EOI', Buffer.concat([tinyJpeg(), Buffer.from([0])]), 'polyglot'],
    ['a JPEG with EOI before any scan', Buffer.from([0xff, 0xd8, 0xff, 0xd9]), 'malformed'],
    ['a PDF without %%EOF', tinyPdf().subarray(0, -7), 'malformed'],
    ['a PDF with a bad version', Buffer.concat([ascii('%PDF-9.9\n'), tinyPdf().subarray(9)]), 'malformed'],
    [
      'a PDF with %%EOF further than 1 KiB from the end',
      Buffer.concat([tinyPdf(), Buffer.alloc(2000, 0x20)]),
      'malformed',
    ],
    ['text with a NUL', utf8('abc\0def'), 'unknown'],
    ['text with an escape character', utf8('abc\x1b[31mred'), 'unknown'],
    ['text with a C1 control', utf8('abc\u0085def'), 'unknown'],
    ['invalid UTF-8', Buffer.from([0x61, 0xc3, 0x28, 0x62]), 'unknown'],
    ['UTF-8 cut inside a character', Buffer.from([0x61, 0xe2, 0x82]), 'unknown'],
    ['random binary', Buffer.from(Array.from({ length: 2000 }, (_, i) => (i * 7919) % 256)), 'unknown'],
    ['text with %PDF- in its first KiB', utf8('note\n%PDF-1.4\n1 0 obj\n'), 'polyglot'],
  ])('refuses %s', (_name, bytes, reason) => {
    expect(verdict(bytes)).toBe(reason);
  });

  it('skips a thumbnail’s own SOI/EOI inside APP1 rather than ending early', () => {
    const thumb = tinyJpeg();
    const app1 = Buffer.concat([Buffer.from([0xff, 0xe1, 0, 0]), ascii('Exif\0\0'), thumb]);
    app1.writeUInt16BE(app1.length - 2, 2);
    const jpeg = tinyJpeg();
    const withThumb = Buffer.concat([jpeg.subarray(0, 2), app1, jpeg.subarray(2)]);
    expect(verdict(withThumb)).toBe('image/jpeg');
  });

  it('accepts stuffed FF00 bytes and restart markers in entropy-coded data', () => {
    const jpeg = tinyJpeg();
    const scanData = jpeg.length - 3; // the one data byte before EOI
    const withStuffing = Buffer.concat([
      jpeg.subarray(0, scanData),
      Buffer.from([0x12, 0xff, 0x00, 0x34, 0xff, 0xd0, 0x56]),
      jpeg.subarray(scanData),
    ]);
    expect(verdict(withStuffing)).toBe('image/jpeg');
  });

  it('gives the same verdict however the bytes are chunked', () => {
    const samples: Buffer[] = [
      tinyPdf(),
      tinyPng([pngText('Comment', 'x'.repeat(3000))]),
      tinyJpeg('c'.repeat(2000)),
      utf8('Grüße 🩺 '.repeat(400)),
      Buffer.concat([tinyPng(), tinyZip()]),
      Buffer.concat([tinyJpeg(), ascii('<html>')]),
      utf8(`${'a'.repeat(1100)}<svg>`),
      tinyPng([pngChunk('exEc', fakeExecutable())]),
    ];
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: samples.length - 1 }),
        fc.array(fc.integer({ min: 1, max: 1500 }), { minLength: 1, maxLength: 6 }),
        (i, sizes) => {
          const sample = samples[i]!;
          expect(fed(sample, sizes)).toBe(verdict(sample));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('never throws anything but a rejection on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), (bytes) => {
        detectType(Buffer.from(bytes)); // throws only if a non-FileRejectedError escaped
      }),
      { numRuns: 500 },
    );
  });

  it('rejects with CUSTOS_ERR_VALIDATION on the field file and a data-free message', () => {
    const s = new Sniffer();
    try {
      s.push(bigExecutable());
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(FileRejectedError);
      const r = e as FileRejectedError;
      expect([r.code, r.status, r.field, r.reason, r.message]).toEqual([
        'CUSTOS_ERR_VALIDATION',
        400,
        'file',
        'executable',
        'file: type not allowed (executable)',
      ]);
    }
  });
});

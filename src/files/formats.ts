import { crc32 } from 'node:zlib';
import { FileRejectedError } from './rejection.ts';

/**
 * Incremental structure checks, one per allowed type, fed the whole upload chunk by chunk in
 * O(1) memory (the PDF and tail checks keep a bounded window). Each throws FileRejectedError as
 * soon as the bytes cannot be a clean file of its type. The sniffer (sniff.ts) picks one from
 * the first bytes.
 */
export interface FormatCheck {
  feed(chunk: Buffer): void;
  end(): void;
}

const malformed = (): FileRejectedError => new FileRejectedError('malformed');
const polyglot = (): FileRejectedError => new FileRejectedError('polyglot');

/** Collects fixed-size fields that may straddle chunk boundaries. */
class Field {
  readonly #buf = Buffer.alloc(8);
  #need = 0;
  #have = 0;

  expect(n: number): void {
    this.#need = n;
    this.#have = 0;
  }

  /** Takes bytes from `chunk` at `i`; returns the new position. */
  take(chunk: Buffer, i: number): number {
    const n = Math.min(this.#need - this.#have, chunk.length - i);
    chunk.copy(this.#buf, this.#have, i, i + n);
    this.#have += n;
    return i + n;
  }

  get full(): boolean {
    return this.#have === this.#need;
  }

  get bytes(): Buffer {
    return this.#buf.subarray(0, this.#have);
  }
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * PNG (ISO/IEC 15948, W3C PNG 3rd ed.): signature, IHDR first (13 bytes), every chunk's type
 * four letters and CRC correct, at least one IDAT, IEND last and nothing after it.
 */
export class PngCheck implements FormatCheck {
  readonly #field = new Field();
  #state: 'signature' | 'head' | 'data' | 'crc' | 'done' = 'signature';
  #type = '';
  #remaining = 0;
  #crc = 0;
  #chunks = 0;
  #sawData = false;

  constructor() {
    this.#field.expect(8);
  }

  feed(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.#state === 'done') {
        throw polyglot(); // bytes after IEND: an appended ZIP, HTML, script…
      }
      if (this.#state === 'data') {
        const n = Math.min(this.#remaining, chunk.length - i);
        this.#crc = crc32(chunk.subarray(i, i + n), this.#crc);
        this.#remaining -= n;
        i += n;
        if (this.#remaining === 0) {
          this.#state = 'crc';
          this.#field.expect(4);
        }
        continue;
      }
      i = this.#field.take(chunk, i);
      if (this.#field.full) {
        this.#onField(this.#field.bytes);
      }
    }
  }

  #onField(b: Buffer): void {
    switch (this.#state) {
      case 'signature':
        if (!b.equals(PNG_SIGNATURE)) {
          throw malformed();
        }
        this.#state = 'head';
        this.#field.expect(8);
        return;
      case 'head': {
        const length = b.readUInt32BE(0);
        this.#type = b.toString('latin1', 4, 8);
        const first = this.#chunks === 0;
        if (
          length > 0x7fffffff ||
          !/^[A-Za-z]{4}$/.test(this.#type) ||
          first !== (this.#type === 'IHDR') ||
          (first && length !== 13) ||
          (this.#type === 'IEND' && (length !== 0 || !this.#sawData))
        ) {
          throw malformed();
        }
        this.#sawData ||= this.#type === 'IDAT';
        this.#crc = crc32(b.subarray(4, 8));
        this.#remaining = length;
        this.#state = length > 0 ? 'data' : 'crc';
        if (length === 0) {
          this.#field.expect(4);
        }
        return;
      }
      case 'crc':
        if (b.readUInt32BE(0) !== this.#crc >>> 0) {
          throw malformed();
        }
        this.#chunks += 1;
        this.#state = this.#type === 'IEND' ? 'done' : 'head';
        this.#field.expect(8);
        return;
      default:
        throw malformed();
    }
  }

  end(): void {
    if (this.#state !== 'done') {
      throw malformed(); // cut short: no IEND
    }
  }
}

/**
 * JPEG (ITU-T T.81, JFIF): SOI, then marker segments walked by their lengths (so an embedded
 * thumbnail's own SOI/EOI inside APP1 is skipped, not mistaken for the end), entropy-coded data
 * after each SOS scanned for the next marker (FF00 stuffing and RSTn skipped), EOI after at
 * least one scan, and nothing after EOI.
 */
export class JpegCheck implements FormatCheck {
  readonly #field = new Field();
  #state: 'soi' | 'marker' | 'code' | 'length' | 'skip' | 'entropy' | 'entropyFF' | 'done' = 'soi';
  #marker = 0;
  #remaining = 0;
  #sawScan = false;

  constructor() {
    this.#field.expect(2);
  }

  feed(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      switch (this.#state) {
        case 'done':
          throw polyglot(); // bytes after EOI
        case 'soi':
        case 'length':
          i = this.#field.take(chunk, i);
          if (this.#field.full) {
            this.#onField(this.#field.bytes);
          }
          break;
        case 'marker':
          if (chunk[i] !== 0xff) {
            throw malformed();
          }
          this.#state = 'code';
          i += 1;
          break;
        case 'code':
          this.#onMarker(chunk[i] ?? 0);
          i += 1;
          break;
        case 'skip': {
          const n = Math.min(this.#remaining, chunk.length - i);
          this.#remaining -= n;
          i += n;
          if (this.#remaining === 0) {
            this.#afterSegment();
          }
          break;
        }
        case 'entropy': {
          const at = chunk.indexOf(0xff, i);
          if (at < 0) {
            i = chunk.length;
          } else {
            this.#state = 'entropyFF';
            i = at + 1;
          }
          break;
        }
        case 'entropyFF': {
          const b = chunk[i] ?? 0;
          if (b === 0x00 || (b >= 0xd0 && b <= 0xd7)) {
            this.#state = 'entropy'; // stuffed FF or a restart marker: still in the scan
          } else if (b !== 0xff) {
            this.#onMarker(b);
          }
          i += 1;
          break;
        }
      }
    }
  }

  #onField(b: Buffer): void {
    if (this.#state === 'soi') {
      if (b[0] !== 0xff || b[1] !== 0xd8) {
        throw malformed();
      }
      this.#state = 'marker';
      return;
    }
    const length = b.readUInt16BE(0);
    if (length < 2) {
      throw malformed();
    }
    this.#remaining = length - 2;
    if (this.#remaining === 0) {
      this.#afterSegment();
    } else {
      this.#state = 'skip';
    }
  }

  #onMarker(m: number): void {
    if (m === 0xff) {
      this.#state = 'code'; // fill byte before a marker
    } else if (m === 0x00 || m === 0xd8) {
      throw malformed();
    } else if (m === 0xd9) {
      if (!this.#sawScan) {
        throw malformed();
      }
      this.#state = 'done';
    } else if (m === 0x01 || (m >= 0xd0 && m <= 0xd7)) {
      this.#state = 'marker'; // markers without a length
    } else {
      this.#marker = m;
      this.#state = 'length';
      this.#field.expect(2);
    }
  }

  #afterSegment(): void {
    if (this.#marker === 0xda) {
      this.#sawScan = true;
      this.#state = 'entropy';
    } else {
      this.#state = 'marker';
    }
  }

  end(): void {
    if (this.#state !== 'done') {
      throw malformed(); // cut short: no EOI
    }
  }
}

/** Keeps the last `size` bytes seen, in one buffer (no per-chunk concatenation). */
export class TailWindow {
  readonly #buf: Buffer;
  #filled = 0;

  constructor(size: number) {
    this.#buf = Buffer.alloc(size);
  }

  feed(chunk: Buffer): void {
    const size = this.#buf.length;
    if (chunk.length >= size) {
      chunk.copy(this.#buf, 0, chunk.length - size);
      this.#filled = size;
      return;
    }
    const keep = Math.min(this.#filled, size - chunk.length);
    this.#buf.copyWithin(0, this.#filled - keep, this.#filled);
    chunk.copy(this.#buf, keep);
    this.#filled = keep + chunk.length;
  }

  get bytes(): Buffer {
    return this.#buf.subarray(0, this.#filled);
  }
}

const PDF_EOF = Buffer.from('%%EOF', 'latin1');
/** PDF white-space characters (ISO 32000-2 §7.2.3): NUL, HT, LF, FF, CR, SP. */
const PDF_WHITESPACE = new Set([0x00, 0x09, 0x0a, 0x0c, 0x0d, 0x20]);

/**
 * PDF (ISO 32000): the header was checked by the sniffer; here the last `%%EOF` must be in the
 * final 1024 bytes (where readers look for it) with only white space after it, so nothing is
 * appended after the document's end.
 */
export class PdfCheck implements FormatCheck {
  readonly #tail = new TailWindow(1024);

  feed(chunk: Buffer): void {
    this.#tail.feed(chunk);
  }

  end(): void {
    const tail = this.#tail.bytes;
    const at = tail.lastIndexOf(PDF_EOF);
    if (at < 0) {
      throw malformed();
    }
    for (let i = at + PDF_EOF.length; i < tail.length; i++) {
      if (!PDF_WHITESPACE.has(tail[i] ?? 0)) {
        throw polyglot();
      }
    }
  }
}

/** DICOM (PS3.10 §7.1): preamble and `DICM` were checked by the sniffer; nothing more here. */
export class DicomCheck implements FormatCheck {
  feed(): void {}
  end(): void {}
}

/**
 * Markup a browser, an XML parser or an office suite would interpret. Matched case-insensitively
 * anywhere in the text, with a delimiter after the name so that prose like `<5 mg` passes.
 */
const MARKUP =
  /<(svg|script|html|head|body|iframe|frame|frameset|object|embed|img|meta|style|link|form|math|base|\?xml|\?php|!doctype|!entity|x:xmpmeta)(?=[\s/>])/i;
const CARRY = 24; // > longest marker + delimiter, so a marker split across chunks is still found
/** C0 controls but tab, LF and CR; DEL; C1 controls. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;

/**
 * Plain text: valid UTF-8 throughout (a BOM is fine), no control characters but tab, CR and
 * LF, and not markup: the first non-blank character is not `<`, and no tag from the list above
 * appears anywhere. Anything that fails as text is `unknown` (binary), `svg` or `markup`.
 */
export class TextCheck implements FormatCheck {
  readonly #decoder = new TextDecoder('utf-8', { fatal: true });
  #carry = '';
  #started = false;

  feed(chunk: Buffer): void {
    let text: string;
    try {
      text = this.#decoder.decode(chunk, { stream: true });
    } catch {
      throw new FileRejectedError('unknown'); // not UTF-8: binary of some other type
    }
    this.#check(text);
  }

  end(): void {
    let text: string;
    try {
      text = this.#decoder.decode();
    } catch {
      throw new FileRejectedError('unknown'); // ends inside a multi-byte sequence
    }
    this.#check(text);
  }

  #check(text: string): void {
    if (CONTROL.test(text)) {
      throw new FileRejectedError('unknown');
    }
    if (!this.#started) {
      const first = text.replace(/^[\s\ufeff]+/, '');
      if (first.length > 0) {
        this.#started = true;
        if (first.startsWith('<')) {
          throw new FileRejectedError(/<svg/i.test(text) ? 'svg' : 'markup');
        }
      }
    }
    const window = this.#carry + text;
    const hit = MARKUP.exec(window);
    if (hit) {
      throw new FileRejectedError(hit[1]?.toLowerCase() === 'svg' ? 'svg' : 'markup');
    }
    this.#carry = window.slice(-CARRY);
  }
}

import {
  DicomCheck,
  type FormatCheck,
  JpegCheck,
  PdfCheck,
  PngCheck,
  TailWindow,
  TextCheck,
} from './formats.ts';
import { FileRejectedError, type RejectReason } from './rejection.ts';

/**
 * Decides a file's type from its content alone (never its name or the client's Content-Type),
 * against an allow-list, while the upload streams through: the first KiB picks a candidate, a
 * structure check for that type sees every byte, and the verdict comes at the end. Memory is
 * bounded (the first KiB, a 64 KiB tail window, a few counters) whatever the file's size.
 *
 * The rules, in order:
 * 1. nothing at all: `empty`; more than the limit: `too-large`, as soon as the limit is passed;
 * 2. an executable or archive signature at offset 0: `executable` / `archive`;
 * 3. a PDF, PNG, JPEG or DICOM signature picks that type; anything else is tried as text;
 * 4. a binary type must carry no HTML markers in its first KiB (where browsers sniff), no `%PDF-`
 *    there unless it is the PDF (PDF readers accept the header anywhere in the first KiB), no
 *    ZIP end-of-central-directory record in its last 65,557 bytes (where ZIP readers look for
 *    it), no RAR or 7z signature or embedded Windows executable anywhere: `polyglot`;
 * 5. the type's structure check (formats.ts) must pass to the end: `malformed`, `polyglot`
 *    for data after the end marker, and for text `unknown`, `svg` or `markup`;
 * 6. the type must be allowed: `not-allowed`.
 *
 * Not detected, by design: content hidden inside a well-formed container that only a reader of
 * another format would look at (a script inside a PDF, a ZIP whose directory is not at the end).
 * Files are served as attachments with their detected type and `nosniff`, never executed.
 */
export type FileType = 'application/pdf' | 'image/png' | 'image/jpeg' | 'text/plain' | 'application/dicom';

export const ALL_TYPES: readonly FileType[] = [
  'application/pdf',
  'image/png',
  'image/jpeg',
  'text/plain',
  'application/dicom',
];
/** The requirement's allow-list; DICOM is opt-in. */
export const DEFAULT_ALLOWED: readonly FileType[] = [
  'application/pdf',
  'image/png',
  'image/jpeg',
  'text/plain',
];
/** 25 MiB. */
export const DEFAULT_LIMIT = 25 * 1024 * 1024;

export interface SniffOptions {
  /** Largest accepted size in bytes (default 25 MiB). */
  readonly limit?: number;
  /** Accepted types (default: PDF, PNG, JPEG, plain text). */
  readonly allowed?: readonly FileType[];
}

export type SniffResult =
  | { readonly ok: true; readonly type: FileType; readonly size: number }
  | { readonly ok: false; readonly reason: RejectReason };

const HEAD = 1024;
/** A ZIP reader searches this far back for the end of central directory (22 + 65,535 comment). */
const ZIP_TAIL = 22 + 65_535;

const sig = (...bytes: number[]): Buffer => Buffer.from(bytes);
const ascii = (s: string): Buffer => Buffer.from(s, 'latin1');

const EXECUTABLES: readonly Buffer[] = [
  ascii('MZ'), // DOS/Windows PE
  sig(0x7f, 0x45, 0x4c, 0x46), // ELF
  sig(0xfe, 0xed, 0xfa, 0xce), // Mach-O 32
  sig(0xfe, 0xed, 0xfa, 0xcf), // Mach-O 64
  sig(0xce, 0xfa, 0xed, 0xfe), // Mach-O 32, little-endian
  sig(0xcf, 0xfa, 0xed, 0xfe), // Mach-O 64, little-endian
  sig(0xca, 0xfe, 0xba, 0xbe), // Mach-O universal / Java class
  sig(0x00, 0x61, 0x73, 0x6d), // WebAssembly
  ascii('#!'), // script with an interpreter line
];

const ARCHIVES: readonly Buffer[] = [
  ascii('PK\x03\x04'), // ZIP (and OOXML, JAR, APK…)
  ascii('PK\x05\x06'), // empty ZIP
  ascii('PK\x07\x08'), // spanned ZIP
  sig(0x1f, 0x8b), // gzip
  sig(0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c), // 7z
  ascii('Rar!\x1a\x07'), // RAR 4 and 5
  sig(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00), // xz
  sig(0x28, 0xb5, 0x2f, 0xfd), // zstd
  ascii('MSCF'), // Microsoft cabinet
];

/** Signatures whose readers find them anywhere in a file (self-extracting RAR and 7z, a PE stub). */
const EMBEDDED: readonly Buffer[] = [
  ascii('Rar!\x1a\x07'),
  sig(0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c),
  ascii('This program cannot be run in DOS mode'),
];
const EMBEDDED_CARRY = Math.max(...EMBEDDED.map((b) => b.length)) - 1;
const ZIP_EOCD = ascii('PK\x05\x06');
const PDF_MAGIC = ascii('%PDF-');
/** HTML a browser would render if it sniffed the file (WHATWG MIME Sniffing §7.1 and script). */
// Only markers of 4+ characters: random binary data matches a shorter one too often.
const HTML_MARKERS = /<(?:!doctype|html|head|body|script|iframe|svg|object|embed|img|style|title|table)/i;

const startsWith = (head: Buffer, s: Buffer, at = 0): boolean =>
  head.length >= at + s.length && head.subarray(at, at + s.length).equals(s);

function isBzip2(head: Buffer): boolean {
  return startsWith(head, ascii('BZh')) && (head[3] ?? 0) >= 0x31 && (head[3] ?? 0) <= 0x39;
}

function isTar(head: Buffer): boolean {
  return startsWith(head, ascii('ustar'), 257);
}

function isDicom(head: Buffer): boolean {
  return startsWith(head, ascii('DICM'), 128);
}

/**
 * The incremental sniffer: `push` every chunk as it arrives, then `end`. Both throw a
 * {@link FileRejectedError} as soon as the file is refused; after that the caller stops reading.
 *
 * @example
 * const s = new Sniffer({ limit: 25 * 1024 * 1024 });
 * for await (const chunk of upload) s.push(chunk);
 * const type = s.end(); // 'application/pdf'
 */
export class Sniffer {
  readonly #limit: number;
  readonly #allowed: ReadonlySet<FileType>;
  #size = 0;
  #head: Buffer[] = [];
  #headBytes = 0;
  #type: FileType | undefined;
  #check: FormatCheck | undefined;
  #binary = false;
  #tail: TailWindow | undefined;
  #carry: Buffer = Buffer.alloc(0);
  #rejected: FileRejectedError | undefined;

  constructor(options: SniffOptions = {}) {
    this.#limit = options.limit ?? DEFAULT_LIMIT;
    if (!Number.isSafeInteger(this.#limit) || this.#limit < 1) {
      throw new RangeError('file size limit must be a positive integer');
    }
    this.#allowed = new Set(options.allowed ?? DEFAULT_ALLOWED);
  }

  /** Bytes seen so far. */
  get size(): number {
    return this.#size;
  }

  /** The candidate type once the first KiB has been seen (final only after `end`). */
  get candidate(): FileType | undefined {
    return this.#type;
  }

  push(chunk: Buffer): void {
    this.#guard(() => {
      if (chunk.length === 0) {
        return;
      }
      this.#size += chunk.length;
      if (this.#size > this.#limit) {
        throw new FileRejectedError('too-large', this.#limit);
      }
      if (this.#check) {
        this.#feed(chunk);
        return;
      }
      this.#head.push(chunk);
      this.#headBytes += chunk.length;
      if (this.#headBytes >= HEAD) {
        this.#start();
      }
    });
  }

  /** The verdict: the detected type, or a thrown {@link FileRejectedError}. */
  end(): FileType {
    return this.#guard(() => {
      if (this.#size === 0) {
        throw new FileRejectedError('empty');
      }
      if (!this.#check) {
        this.#start();
      }
      this.#check?.end();
      if (this.#tail?.bytes.includes(ZIP_EOCD)) {
        throw new FileRejectedError('polyglot');
      }
      const type = this.#type;
      if (!type) {
        throw new FileRejectedError('unknown');
      }
      return type;
    });
  }

  #guard<T>(fn: () => T): T {
    if (this.#rejected) {
      throw this.#rejected;
    }
    try {
      return fn();
    } catch (e) {
      if (e instanceof FileRejectedError) {
        this.#rejected = e;
      }
      throw e;
    }
  }

  /** Chooses the candidate from the first KiB, then replays the buffered bytes into its check. */
  #start(): void {
    const buffered = Buffer.concat(this.#head);
    this.#head = [];
    const head = buffered.subarray(0, HEAD);
    const [type, check] = this.#choose(head);
    if (!this.#allowed.has(type)) {
      throw new FileRejectedError('not-allowed');
    }
    this.#type = type;
    this.#check = check;
    this.#binary = type !== 'text/plain';
    if (this.#binary) {
      const latin1 = head.toString('latin1');
      if (HTML_MARKERS.test(latin1) || (type !== 'application/pdf' && head.includes(PDF_MAGIC))) {
        throw new FileRejectedError('polyglot');
      }
      this.#tail = new TailWindow(ZIP_TAIL);
    } else if (head.includes(PDF_MAGIC)) {
      throw new FileRejectedError('polyglot'); // text that a PDF reader would open as a PDF
    }
    this.#feed(buffered);
  }

  #choose(head: Buffer): [FileType, FormatCheck] {
    if (EXECUTABLES.some((s) => startsWith(head, s))) {
      throw new FileRejectedError('executable');
    }
    if (ARCHIVES.some((s) => startsWith(head, s)) || isBzip2(head) || isTar(head)) {
      throw new FileRejectedError('archive');
    }
    if (startsWith(head, PDF_MAGIC)) {
      if (!/^%PDF-(?:1\.[0-7]|2\.0)\s/.test(head.subarray(0, 9).toString('latin1'))) {
        throw new FileRejectedError('malformed');
      }
      return ['application/pdf', new PdfCheck()];
    }
    if (startsWith(head, sig(0x89, 0x50, 0x4e, 0x47))) {
      return ['image/png', new PngCheck()];
    }
    if (startsWith(head, sig(0xff, 0xd8, 0xff))) {
      return ['image/jpeg', new JpegCheck()];
    }
    if (isDicom(head)) {
      // PS3.10 §7.1: an unused preamble is all zeros. A non-zero one is how DICOM/PE and other
      // polyglots are made (CVE-2019-11687), so only a zero preamble is accepted.
      if (head.subarray(0, 128).some((b) => b !== 0)) {
        throw new FileRejectedError('polyglot');
      }
      if (head[132] !== 0x02 || head[133] !== 0x00) {
        throw new FileRejectedError('malformed'); // file meta information (group 0002) follows DICM
      }
      return ['application/dicom', new DicomCheck()];
    }
    return ['text/plain', new TextCheck()];
  }

  #feed(chunk: Buffer): void {
    this.#check?.feed(chunk);
    if (this.#binary) {
      this.#tail?.feed(chunk);
      // The chunk itself, then the seam with the previous chunk's last bytes (no full copy).
      const seam = Buffer.concat([this.#carry, chunk.subarray(0, EMBEDDED_CARRY)]);
      if (EMBEDDED.some((s) => chunk.includes(s) || seam.includes(s))) {
        throw new FileRejectedError('polyglot');
      }
      const last = chunk.length >= EMBEDDED_CARRY ? chunk : seam;
      this.#carry = Buffer.from(last.subarray(Math.max(0, last.length - EMBEDDED_CARRY)));
    }
  }
}

/**
 * One-shot form for a file already in memory (tests, small inputs). Uploads use {@link Sniffer}.
 *
 * @example detectType(Buffer.from('hello\n')) // { ok: true, type: 'text/plain', size: 6 }
 */
export function detectType(bytes: Buffer, options: SniffOptions = {}): SniffResult {
  const sniffer = new Sniffer(options);
  try {
    sniffer.push(bytes);
    return { ok: true, type: sniffer.end(), size: bytes.length };
  } catch (e) {
    if (e instanceof FileRejectedError) {
      return { ok: false, reason: e.reason };
    }
    throw e;
  }
}

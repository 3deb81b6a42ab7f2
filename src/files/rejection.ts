import { CustosError } from '../errors.ts';

/**
 * Why an upload was refused. A code, never content: it goes into the audit entry and the
 * response as is.
 *
 * - `empty`: zero bytes.
 * - `too-large`: more bytes than the limit (rejected as soon as the limit is passed).
 * - `executable`: starts like a program (MZ/PE, ELF, Mach-O, Java class, WebAssembly, `#!`).
 * - `archive`: starts like an archive or compressed stream (ZIP, gzip, 7z, RAR, bzip2, xz, zstd, tar, CAB).
 * - `svg`: SVG markup (can carry script).
 * - `markup`: HTML, XML or other markup presented as text.
 * - `polyglot`: a valid file of one type that also is, or carries, another (trailing data after
 *   the end marker, HTML markers in the first KiB, a second type's signature where that type's
 *   readers look for it).
 * - `malformed`: starts like an allowed type but its structure is broken or cut short.
 * - `not-allowed`: a recognized type that is not on this store's allow-list (DICOM by default).
 * - `unknown`: not recognized as any allowed type (binary, invalid UTF-8, control characters).
 */
export type RejectReason =
  | 'empty'
  | 'too-large'
  | 'executable'
  | 'archive'
  | 'svg'
  | 'markup'
  | 'polyglot'
  | 'malformed'
  | 'not-allowed'
  | 'unknown';

/**
 * An upload refused by the sniffer: `CUSTOS_ERR_VALIDATION` on field `file` (400), with the
 * reason code for the audit entry. Subclassing keeps src/errors.ts the one catalogue of codes.
 */
export class FileRejectedError extends CustosError {
  readonly reason: RejectReason;

  constructor(reason: RejectReason, limit?: number) {
    super('CUSTOS_ERR_VALIDATION', message(reason, limit), { field: 'file' });
    this.name = 'FileRejectedError';
    this.reason = reason;
  }
}

function message(reason: RejectReason, limit: number | undefined): string {
  switch (reason) {
    case 'empty':
      return 'file: empty';
    case 'too-large':
      return `file: larger than the limit of ${limit ?? '?'} bytes`;
    default:
      return `file: type not allowed (${reason})`;
  }
}

export const isFileRejected = (e: unknown): e is FileRejectedError => e instanceof FileRejectedError;

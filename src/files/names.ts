/**
 * File names from uploads are untrusted display strings: never a path, never used on disk
 * (blobs are stored under random ids), stored encrypted with the document row. Sanitizing makes
 * them safe to show and to offer back as a download name on any operating system.
 */

const MAX_BYTES = 255;
/** Longest suffix treated as an extension when shortening (`.jpeg`, `.dicom`, `.tar.gz` is two). */
const MAX_EXTENSION = 16;

/**
 * Removed: C0/C1 controls and DEL; bidi embeddings, overrides and isolates (U+202A–U+202E,
 * U+2066–U+2069) and marks (U+200E, U+200F, U+061C), which make `report‮fdp.exe` display as
 * `reportexe.pdf`; invisible characters (zero-width space, word joiner, BOM, soft hyphen, other
 * format characters) except ZWNJ/ZWJ, which some scripts and emoji need.
 */
const INVISIBLE =
  /[\p{Cc}\u00ad\u061c\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/gu;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
/** Characters Windows forbids in names, and look-alike slashes that would read as a path. */
const FORBIDDEN = /[<>:"|?*\u2044\u2215\u29f8\uff0f\uff3c]/g;
/** Windows device names, reserved with any extension (`CON.txt`), also with superscript digits. */
const RESERVED = /^(?:con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)$/i;

/**
 * Makes an uploaded file name safe to store and show: keeps only the last path segment (`/` and
 * `\` both count), drops `.`/`..` segments and collapses dot runs, removes control, bidi and
 * invisible characters, replaces characters Windows forbids, trims leading dots and spaces and
 * trailing dots and spaces, prefixes Windows device names with `_`, normalizes to NFC, and
 * shortens to 255 UTF-8 bytes keeping the extension. Never empty (`file`). Idempotent.
 *
 * @example sanitizeFileName('../../etc/passwd') // 'passwd'
 * @example sanitizeFileName('C:\\scans\\CON.pdf') // '_CON.pdf'
 */
export function sanitizeFileName(raw: string): string {
  // Remove before normalizing: a removed character between a letter and its combining mark
  // would otherwise leave a decomposed pair behind.
  let name = raw.replace(LONE_SURROGATE, '').replace(INVISIBLE, '').normalize('NFC');
  const segments = name.split(/[/\\]/).filter((s) => s.trim() !== '' && !/^\.+$/.test(s.trim()));
  name = segments.at(-1) ?? '';
  name = name
    .replace(FORBIDDEN, '_')
    .replace(/\s+/gu, ' ')
    .replace(/\.{2,}/g, '.')
    .replace(/^[\s.]+/u, '')
    .replace(/[\s.]+$/u, '');
  if (RESERVED.test(name.split('.')[0]?.trim() ?? '')) {
    name = `_${name}`;
  }
  name = shorten(name);
  return name === '' ? 'file' : name;
}

function utf8Length(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** Cuts the base name, on grapheme boundaries, until the name fits in 255 UTF-8 bytes. */
function shorten(name: string): string {
  if (utf8Length(name) <= MAX_BYTES) {
    return name;
  }
  const dot = name.lastIndexOf('.');
  const extension = dot > 0 && name.length - dot <= MAX_EXTENSION ? name.slice(dot) : '';
  const base = extension ? name.slice(0, dot) : name;
  const budget = MAX_BYTES - utf8Length(extension);
  let kept = '';
  let used = 0;
  for (const { segment } of new Intl.Segmenter('und', { granularity: 'grapheme' }).segment(base)) {
    const size = utf8Length(segment);
    if (used + size > budget) {
      break;
    }
    kept += segment;
    used += size;
  }
  kept = kept.replace(/[\s.]+$/u, '');
  return kept === '' ? extension.slice(1) : kept + extension;
}

/**
 * A `Content-Disposition` header value for a download (RFC 6266): an ASCII `filename` fallback
 * with anything outside printable ASCII (and `"`, `\`, `%`) replaced by `_`, and the real name in
 * `filename*` as RFC 8187 (formerly 5987) UTF-8 percent-encoding. The name is sanitized again,
 * so even a value that skipped the upload path cannot inject a header parameter or a path.
 *
 * @example contentDisposition('Befund März.pdf', false)
 * // "attachment; filename=\"Befund M_rz.pdf\"; filename*=UTF-8''Befund%20M%C3%A4rz.pdf"
 */
export function contentDisposition(name: string, inline: boolean): string {
  const safe = sanitizeFileName(name);
  const fallback = safe.replace(/[^\x20-\x7e]|["\\%]/gu, '_');
  const encoded = encodeURIComponent(safe).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `${inline ? 'inline' : 'attachment'}; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}

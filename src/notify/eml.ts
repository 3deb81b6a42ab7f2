/**
 * A minimal reader of the RFC 5322 / MIME messages the outbox holds (what nodemailer writes):
 * unfolded headers, RFC 2047 encoded words, multipart bodies, base64 and quoted-printable
 * (RFC 2045). Enough for tests and operators; not a general mail parser (mailparser is not a
 * dependency, and a general one is more code to trust than this needs).
 */

export interface ParsedAttachment {
  readonly filename: string | undefined;
  /** Media type and parameters, as in the part's Content-Type header. */
  readonly contentType: string;
  readonly content: Buffer;
}

export interface ParsedMessage {
  /** Header fields by lower-case name; repeated fields keep the first. Values unfolded and decoded. */
  readonly headers: ReadonlyMap<string, string>;
  readonly text: string | undefined;
  readonly html: string | undefined;
  readonly attachments: readonly ParsedAttachment[];
}

interface Part {
  readonly headers: Map<string, string>;
  readonly body: string;
}

/** Parses one message (CRLF or LF line ends). */
export function parseMessage(raw: string): ParsedMessage {
  const root = splitPart(raw);
  const leaves: { part: Part; contentType: string }[] = [];
  collectLeaves(root, leaves, 0);
  let text: string | undefined;
  let html: string | undefined;
  const attachments: ParsedAttachment[] = [];
  for (const { part, contentType } of leaves) {
    const params = parseParams(contentType);
    const disposition = part.headers.get('content-disposition') ?? '';
    const filename = parseParams(disposition).get('filename') ?? params.get('name');
    const content = decodeBody(part.body, part.headers.get('content-transfer-encoding'));
    const type = mediaType(contentType);
    if (/^attachment\b/i.test(disposition) || filename !== undefined) {
      attachments.push({ filename, contentType, content });
    } else if (type === 'text/plain' && text === undefined) {
      text = content.toString('utf8');
    } else if (type === 'text/html' && html === undefined) {
      html = content.toString('utf8');
    } else {
      attachments.push({ filename, contentType, content });
    }
  }
  const headers = new Map([...root.headers].map(([k, v]) => [k, decodeWords(v)] as const));
  return { headers, text, html, attachments };
}

function splitPart(raw: string): Part {
  const m = /\r?\n\r?\n/.exec(raw);
  const head = m ? raw.slice(0, m.index) : raw;
  const body = m ? raw.slice(m.index + m[0].length) : '';
  const headers = new Map<string, string>();
  // Unfolding, RFC 5322 2.2.3: a line break followed by white space is removed, the space kept.
  for (const line of head.replace(/\r?\n(?=[ \t])/g, '').split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0) {
      const name = line.slice(0, colon).trim().toLowerCase();
      if (!headers.has(name)) {
        headers.set(name, line.slice(colon + 1).trim());
      }
    }
  }
  return { headers, body };
}

function collectLeaves(part: Part, out: { part: Part; contentType: string }[], depth: number): void {
  const contentType = part.headers.get('content-type') ?? 'text/plain; charset=us-ascii';
  const boundary = parseParams(contentType).get('boundary');
  if (!mediaType(contentType).startsWith('multipart/') || boundary === undefined || depth > 8) {
    out.push({ part, contentType });
    return;
  }
  // RFC 2046 5.1.1: delimiter lines are "--boundary", the last "--boundary--"; the CRLF before
  // a delimiter belongs to the delimiter.
  const delimiter = `--${boundary}`;
  const lines = part.body.split(/\r?\n/);
  let current: string[] | undefined;
  for (const line of lines) {
    if (line === delimiter || line === `${delimiter}--`) {
      if (current) {
        collectLeaves(splitPart(current.join('\r\n')), out, depth + 1);
      }
      if (line !== delimiter) {
        return;
      }
      current = [];
    } else if (current) {
      current.push(line);
    }
  }
}

function mediaType(contentType: string): string {
  return (contentType.split(';')[0] ?? '').trim().toLowerCase();
}

/** `type/sub; a=1; b="x;y"; filename*=utf-8''%C3%A6.ics` -> parameters by lower-case name. */
function parseParams(value: string): Map<string, string> {
  const params = new Map<string, string>();
  const re = /;\s*([^=\s;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)/g;
  for (const m of value.matchAll(re)) {
    const name = (m[1] ?? '').toLowerCase();
    let v = (m[2] ?? '').trim();
    if (v.startsWith('"')) {
      v = v.slice(1, -1).replace(/\\(.)/g, '$1');
    }
    if (name.endsWith('*')) {
      // RFC 2231 extended value: charset'language'percent-encoded.
      const [, , encoded = ''] = v.split("'");
      params.set(name.slice(0, -1), safeDecodeUri(encoded));
    } else if (!params.has(name)) {
      params.set(name, decodeWords(v));
    }
  }
  return params;
}

function safeDecodeUri(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function decodeBody(body: string, encoding: string | undefined): Buffer {
  switch ((encoding ?? '7bit').trim().toLowerCase()) {
    case 'base64':
      return Buffer.from(body.replace(/\s+/g, ''), 'base64');
    case 'quoted-printable':
      return decodeQuotedPrintable(body);
    default:
      return Buffer.from(body, 'utf8');
  }
}

/** RFC 2045 6.7: `=XX` octets, `=` at a line end is a soft break. */
export function decodeQuotedPrintable(body: string): Buffer {
  const bytes: number[] = [];
  const s = body.replace(/=\r?\n/g, '');
  for (let i = 0; i < s.length; i++) {
    const ch = s[i] as string;
    const hex = s.slice(i + 1, i + 3);
    if (ch === '=' && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(ch, 'utf8'));
    }
  }
  return Buffer.from(bytes);
}

/** RFC 2047 encoded words (`=?UTF-8?Q?...?=`, `=?UTF-8?B?...?=`); white space between two is dropped. */
export function decodeWords(value: string): string {
  return value
    .replace(/(\?=)\s+(=\?)/g, '$1$2')
    .replace(/=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=/g, (_all, charset: string, enc: string, data: string) => {
      const bytes =
        enc.toUpperCase() === 'B'
          ? Buffer.from(data, 'base64')
          : decodeQuotedPrintable(data.replace(/_/g, ' '));
      try {
        return new TextDecoder(charset.split('*')[0]).decode(bytes);
      } catch {
        return bytes.toString('utf8');
      }
    });
}

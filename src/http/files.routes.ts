import type { IncomingMessage } from 'node:http';
import { PassThrough, Readable } from 'node:stream';
import multipart, { type MultipartFile, type Multipart as MultipartPart } from '@fastify/multipart';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import type { AccessContext } from '../access/context.ts';
import { append } from '../audit/append.ts';
import type { ClinicalRecord } from '../chart/model.ts';
import { type CustosError, isCustosError, validationError } from '../errors.ts';
import { contentDisposition, sanitizeFileName } from '../files/names.ts';
import { isFileRejected } from '../files/rejection.ts';
import type { FileType } from '../files/sniff.ts';
import { DownloadTokens } from './download-tokens.ts';
import { defineRoute, parseInput, type Resolve } from './route.ts';
import type { Services } from './services.ts';

/**
 * Files over HTTPS (issue 6, item 4): upload into the encrypted store, download, and single-use
 * download tokens. Every byte goes through the gate (`Chart.attachFile`, `Chart.openFile`,
 * `Chart.authorizeDownload`), which decides, audits and holds the patient's key.
 *
 * - Upload: `multipart/form-data`, optional text fields first, then one part named `file`. The
 *   part is streamed into the gate as it arrives (never buffered: memory stays at a few 64 KiB
 *   segments whatever the size); the gate decides before it reads a byte, the store decides the
 *   type from the content and refuses at the first byte past the limit (25 MiB by default: 413).
 *   Parts after the file are ignored.
 * - Download: the detected type, `attachment` (inline only for images and PDFs), `nosniff`, a
 *   CSP that sandboxes whatever the browser renders, `no-store`, the length and the SHA-256
 *   (`Repr-Digest`, RFC 9530). The content is checked while it streams: the first segment is
 *   verified before any header goes out (a tampered small file is a clean 500), and a failure
 *   later aborts the connection, so the client sees a cut response (shorter than
 *   Content-Length, no final chunk) and never bytes that failed their check. Both are audited.
 * - `@fastify/multipart` is registered inside this module's own scope: no other route accepts
 *   multipart bodies, and JSON parsing elsewhere is untouched.
 */

const TAGS = ['files'] as const;
export const DEFAULT_UPLOAD_LIMIT = 25 * 1024 * 1024;
/** The sandbox for anything a browser renders from a download (scripts, forms, plugins: none). */
export const DOWNLOAD_CSP = "default-src 'none'; sandbox";
const INLINE: ReadonlySet<string> = new Set(['image/png', 'image/jpeg', 'application/pdf']);
const EXTENSION: Readonly<Record<FileType, string>> = {
  'application/pdf': 'pdf',
  'image/png': 'png',
  'image/jpeg': 'jpg',
  'text/plain': 'txt',
  'application/dicom': 'dcm',
};

const anId = (what: string) =>
  z.string().meta({ format: 'uuid', description: `${what} id; any other value is answered 404` });
const PatientParams = z.object({ id: anId('patient') });
const RecordParams = z.object({ id: anId('record') });
const TokenParams = z.object({
  token: z.string().meta({ description: 'a download token; unknown, used, expired or foreign ones are 404' }),
});

/** Text fields an upload may carry before its file part; the gate validates their values. */
const UploadFields = z
  .object({
    title: z.string().optional(),
    description: z.string().optional(),
    category: z.string().optional(),
    date: z.string().optional(),
    sensitivity: z.string().optional(),
  })
  .strict();

export interface FileRouteOptions {
  /** Largest accepted file in bytes (default 25 MiB). */
  readonly uploadLimit?: number;
}

export function registerFileRoutes(
  app: FastifyInstance,
  s: Services,
  resolve: Resolve,
  options: FileRouteOptions = {},
): void {
  const chart = s.custos.chart;
  const limit = options.uploadLimit ?? DEFAULT_UPLOAD_LIMIT;
  const tokens = new DownloadTokens({ db: s.custos.database.db, chart, clock: s.clock });
  const multipartLimits = {
    // One byte more than the store accepts, so the store sees the excess and refuses it itself.
    fileSize: limit + 1,
    files: 1,
    fields: 10,
    // Longer than any field the gate accepts (a description of 2,000 characters in UTF-8);
    // a value cut at this size is refused below, never stored cut.
    fieldSize: 16 * 1024,
    fieldNameSize: 100,
    parts: 11,
    headerPairs: 20,
  };
  /** Audits a stored file that failed its check while being sent (the read was audited already). */
  const broken = (ctx: AccessContext, recordId: string) => async (e: unknown) => {
    if (isCustosError(e, 'CUSTOS_ERR_INTEGRITY')) {
      await append(
        s.custos.database.db,
        ctx,
        {
          action: 'read',
          resourceType: 'record',
          resourceId: recordId,
          outcome: 'error',
          reason: 'CUSTOS_ERR_INTEGRITY',
          detail: { file: true },
        },
        s.clock(),
      ).catch(() => undefined); // the response fails either way; the audit store's own failure is not this one
    }
  };

  app.register(async (scope) => {
    await scope.register(multipart, { limits: multipartLimits });
    // HEAD would open (and audit) a file, or use up a token, to send no body.
    scope.addHook('onRequest', async (req, reply) => {
      if (req.method === 'HEAD') {
        return reply
          .code(405)
          .header('allow', 'GET')
          .send({ error: { code: 'CUSTOS_ERR_BAD_REQUEST', message: 'use GET' } });
      }
    });
    // An upload answered before its body was read (refused, denied, not logged in): read and
    // drop the rest, up to a bound, then close, so the client gets the answer rather than a
    // reset while it is still sending; the connection is not reused.
    scope.addHook('onSend', async (req, reply, payload) => {
      if (!req.raw.complete) {
        reply.header('connection', 'close');
        discard(req.raw, limit + 1024 * 1024);
      }
      return payload;
    });

    defineRoute(
      scope,
      {
        method: 'POST',
        url: '/api/v1/patients/:id/files',
        summary: `Upload a file (exam report, scan, letter, consent form) as multipart/form-data: optional fields title, description, category, date, sensitivity, then one part named "file" (at most ${limit} bytes; PDF, PNG, JPEG or plain text, decided from the content). 201 {id, version, type, size}; refused type 400 and too large 413, both on field "file"`,
        tags: TAGS,
        auth: 'session',
        params: PatientParams,
        handler: async (req, reply) => {
          const raw = req.raw;
          let part: MultipartFile | undefined;
          let problem: CustosError | undefined;
          if (!raw.isMultipart()) {
            problem = validationError('file', 'send the file as multipart/form-data');
          } else {
            try {
              part = await raw.file({ limits: multipartLimits });
              if (!part) {
                problem = validationError('file', 'is required');
              } else if (part.fieldname !== 'file') {
                problem = validationError('file', 'the file part must be named file');
              }
            } catch (e) {
              problem = multipartProblem(e);
            }
          }
          try {
            const fields = parseInput(UploadFields, part ? fieldValues(part) : {}, 'body');
            const fileName = part?.filename ? sanitizeFileName(part.filename) : undefined;
            // A request that carries no usable file still goes to the gate, which decides
            // first: whoever may not write to this patient gets the 404 of a missing one.
            const content =
              part && !problem
                ? partContent(part.file)
                : failing(problem ?? validationError('file', 'is required'));
            const r = await chart.attachFile(req.ctx, req.params.id, {
              content,
              title: fields.title ?? (fileName ? [...fileName].slice(0, 200).join('') : 'Document'),
              ...(fileName ? { fileName } : {}),
              ...(fields.description !== undefined ? { description: fields.description } : {}),
              ...(fields.category !== undefined ? { category: fields.category } : {}),
              ...(fields.date !== undefined ? { date: fields.date } : {}),
              ...(fields.sensitivity !== undefined
                ? { sensitivity: fields.sensitivity as 'normal' | 'restricted' | 'psychotherapy' }
                : {}),
              limit,
            });
            return reply.code(201).send({ id: r.id, version: r.version, type: r.contentType, size: r.size });
          } catch (e) {
            if (isFileRejected(e) && e.reason === 'too-large') {
              return reply
                .code(413)
                .send({ error: { code: 'CUSTOS_ERR_TOO_LARGE', field: 'file', message: e.message } });
            }
            throw uploadError(e);
          } finally {
            // Unread when refused early; ended (and this a no-op) when stored.
            part?.file.destroy();
          }
        },
      },
      resolve,
    );

    defineRoute(
      scope,
      {
        method: 'GET',
        url: '/api/v1/records/:id/content',
        summary:
          'Download a file (audited): its detected type, attachment (inline for images and PDFs), nosniff, a sandboxing CSP, no-store; integrity checked while it streams',
        tags: TAGS,
        auth: 'session',
        params: RecordParams,
        handler: async (req, reply) => {
          const opened = await chart.openFile(req.ctx, req.params.id);
          return sendFile(reply, opened, broken(req.ctx, req.params.id));
        },
      },
      resolve,
    );

    defineRoute(
      scope,
      {
        method: 'POST',
        url: '/api/v1/records/:id/download-tokens',
        summary:
          'A single-use download token for a file the caller may read, valid 60 s, for this session only (for <img> and viewers). 201 {token, url, expiresAt}',
        tags: TAGS,
        auth: 'session',
        params: RecordParams,
        body: z.object({}).strict(),
        handler: async (req, reply) => {
          const { token, expiresAt } = await tokens.issue(req.ctx, req.params.id);
          return reply
            .code(201)
            .send({ token, url: `/api/v1/files/${token}`, expiresAt: expiresAt.toISOString() });
        },
      },
      resolve,
    );

    defineRoute(
      scope,
      {
        method: 'GET',
        url: '/api/v1/files/:token',
        summary:
          'Download a file with a download token: once, within 60 s, with the session that asked for it (its cookie); otherwise 404. Audited like GET /api/v1/records/{id}/content',
        tags: TAGS,
        auth: 'session',
        params: TokenParams,
        handler: async (req, reply) => {
          const recordId = await tokens.redeem(req.ctx, req.params.token);
          const opened = await chart.openFile(req.ctx, recordId);
          return sendFile(reply, opened, broken(req.ctx, recordId));
        },
      },
      resolve,
    );
  });
}

/**
 * Sends a file: waits for the first verified chunk before any header goes out (so a file that
 * fails its check at once is an ordinary error response), then streams the rest; a later
 * failure errors the stream, and Fastify destroys the connection mid-response.
 */
async function sendFile(
  reply: FastifyReply,
  opened: { record: ClinicalRecord<'document'>; content: Readable },
  onBroken: (e: unknown) => Promise<void>,
): Promise<FastifyReply> {
  const { record, content } = opened;
  const it = content[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let first: IteratorResult<Buffer>;
  try {
    first = await it.next();
  } catch (e) {
    await onBroken(e);
    throw e;
  }
  const body = record.body;
  const type = body.contentType as FileType;
  const name = body.fileName ?? `document.${EXTENSION[type] ?? 'bin'}`;
  reply
    .header('content-type', type === 'text/plain' ? 'text/plain; charset=utf-8' : type)
    .header('content-length', String(body.size ?? 0))
    .header('content-disposition', contentDisposition(name, INLINE.has(type)))
    .header('x-content-type-options', 'nosniff')
    .header('content-security-policy', DOWNLOAD_CSP)
    .header('cache-control', 'no-store');
  if (body.sha256) {
    reply.header('repr-digest', `sha-256=:${Buffer.from(body.sha256, 'hex').toString('base64')}:`);
  }
  return reply.send(Readable.from(rest(first, it, onBroken), { objectMode: false }));
}

async function* rest(
  first: IteratorResult<Buffer>,
  it: AsyncIterator<Buffer>,
  onBroken: (e: unknown) => Promise<void>,
): AsyncGenerator<Buffer> {
  try {
    if (first.done) {
      return;
    }
    yield first.value;
    for (;;) {
      const next = await it.next();
      if (next.done) {
        return;
      }
      yield next.value;
    }
  } catch (e) {
    await onBroken(e);
    throw e;
  } finally {
    // The client went away or the stream failed: close the file (and wipe its key copy).
    await it.return?.();
  }
}

/**
 * The file part's bytes for the gate, with a multipart body that turns out malformed or cut
 * while it streams made a 400 on `body` (busboy's errors are plain errors, or none at all when
 * it just closes the part). When the gate stops reading (a refusal), the part is closed, which
 * stops the parser; the rest of the request is then drained by the onSend hook.
 */
function partContent(file: Readable): Readable {
  const out = new PassThrough({ highWaterMark: 64 * 1024 });
  // The part may fail while the gate is still deciding, before anyone reads `out`: the error is
  // kept on the stream (`errored`), and the gate's pipeline rejects with it when it starts.
  out.on('error', () => undefined);
  const fail = (e: unknown) => out.destroy(multipartProblem(e));
  if (file.errored) {
    fail(file.errored);
    return out;
  }
  file.on('error', fail);
  file.on('close', () => {
    if (!file.readableEnded) {
      fail(new Error('the file part was closed before its end'));
    }
  });
  out.on('close', () => file.destroy());
  file.pipe(out);
  return out;
}

/** A source that fails with `error` when read: the upload had no usable file part. */
function failing(error: Error): Readable {
  return new Readable({
    read() {
      this.destroy(error);
    },
  });
}

/** The text fields that came before the file part, each once. */
function fieldValues(part: MultipartFile): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(part.fields)) {
    const values = ([] as (MultipartPart | undefined)[]).concat(value).filter((v) => v?.type === 'field');
    if (values.length === 0) {
      continue;
    }
    if (values.length > 1) {
      throw validationError(`body.${name}`, 'must be given once');
    }
    const v = values[0] as { value: unknown; valueTruncated?: boolean; fieldnameTruncated?: boolean };
    if (v.valueTruncated || v.fieldnameTruncated) {
      throw validationError(`body.${name}`, 'is too long');
    }
    out[name] = typeof v.value === 'string' ? v.value : JSON.stringify(v.value);
  }
  return out;
}

/** A multipart body that could not be parsed, in our error shape (the code, never the input). */
function multipartProblem(e: unknown): CustosError {
  const code = (e as { code?: unknown }).code;
  const known = typeof code === 'string' && code.startsWith('FST_') ? ` (${code})` : '';
  return validationError('body', `is not a well-formed multipart/form-data upload${known}`);
}

/** The gate names its fields as its input sees them (`title`); the client sees `body.title`. */
function uploadError(e: unknown): unknown {
  if (isCustosError(e, 'CUSTOS_ERR_VALIDATION') && e.field !== undefined) {
    if (e.field === 'file' || e.field.startsWith('body')) {
      return e;
    }
    const problem = e.message.startsWith(`${e.field}: `) ? e.message.slice(e.field.length + 2) : e.message;
    return validationError(`body.${e.field}`, problem);
  }
  return e;
}

/** Reads and drops what is left of a request body, destroying the connection past `budget` bytes. */
function discard(raw: IncomingMessage, budget: number): void {
  let left = budget;
  raw.on('data', (chunk: Buffer) => {
    left -= chunk.length;
    if (left < 0) {
      raw.destroy();
    }
  });
  raw.resume();
}

import { z } from 'zod';
import { validationError } from '../errors.ts';
import { isUuid } from '../ids.ts';

/**
 * Secure messages: what callers send and get back, input limits, pages and cursors
 * (src/chart/messages.service.ts does the work). The route module reuses the input schemas, so
 * the OpenAPI document and the gate check the same limits.
 */

/** Keyset position in a list ordered by last activity, newest first. */
export interface Position {
  readonly at: Date;
  readonly id: string;
}

export const SUBJECT_MAX = 200;
export const TEXT_MAX = 10_000;
export const PAGE_MAX = 100;
const PAGE_DEFAULT = 20;
const MESSAGES_PAGE_MAX = 200;
const MESSAGES_PAGE_DEFAULT = 50;

// C0 controls except tab, line feed and carriage return; DEL and C1; in a subject, line breaks too.
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const TEXT_CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const LINE_CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

const subjectSchema = z
  .string('must be a string')
  .trim()
  .min(1, 'must not be empty')
  .max(SUBJECT_MAX, `must be at most ${SUBJECT_MAX} characters`)
  .refine((s) => !LINE_CONTROL.test(s), 'must be one line without control characters')
  .meta({ description: `the thread's subject, 1-${SUBJECT_MAX} characters, one line; sealed at rest` });
const textSchema = z
  .string('must be a string')
  .trim()
  .min(1, 'must not be empty')
  .max(TEXT_MAX, `must be at most ${TEXT_MAX} characters`)
  .refine((s) => !TEXT_CONTROL.test(s), 'must not contain control characters')
  .meta({ description: `the message, 1-${TEXT_MAX} characters; sealed at rest` });

/** A new thread: its subject and first message. */
export const NewThread = z.object({ subject: subjectSchema, text: textSchema }).strict();
/** A message in an existing thread. */
export const NewMessage = z.object({ text: textSchema }).strict();

/** Who wrote or reads: a staff user id, `system`, or `patient` (never the patient's id). */
export interface Sender {
  readonly kind: 'staff' | 'patient';
  readonly id: string;
}

/** A thread as its readers see it. */
export interface Thread {
  readonly id: string;
  readonly patientId: string;
  readonly subject: string;
  /** A staff user id, `system`, or `patient`. */
  readonly createdBy: string;
  readonly createdAt: Date;
  readonly closedAt: Date | null;
  readonly lastMessageAt: Date;
  readonly messageCount: number;
}

/** A thread in a list, with the caller's unread count (messages from the other side since they last read). */
export interface ListedThread extends Thread {
  readonly unread: number;
}

export interface Message {
  readonly id: string;
  /** 1, 2, 3 ... within the thread. */
  readonly seq: number;
  readonly sender: Sender;
  readonly text: string;
  readonly createdAt: Date;
}

export interface ThreadPage {
  readonly threads: ListedThread[];
  /** Pass as `before` for the next (older) page; null on the last page. */
  readonly next: string | null;
}

export interface ThreadRead {
  readonly thread: Thread;
  /** Up to where the caller had read before this call (0: nothing yet). */
  readonly lastReadSeq: number;
  readonly messages: Message[];
  /** Pass as `after` for the next page; null when this page reaches the last message. */
  readonly next: number | null;
}

export function parse<T extends z.ZodType>(schema: T, input: unknown, whole: string): z.infer<T> {
  const r = schema.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw validationError((issue?.path ?? []).map(String).join('.') || whole, issue?.message ?? 'is invalid');
  }
  return r.data;
}

const limitOf = (value: unknown, max: number, fallback: number): number => {
  if (value === undefined) {
    return fallback;
  }
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw validationError('limit', `must be an integer from 1 to ${max}`);
  }
  return value;
};

/** `{limit?, before?}` of a list; `before` is the opaque `next` of the previous page. */
export function listPage(input: unknown): { limit: number; before?: Position } {
  const p = (input ?? {}) as { limit?: unknown; before?: unknown };
  const limit = limitOf(p.limit, PAGE_MAX, PAGE_DEFAULT);
  if (p.before === undefined) {
    return { limit };
  }
  const before = typeof p.before === 'string' ? decodeCursor(p.before) : undefined;
  if (!before) {
    throw validationError('before', 'must be the `next` value of a previous page');
  }
  return { limit, before };
}

/** `{limit?, after?}` of a thread's messages; `after` is a message number. */
export function messagePage(input: unknown): { limit: number; after: number } {
  const p = (input ?? {}) as { limit?: unknown; after?: unknown };
  const limit = limitOf(p.limit, MESSAGES_PAGE_MAX, MESSAGES_PAGE_DEFAULT);
  const after = p.after ?? 0;
  if (typeof after !== 'number' || !Number.isInteger(after) || after < 0) {
    throw validationError('after', 'must be a message number (0 or more)');
  }
  return { limit, after };
}

/** The keyset position of a list row as an opaque, URL-safe cursor (a time and a thread id: no health data). */
export const encodeCursor = (t: { readonly last_message_at: Date; readonly id: string }): string =>
  Buffer.from(`${t.last_message_at.getTime()}.${t.id}`, 'utf8').toString('base64url');

export function decodeCursor(cursor: string): Position | undefined {
  if (cursor.length > 100) {
    return undefined;
  }
  const m = /^(\d{1,15})\.([0-9a-f-]{36})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  return m?.[1] && m[2] && isUuid(m[2]) ? { at: new Date(Number(m[1])), id: m[2] } : undefined;
}

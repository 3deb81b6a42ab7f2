import { createHash, randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { AccessContext } from '../access/context.ts';
import { append } from '../audit/append.ts';
import type { Chart } from '../chart/gate.ts';
import type { CoreDb } from '../db/schema.ts';
import { CustosError, notFound } from '../errors.ts';

/**
 * Single-use download tokens (issue 6, item 4) for places that load a file by URL and cannot
 * make an authenticated JSON call first: an `<img src>`, a viewer in a new tab. A token is
 *
 * - issued only to someone the gate lets read the file at that moment, in the transaction of
 *   the audit entry of its issue (`Chart.authorizeDownload`);
 * - random (256 bits, base64url) and meaningless: the URL names no patient, record or file;
 * - valid for 60 seconds, once, and only for the session that asked for it (the session cookie
 *   must come with it), so a URL that leaks (history, a log, a shoulder) opens nothing;
 * - stored as its SHA-256 only, in PostgreSQL (migration 011), so every server of a deployment
 *   sees the same tokens and one conditional UPDATE makes "once" hold across all of them.
 *
 * The download itself is `Chart.openFile`, decided and audited again (a care team that changed
 * within the minute is obeyed). A refused redemption is audited (`redeem`, denied, with the
 * reason: unknown, malformed, used, expired, other-session) and answered like a missing file.
 */

export const DOWNLOAD_TOKEN_TTL_MS = 60_000;
/** Redeemed and expired tokens are deleted this long after they expire (housekeeping on issue). */
const KEEP_EXPIRED_MS = 24 * 60 * 60 * 1000;
const TOKEN = /^[A-Za-z0-9_-]{43}$/;

type DownloadTokenTable = {
  token_hash: Buffer;
  practice_id: string;
  record_id: string;
  actor_id: string;
  session_id: string;
  created_at: Date;
  expires_at: Date;
  used_at: Date | null;
};
type TokenDb = { download_tokens: DownloadTokenTable };

export type RedeemRefusal = 'unknown' | 'malformed' | 'used' | 'expired' | 'other-session';

const hashToken = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();
/** How an audit entry names a token: a prefix of its hash (the token itself is a credential). */
const tokenRef = (hash: Buffer): string => hash.subarray(0, 16).toString('hex');

export class DownloadTokens {
  readonly #db: Kysely<TokenDb>;
  readonly #audit: Kysely<CoreDb>;
  readonly #chart: Chart;
  readonly #clock: () => Date;
  readonly #ttlMs: number;

  constructor(options: { db: Kysely<CoreDb>; chart: Chart; clock: () => Date; ttlMs?: number }) {
    this.#audit = options.db;
    this.#db = options.db.withTables<TokenDb>();
    this.#chart = options.chart;
    this.#clock = options.clock;
    this.#ttlMs = options.ttlMs ?? DOWNLOAD_TOKEN_TTL_MS;
  }

  /**
   * Issues a token for a document the caller may read, bound to the caller's session.
   *
   * @example const { token } = await tokens.issue(ctx, recordId); // GET /api/v1/files/${token}
   */
  async issue(ctx: AccessContext, recordId: string): Promise<{ token: string; expiresAt: Date }> {
    const session = sessionOf(ctx);
    const token = randomBytes(32).toString('base64url');
    const now = this.#clock();
    const expiresAt = new Date(now.getTime() + this.#ttlMs);
    await this.#chart.authorizeDownload(ctx, recordId, async (tx) => {
      const db = tx.withTables<TokenDb>();
      await db
        .deleteFrom('download_tokens')
        .where('practice_id', '=', ctx.practiceId)
        .where('expires_at', '<', new Date(now.getTime() - KEEP_EXPIRED_MS))
        .execute();
      await db
        .insertInto('download_tokens')
        .values({
          token_hash: hashToken(token),
          practice_id: ctx.practiceId,
          record_id: recordId,
          actor_id: ctx.actor.id,
          session_id: session,
          created_at: now,
          expires_at: expiresAt,
          used_at: null,
        })
        .execute();
    });
    return { token, expiresAt };
  }

  /**
   * Uses up a token and returns the record it opens: the same actor and session that asked for
   * it, before it expires, once. Anything else is audited and thrown as "not found".
   */
  async redeem(ctx: AccessContext, token: string): Promise<string> {
    const now = this.#clock();
    const session = sessionOf(ctx);
    if (!TOKEN.test(token)) {
      throw await this.#refuse(ctx, null, 'malformed', null, now);
    }
    const hash = hashToken(token);
    const used = await this.#db
      .updateTable('download_tokens')
      .set({ used_at: now })
      .where('token_hash', '=', hash)
      .where('practice_id', '=', ctx.practiceId)
      .where('used_at', 'is', null)
      .where('expires_at', '>', now)
      .where('actor_id', '=', ctx.actor.id)
      .where('session_id', '=', session)
      .returning('record_id')
      .executeTakeFirst();
    if (used) {
      return used.record_id;
    }
    // Why not, for the privacy officer: another session holding the URL is worth a look.
    const row = await this.#db
      .selectFrom('download_tokens')
      .select(['record_id', 'actor_id', 'session_id', 'used_at', 'expires_at'])
      .where('token_hash', '=', hash)
      .where('practice_id', '=', ctx.practiceId)
      .executeTakeFirst();
    const reason: RedeemRefusal = !row
      ? 'unknown'
      : row.actor_id !== ctx.actor.id || row.session_id !== session
        ? 'other-session'
        : row.used_at
          ? 'used'
          : 'expired';
    throw await this.#refuse(ctx, hash, reason, row?.record_id ?? null, now);
  }

  async #refuse(
    ctx: AccessContext,
    hash: Buffer | null,
    reason: RedeemRefusal,
    recordId: string | null,
    now: Date,
  ) {
    await append(
      this.#audit,
      ctx,
      {
        action: 'redeem',
        resourceType: 'download-token',
        resourceId: hash ? tokenRef(hash) : null,
        outcome: 'denied',
        reason,
        detail: recordId ? { record: recordId } : null,
      },
      now,
    );
    return notFound('file');
  }
}

/** Tokens belong to sessions; a context without one (a system actor) gets none and redeems none. */
function sessionOf(ctx: AccessContext): string {
  if (!ctx.sessionId) {
    throw new CustosError('CUSTOS_ERR_UNAUTHENTICATED', 'download tokens need a session');
  }
  return ctx.sessionId;
}

import { createHash, randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { AccessContext } from '../access/context.ts';
import { append } from '../audit/append.ts';
import type { CoreDb } from '../db/schema.ts';
import type { IdentityPolicy } from './config.ts';
import type { SessionLimits } from './practice-settings.ts';

/**
 * Server-side sessions (OWASP Session Management): the client holds an opaque 256-bit random id;
 * the database holds only its SHA-256, so a database dump cannot be replayed as a login.
 */
export interface Session {
  readonly idHash: Buffer;
  readonly userId: string;
  readonly practiceId: string;
  readonly kind: 'mfa-pending' | 'full';
  readonly createdAt: Date;
  readonly lastSeenAt: Date;
  readonly absoluteExpiresAt: Date;
  readonly idleExpiresAt: Date;
  readonly reauthAt: Date | null;
  readonly clientAddress: string | null;
}

export type SessionCheck =
  | { readonly ok: true; readonly session: Session }
  | { readonly ok: false; readonly reason: 'unknown' | 'ended' | 'idle-timeout' | 'absolute-timeout' };

const TOUCH_EVERY_MS = 5000;

export const hashSessionId = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();

export class Sessions {
  readonly #db: Kysely<CoreDb>;
  readonly #clock: () => Date;
  readonly #policy: IdentityPolicy;
  readonly #limits: (practiceId: string) => Promise<SessionLimits>;

  constructor(options: {
    db: Kysely<CoreDb>;
    clock: () => Date;
    policy: IdentityPolicy;
    limits?: (practiceId: string) => Promise<SessionLimits>;
  }) {
    this.#db = options.db;
    this.#clock = options.clock;
    this.#policy = options.policy;
    this.#limits = options.limits ?? (async () => options.policy);
  }

  /** Starts a session and returns the token for the cookie (the only copy of it). */
  async create(q: {
    userId: string;
    practiceId: string;
    kind: Session['kind'];
    clientAddress: string | null;
    userAgentHash: string | null;
  }): Promise<{ token: string; idHash: Buffer }> {
    const token = randomBytes(32).toString('base64url');
    const idHash = hashSessionId(token);
    const now = this.#clock();
    const life =
      q.kind === 'full' ? (await this.#limits(q.practiceId)).absoluteTimeoutMs : this.#policy.mfaPendingMs;
    await this.#db
      .insertInto('sessions')
      .values({
        id_hash: idHash,
        user_id: q.userId,
        practice_id: q.practiceId,
        kind: q.kind,
        created_at: now,
        last_seen_at: now,
        absolute_expires_at: new Date(now.getTime() + life),
        reauth_at: q.kind === 'full' ? now : null,
        client_address: q.clientAddress,
        user_agent_hash: q.userAgentHash,
        ended_at: null,
        end_reason: null,
      })
      .execute();
    return { token, idHash };
  }

  /**
   * Checks a token: unknown, ended, idle past the timeout or past the absolute limit fail (an
   * expired session is ended on the spot, with its reason). A valid one has its idle timer reset.
   */
  async check(token: string, options: { touch?: boolean } = {}): Promise<SessionCheck> {
    const idHash = hashSessionId(token);
    const row = await this.#db
      .selectFrom('sessions')
      .selectAll()
      .where('id_hash', '=', idHash)
      .executeTakeFirst();
    if (!row) {
      return { ok: false, reason: 'unknown' };
    }
    if (row.ended_at) {
      return { ok: false, reason: 'ended' };
    }
    const now = this.#clock();
    const idleLimit =
      row.kind === 'full' ? (await this.#limits(row.practice_id)).idleTimeoutMs : this.#policy.mfaPendingMs;
    const reason =
      now >= row.absolute_expires_at
        ? 'absolute-timeout'
        : now.getTime() - row.last_seen_at.getTime() >= idleLimit
          ? 'idle-timeout'
          : undefined;
    if (reason) {
      await this.end(idHash, reason);
      return { ok: false, reason };
    }
    // Activity is recorded at most every TOUCH_EVERY_MS: a durable write per request would cost
    // more than the rest of the check, and the idle timer is then precise to within 5 seconds.
    const touch = options.touch !== false && now.getTime() - row.last_seen_at.getTime() >= TOUCH_EVERY_MS;
    const lastSeenAt = touch ? now : row.last_seen_at;
    if (touch) {
      await this.#db
        .updateTable('sessions')
        .set({ last_seen_at: now })
        .where('id_hash', '=', idHash)
        .execute();
    }
    return {
      ok: true,
      session: {
        idHash,
        userId: row.user_id,
        practiceId: row.practice_id,
        kind: row.kind as Session['kind'],
        createdAt: row.created_at,
        lastSeenAt,
        absoluteExpiresAt: row.absolute_expires_at,
        idleExpiresAt: new Date(
          Math.min(lastSeenAt.getTime() + idleLimit, row.absolute_expires_at.getTime()),
        ),
        reauthAt: row.reauth_at,
        clientAddress: row.client_address,
      },
    };
  }

  async end(idHash: Buffer, reason: string): Promise<boolean> {
    const r = await this.#db
      .updateTable('sessions')
      .set({ ended_at: this.#clock(), end_reason: reason })
      .where('id_hash', '=', idHash)
      .where('ended_at', 'is', null)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /** Ends every open session of a user (password change, role change, disable, reset). */
  async endAll(userId: string, reason: string, except?: Buffer): Promise<number> {
    let q = this.#db
      .updateTable('sessions')
      .set({ ended_at: this.#clock(), end_reason: reason })
      .where('user_id', '=', userId)
      .where('ended_at', 'is', null);
    if (except) {
      q = q.where('id_hash', '!=', except);
    }
    return Number((await q.executeTakeFirst()).numUpdatedRows);
  }

  async markReauthenticated(idHash: Buffer): Promise<void> {
    await this.#db
      .updateTable('sessions')
      .set({ reauth_at: this.#clock() })
      .where('id_hash', '=', idHash)
      .execute();
  }

  /** A user's open full sessions, newest first; `id` is a handle (hex of the hash prefix), never the token. */
  async list(userId: string) {
    const rows = await this.#db
      .selectFrom('sessions')
      .select(['id_hash', 'created_at', 'last_seen_at', 'client_address', 'user_agent_hash'])
      .where('user_id', '=', userId)
      .where('ended_at', 'is', null)
      .where('kind', '=', 'full')
      .where('absolute_expires_at', '>', this.#clock())
      .orderBy('last_seen_at', 'desc')
      .execute();
    return rows.map((r) => ({
      id: r.id_hash.subarray(0, 16).toString('hex'),
      createdAt: r.created_at,
      lastSeenAt: r.last_seen_at,
      clientAddress: r.client_address,
      userAgentHash: r.user_agent_hash,
    }));
  }

  /** Ends one of the user's own sessions by its handle; false if it is not theirs or not open. */
  async endByHandle(userId: string, handle: string, reason: string): Promise<boolean> {
    if (!/^[0-9a-f]{32}$/.test(handle)) {
      return false;
    }
    const open = await this.#db
      .selectFrom('sessions')
      .select('id_hash')
      .where('user_id', '=', userId)
      .where('ended_at', 'is', null)
      .execute();
    const match = open.find((s) => s.id_hash.subarray(0, 16).toString('hex') === handle);
    return match ? this.end(match.id_hash, reason) : false;
  }
}

/** The short public handle of a session (hex of the first half of its hash): for audit entries and lists. */
export const sessionHandle = (idHash: Buffer): string => idHash.subarray(0, 16).toString('hex');

/**
 * Finishes a login after a second factor (TOTP, recovery code or passkey): ends the pending
 * session, starts a full one under a new id (no fixation), clears the failure counters and
 * audits the login. Returns undefined when the pending session was already used.
 */
export async function completeLogin(
  deps: { db: Kysely<CoreDb>; sessions: Sessions; clock: () => Date },
  q: {
    ctx: AccessContext;
    pendingIdHash: Buffer;
    user: { id: string; practice_id: string };
    clientAddress: string;
    userAgentHash: string | null;
    detail: Record<string, string | number | boolean>;
  },
): Promise<{ token: string; idHash: Buffer } | undefined> {
  const { db, sessions, clock } = deps;
  if (!(await sessions.end(q.pendingIdHash, 'second-factor'))) {
    return undefined;
  }
  const full = await sessions.create({
    userId: q.user.id,
    practiceId: q.user.practice_id,
    kind: 'full',
    clientAddress: q.clientAddress,
    userAgentHash: q.userAgentHash,
  });
  const now = clock();
  await db
    .updateTable('users')
    .set({ failed_logins: 0, lockouts: 0, last_login_at: now })
    .where('id', '=', q.user.id)
    .execute();
  await append(
    db,
    { ...q.ctx, sessionId: sessionHandle(full.idHash) },
    { action: 'login', resourceType: 'user', resourceId: q.user.id, outcome: 'success', detail: q.detail },
    now,
  );
  return full;
}

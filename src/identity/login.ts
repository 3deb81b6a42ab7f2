import { type Kysely, sql } from 'kysely';
import type { Keyring } from '../crypto/keyring.ts';
import type { CoreDb } from '../db/schema.ts';
import type { Blocks } from '../guard/blocks.ts';
import { totpSecretAt } from './accounts.ts';
import type { IdentityPolicy } from './config.ts';
import { type RequestMeta, securityContext, securityEvent, subjectHash } from './events.ts';
import type { PasswordHasher } from './password.ts';
import { hmacRecoveryHasher, matchRecoveryCode } from './recovery.ts';
import { completeLogin, type Sessions } from './sessions.ts';
import { verifyTotp } from './totp.ts';
import { normalizeUsername } from './usernames.ts';

/**
 * Login in two steps (NIST SP 800-63B AAL2): password, then a second factor. Every defense is
 * checked before any password hash is computed, and its state lives in the database:
 * address blocks, a per-address throttle, the account lockout with exponential backoff, and
 * credential-stuffing detection. An unknown user and a wrong password give the same answer and
 * cost the same argon2 work (no enumeration).
 */
export type LoginResult =
  | {
      readonly ok: true;
      readonly token: string;
      readonly kind: 'mfa-pending' | 'full';
      readonly userId: string;
    }
  | { readonly ok: false; readonly reason: 'failed' | 'throttled' | 'blocked' };

export interface LoginOptions {
  readonly db: Kysely<CoreDb>;
  readonly keyring: Keyring;
  readonly hasher: PasswordHasher;
  readonly sessions: Sessions;
  readonly blocks: Blocks;
  readonly policy: IdentityPolicy;
  readonly clock: () => Date;
}

export class Login {
  readonly #o: LoginOptions;

  constructor(options: LoginOptions) {
    this.#o = options;
  }

  /** Step 1: username and password. On success returns an `mfa-pending` session token. */
  async password(meta: RequestMeta, input: { username: string; password: string }): Promise<LoginResult> {
    const { db, blocks, policy, hasher, clock } = this.#o;
    const address = meta.clientAddress;
    if (await blocks.isBlocked(address)) {
      return { ok: false, reason: 'blocked' };
    }
    const attempts = await blocks.strikes(address, 'login-attempt', 60_000);
    if (attempts.count >= policy.loginAttemptsPerMinute) {
      await securityEvent(
        db,
        securityContext(meta, { id: 'unknown' }),
        {
          action: 'login-failed',
          resourceType: 'address',
          resourceId: address,
          outcome: 'denied',
          reason: 'throttled',
        },
        clock(),
      );
      return { ok: false, reason: 'throttled' };
    }
    await blocks.strike(address, 'login-attempt');
    const username = normalizeUsername(input.username);
    const user = await db
      .selectFrom('users')
      .selectAll()
      .where('practice_id', '=', meta.practiceId)
      .where('username', '=', username)
      .executeTakeFirst();
    const now = clock();
    if (user?.locked_until && user.locked_until > now) {
      // Locked: no hash is computed, the answer is the same as for a wrong password.
      await securityEvent(
        db,
        securityContext(meta, { id: user.id }),
        {
          action: 'login-failed',
          resourceType: 'user',
          resourceId: user.id,
          outcome: 'denied',
          reason: 'locked',
        },
        now,
      );
      return { ok: false, reason: 'failed' };
    }
    const usable = user && user.status === 'active' && user.password_hash;
    const check = usable
      ? await hasher.verify(user.password_hash ?? '', input.password)
      : { ok: await hasher.verifyDummy(input.password), needsRehash: false };
    if (!user || !usable || !check.ok) {
      await this.#failed(
        meta,
        user ? { id: user.id, status: user.status } : undefined,
        username,
        !user ? 'unknown-user' : !usable ? `account-${user.status}` : 'bad-password',
      );
      return { ok: false, reason: 'failed' };
    }
    if (check.needsRehash) {
      await db
        .updateTable('users')
        .set({ password_hash: await hasher.hash(input.password.normalize('NFKC')) })
        .where('id', '=', user.id)
        .execute();
    }
    await db.updateTable('users').set({ failed_logins: 0 }).where('id', '=', user.id).execute();
    const { token } = await this.#o.sessions.create({
      userId: user.id,
      practiceId: user.practice_id,
      kind: 'mfa-pending',
      clientAddress: address,
      userAgentHash: meta.userAgentHash,
    });
    return { ok: true, token, kind: 'mfa-pending', userId: user.id };
  }

  /** Step 2: a TOTP code or a recovery code, on the `mfa-pending` session. Returns a new full session (rotated id). */
  async secondFactor(
    meta: RequestMeta,
    pendingToken: string,
    input: { code?: string; recoveryCode?: string },
  ): Promise<LoginResult> {
    const { db, clock, sessions, keyring } = this.#o;
    if (await this.#o.blocks.isBlocked(meta.clientAddress)) {
      return { ok: false, reason: 'blocked' };
    }
    const pending = await sessions.check(pendingToken);
    if (!pending.ok || pending.session.kind !== 'mfa-pending') {
      return { ok: false, reason: 'failed' };
    }
    const user = await db
      .selectFrom('users')
      .selectAll()
      .where('id', '=', pending.session.userId)
      .executeTakeFirstOrThrow();
    const now = clock();
    if (user.status !== 'active' || !user.totp_secret || (user.locked_until && user.locked_until > now)) {
      await sessions.end(pending.session.idHash, 'login-failed');
      return { ok: false, reason: 'failed' };
    }
    let factor: 'totp' | 'recovery-code' | undefined;
    if (typeof input.code === 'string') {
      factor = (await this.#claimTotp(user, input.code, now)) ? 'totp' : undefined;
    } else if (typeof input.recoveryCode === 'string') {
      const i = matchRecoveryCode(
        hmacRecoveryHasher({ key: keyring.recoveryCodeKey(), userId: user.id }),
        input.recoveryCode,
        user.recovery_hashes,
      );
      if (i >= 0) {
        const remaining = user.recovery_hashes.filter((_, k) => k !== i);
        const used = await db
          .updateTable('users')
          .set({ recovery_hashes: remaining })
          .where('id', '=', user.id)
          .where('recovery_hashes', '=', sql<string[]>`${user.recovery_hashes}::text[]`)
          .executeTakeFirst();
        factor = Number(used.numUpdatedRows) === 1 ? 'recovery-code' : undefined;
      }
    }
    const ctx = securityContext(meta, { id: user.id, role: user.roles.join(',') });
    if (!factor) {
      await securityEvent(
        db,
        ctx,
        {
          action: 'mfa-failed',
          resourceType: 'user',
          resourceId: user.id,
          outcome: 'denied',
          reason: typeof input.code === 'string' ? 'totp' : 'recovery-code',
        },
        now,
      );
      await this.#countFailure(meta, user.id);
      return { ok: false, reason: 'failed' };
    }
    if (factor === 'recovery-code') {
      await securityEvent(
        db,
        ctx,
        { action: 'recovery-code-used', resourceType: 'user', resourceId: user.id, outcome: 'success' },
        now,
      );
    }
    const full = await completeLogin(
      { db, sessions, clock },
      {
        ctx,
        pendingIdHash: pending.session.idHash,
        user,
        clientAddress: meta.clientAddress,
        userAgentHash: meta.userAgentHash,
        detail: { factor },
      },
    );
    if (!full) {
      return { ok: false, reason: 'failed' };
    }
    return { ok: true, token: full.token, kind: 'full', userId: user.id };
  }

  /**
   * Step-up re-authentication for sensitive actions: password and a fresh TOTP code on the
   * current session. Failures count toward the lockout like login failures.
   */
  async stepUp(
    meta: RequestMeta,
    session: { idHash: Buffer; userId: string },
    input: { password: string; code: string },
  ): Promise<boolean> {
    const { db, clock, hasher, sessions } = this.#o;
    const user = await db
      .selectFrom('users')
      .selectAll()
      .where('id', '=', session.userId)
      .executeTakeFirstOrThrow();
    const ctx = securityContext(meta, { id: user.id, role: user.roles.join(',') });
    const now = clock();
    let ok = false;
    if (
      user.status === 'active' &&
      user.password_hash &&
      user.totp_secret &&
      !(user.locked_until && user.locked_until > now)
    ) {
      const pw = await hasher.verify(user.password_hash, input.password);
      // The code's step is claimed only with the right password, so a typo does not burn it.
      ok = pw.ok && (await this.#claimTotp(user, input.code, now));
    }
    if (!ok) {
      await securityEvent(
        db,
        ctx,
        { action: 'reauth-failed', resourceType: 'user', resourceId: user.id, outcome: 'denied' },
        now,
      );
      await this.#countFailure(meta, user.id);
      return false;
    }
    await sessions.markReauthenticated(session.idHash);
    await securityEvent(
      db,
      ctx,
      { action: 'reauthenticated', resourceType: 'user', resourceId: user.id, outcome: 'success' },
      now,
    );
    return true;
  }

  /** Changes the password (old one required); every other session of the user ends (NIST SP 800-63B). */
  async changePassword(
    meta: RequestMeta,
    session: { idHash: Buffer; userId: string },
    input: { oldPassword: string; newPassword: string },
    check: (pw: string, username: string) => string,
  ): Promise<boolean> {
    const { db, clock, hasher, sessions } = this.#o;
    const user = await db
      .selectFrom('users')
      .selectAll()
      .where('id', '=', session.userId)
      .executeTakeFirstOrThrow();
    const ctx = securityContext(meta, { id: user.id, role: user.roles.join(',') });
    const old = user.password_hash
      ? await hasher.verify(user.password_hash, input.oldPassword)
      : { ok: false };
    if (!old.ok) {
      await securityEvent(
        db,
        ctx,
        {
          action: 'password-change-failed',
          resourceType: 'user',
          resourceId: user.id,
          outcome: 'denied',
          reason: 'bad-password',
        },
        clock(),
      );
      await this.#countFailure(meta, user.id);
      return false;
    }
    const next = check(input.newPassword, user.username);
    await db
      .updateTable('users')
      .set({ password_hash: await hasher.hash(next), password_changed_at: clock() })
      .where('id', '=', user.id)
      .execute();
    const ended = await sessions.endAll(user.id, 'password-changed', session.idHash);
    await securityEvent(
      db,
      ctx,
      {
        action: 'password-changed',
        resourceType: 'user',
        resourceId: user.id,
        outcome: 'success',
        detail: { sessionsEnded: ended },
      },
      clock(),
    );
    return true;
  }

  /**
   * Verifies a TOTP code (RFC 6238, ±1 step) and claims its step atomically, so that two requests
   * with the same code cannot both pass (replay), even on two servers.
   */
  async #claimTotp(
    user: { id: string; totp_secret: Buffer | null; totp_last_step: string | null },
    code: string,
    now: Date,
  ): Promise<boolean> {
    if (!user.totp_secret) {
      return false;
    }
    const secret = this.#o.keyring.openSecret(totpSecretAt(user.id), user.totp_secret).toString();
    const v = verifyTotp({
      secret,
      code,
      now,
      lastUsedStep: user.totp_last_step === null ? null : Number(user.totp_last_step),
    });
    if (!v.ok) {
      return false;
    }
    const claimed = await this.#o.db
      .updateTable('users')
      .set({ totp_last_step: String(v.step) })
      .where('id', '=', user.id)
      .where((eb) => eb.or([eb('totp_last_step', 'is', null), eb('totp_last_step', '<', String(v.step))]))
      .executeTakeFirst();
    return Number(claimed.numUpdatedRows) === 1;
  }

  /** A failed password: audit, count toward lockout, and toward credential stuffing for the address. */
  async #failed(
    meta: RequestMeta,
    user: { id: string; status: string } | undefined,
    username: string,
    reason: string,
  ): Promise<void> {
    const { db, clock, blocks, policy } = this.#o;
    const subject = subjectHash(username);
    await securityEvent(
      db,
      securityContext(meta, { id: user?.id ?? 'unknown' }),
      {
        action: 'login-failed',
        resourceType: 'user',
        resourceId: user?.id ?? null,
        outcome: 'denied',
        reason,
        detail: { subject },
      },
      clock(),
    );
    await blocks.strike(meta.clientAddress, 'login-failed', subject);
    if (user) {
      await this.#countFailure(meta, user.id);
    }
    const s = await blocks.strikes(meta.clientAddress, 'login-failed', policy.stuffingWindowMs);
    if (s.subjects >= policy.stuffingUsernames && !(await blocks.isBlocked(meta.clientAddress))) {
      await blocks.block(meta.clientAddress, 'credential-stuffing', policy.blockMs);
      await securityEvent(
        db,
        securityContext(meta, { id: 'system', kind: 'system' }),
        {
          action: 'ip-blocked',
          resourceType: 'address',
          resourceId: meta.clientAddress,
          outcome: 'success',
          reason: 'credential-stuffing',
          detail: { usernames: s.subjects },
        },
        clock(),
      );
    }
  }

  /** Counts a failure; at the threshold, locks with backoff 1, 2, 4, … minutes, capped (expires by itself). */
  async #countFailure(meta: RequestMeta, userId: string): Promise<void> {
    const { db, clock, policy } = this.#o;
    const row = await db
      .updateTable('users')
      .set((eb) => ({ failed_logins: eb('failed_logins', '+', 1) }))
      .where('id', '=', userId)
      .returning(['failed_logins', 'lockouts'])
      .executeTakeFirstOrThrow();
    if (row.failed_logins >= policy.lockoutThreshold) {
      const ms = Math.min(policy.lockoutBaseMs * 2 ** row.lockouts, policy.lockoutMaxMs);
      const until = new Date(clock().getTime() + ms);
      await db
        .updateTable('users')
        .set({ locked_until: until, failed_logins: 0, lockouts: row.lockouts + 1 })
        .where('id', '=', userId)
        .execute();
      await securityEvent(
        db,
        securityContext(meta, { id: 'system', kind: 'system' }),
        {
          action: 'lockout',
          resourceType: 'user',
          resourceId: userId,
          outcome: 'success',
          detail: { minutes: ms / 60_000 },
        },
        clock(),
      );
    }
  }
}

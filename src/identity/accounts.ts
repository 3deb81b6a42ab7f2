import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { AccessContext } from '../access/context.ts';
import { normalizeName } from '../chart/search-terms.ts';
import type { Binding } from '../crypto/envelope.ts';
import type { Keyring } from '../crypto/keyring.ts';
import type { CoreDb } from '../db/schema.ts';
import { CustosError, notFound, validationError } from '../errors.ts';
import type { IdentityPolicy } from './config.ts';
import { securityEvent } from './events.ts';
import { checkNewPassword, type PasswordHasher } from './password.ts';
import { generateRecoveryCodes, hmacRecoveryHasher } from './recovery.ts';
import type { Sessions } from './sessions.ts';
import { generateTotpSecret, totpQrSvg, totpUri, verifyTotp } from './totp.ts';
import { parseUsername } from './usernames.ts';

export const ROLES = ['admin', 'clinician', 'nurse', 'frontdesk', 'billing', 'privacy_officer'] as const;
export type Role = (typeof ROLES)[number];

export const totpSecretAt = (userId: string): Binding => ({
  table: 'users',
  column: 'totp_secret',
  row: userId,
  version: 0,
});
const tokenHash = (token: string) => createHash('sha256').update(token, 'utf8').digest();

export interface AccountsOptions {
  readonly db: Kysely<CoreDb>;
  readonly keyring: Keyring;
  readonly hasher: PasswordHasher;
  readonly sessions: Sessions;
  readonly policy: IdentityPolicy;
  readonly clock: () => Date;
  readonly issuer?: string;
}

/**
 * Staff accounts: creation with a one-time enrollment link (never a password), enrollment
 * (password, then TOTP, then recovery codes), disable, enable, reset. Every change is audited.
 */
export class Accounts {
  readonly #o: AccountsOptions;

  constructor(options: AccountsOptions) {
    this.#o = options;
  }

  /** Creates an account in `enrolling` state; returns the one-time enrollment token (valid 24 h). */
  async add(
    ctx: AccessContext,
    input: { username: unknown; roles: unknown; familyName?: unknown },
  ): Promise<{ userId: string; username: string; token: string; expiresAt: Date }> {
    const username = parseUsername(input.username);
    const roles = parseRoles(input.roles);
    const familyIndex = this.#familyIndex(input.familyName);
    const { db, clock } = this.#o;
    const existing = await db
      .selectFrom('users')
      .select('id')
      .where('practice_id', '=', ctx.practiceId)
      .where('username', '=', username)
      .executeTakeFirst();
    if (existing) {
      throw validationError('username', 'is already taken');
    }
    const userId = randomUUID();
    const now = clock();
    await db
      .insertInto('users')
      .values({
        id: userId,
        practice_id: ctx.practiceId,
        username,
        roles,
        status: 'enrolling',
        password_hash: null,
        password_changed_at: null,
        totp_secret: null,
        totp_last_step: null,
        locked_until: null,
        last_login_at: null,
        created_at: now,
        family_index: familyIndex,
      })
      .execute();
    const { token, expiresAt } = await this.#newEnrollment(userId, ctx.practiceId);
    await securityEvent(
      db,
      ctx,
      {
        action: 'user-added',
        resourceType: 'user',
        resourceId: userId,
        outcome: 'success',
        detail: { roles: roles.join(',') },
      },
      now,
    );
    return { userId, username, token, expiresAt };
  }

  /**
   * A staff member's family name is kept only as a blind index (the same key and normalization
   * as patients' names), for the anomaly report's namesake check.
   */
  #familyIndex(familyName: unknown): Buffer | null {
    if (familyName === undefined || familyName === null) {
      return null;
    }
    if (typeof familyName !== 'string' || familyName.trim().length === 0 || familyName.length > 100) {
      throw validationError('familyName', 'must be a name of 1 to 100 characters');
    }
    const normalized = normalizeName(familyName);
    if (!/\p{L}/u.test(normalized)) {
      throw validationError('familyName', 'must contain letters');
    }
    return this.#o.keyring.blindIndex('family', normalized);
  }

  async #newEnrollment(userId: string, practiceId: string): Promise<{ token: string; expiresAt: Date }> {
    const token = randomBytes(32).toString('base64url');
    const now = this.#o.clock();
    const expiresAt = new Date(now.getTime() + this.#o.policy.enrollmentMs);
    await this.#o.db
      .insertInto('enrollments')
      .values({
        token_hash: tokenHash(token),
        user_id: userId,
        practice_id: practiceId,
        expires_at: expiresAt,
        used_at: null,
        created_at: now,
      })
      .execute();
    return { token, expiresAt };
  }

  /** The account an unused, unexpired enrollment token belongs to. */
  async #enrollment(token: unknown) {
    if (typeof token !== 'string' || token.length < 20 || token.length > 100) {
      throw validationError('token', 'is not an enrollment token');
    }
    const row = await this.#o.db
      .selectFrom('enrollments as e')
      .innerJoin('users as u', 'u.id', 'e.user_id')
      .select([
        'e.token_hash',
        'e.expires_at',
        'e.used_at',
        'u.id',
        'u.username',
        'u.practice_id',
        'u.status',
        'u.password_hash',
        'u.totp_secret',
      ])
      .where('e.token_hash', '=', tokenHash(token))
      .executeTakeFirst();
    if (!row || row.used_at || row.expires_at <= this.#o.clock() || row.status !== 'enrolling') {
      throw new CustosError('CUSTOS_ERR_NOT_FOUND', 'enrollment link is invalid, used or expired');
    }
    return row;
  }

  async enrollmentInfo(token: unknown): Promise<{ username: string; step: 'password' | 'totp' | 'confirm' }> {
    const e = await this.#enrollment(token);
    return {
      username: e.username,
      step: !e.password_hash ? 'password' : !e.totp_secret ? 'totp' : 'confirm',
    };
  }

  async enrollPassword(token: unknown, password: unknown): Promise<void> {
    const e = await this.#enrollment(token);
    const pw = parseNewPassword(password, e.username, 'password');
    await this.#o.db
      .updateTable('users')
      .set({ password_hash: await this.#o.hasher.hash(pw), password_changed_at: this.#o.clock() })
      .where('id', '=', e.id)
      .execute();
  }

  /** Creates the TOTP secret (stored sealed) and returns what the authenticator app needs. */
  async enrollTotp(token: unknown): Promise<{ secret: string; uri: string; qrSvg: string }> {
    const e = await this.#enrollment(token);
    if (!e.password_hash) {
      throw validationError('token', 'choose a password first');
    }
    const secret = generateTotpSecret();
    await this.#o.db
      .updateTable('users')
      .set({
        totp_secret: this.#o.keyring.sealSecret(totpSecretAt(e.id), Buffer.from(secret)),
        totp_last_step: null,
      })
      .where('id', '=', e.id)
      .execute();
    const uri = totpUri({ secret, account: e.username, issuer: this.#o.issuer ?? 'Custos' });
    return { secret, uri, qrSvg: await totpQrSvg(uri) };
  }

  /** Confirms the authenticator with a current code; activates the account; returns recovery codes once. */
  async confirmTotp(
    token: unknown,
    code: unknown,
    meta: { ctx: AccessContext },
  ): Promise<{ recoveryCodes: string[] }> {
    const e = await this.#enrollment(token);
    if (!e.totp_secret || typeof code !== 'string') {
      throw validationError('code', 'enroll an authenticator first, then enter its 6-digit code');
    }
    const secret = this.#o.keyring.openSecret(totpSecretAt(e.id), e.totp_secret).toString();
    const v = verifyTotp({ secret, code, now: this.#o.clock(), lastUsedStep: null });
    if (!v.ok) {
      throw validationError(
        'code',
        'does not match the authenticator; check the device clock and try the current code',
      );
    }
    const { codes, hashes } = generateRecoveryCodes(
      hmacRecoveryHasher({ key: this.#o.keyring.recoveryCodeKey(), userId: e.id }),
      10,
    );
    const now = this.#o.clock();
    await this.#o.db.transaction().execute(async (tx) => {
      await tx
        .updateTable('users')
        .set({ status: 'active', totp_last_step: String(v.step), recovery_hashes: hashes })
        .where('id', '=', e.id)
        .execute();
      await tx
        .updateTable('enrollments')
        .set({ used_at: now })
        .where('token_hash', '=', e.token_hash)
        .execute();
      await securityEvent(
        tx,
        { ...meta.ctx, actor: { kind: 'user', id: e.id } },
        {
          action: 'mfa-enrolled',
          resourceType: 'user',
          resourceId: e.id,
          outcome: 'success',
          detail: { factor: 'totp' },
        },
        now,
      );
    });
    return { recoveryCodes: codes };
  }

  async #user(ctx: AccessContext, userId: string) {
    const u = await this.#o.db
      .selectFrom('users')
      .selectAll()
      .where('id', '=', userId)
      .where('practice_id', '=', ctx.practiceId)
      .executeTakeFirst();
    if (!u) {
      throw notFound('user');
    }
    return u;
  }

  async findByUsername(practiceId: string, username: string) {
    return this.#o.db
      .selectFrom('users')
      .selectAll()
      .where('practice_id', '=', practiceId)
      .where('username', '=', username)
      .executeTakeFirst();
  }

  /** Disables an account and ends all its sessions. */
  async disable(ctx: AccessContext, userId: string): Promise<void> {
    const u = await this.#user(ctx, userId);
    await this.#o.db.updateTable('users').set({ status: 'disabled' }).where('id', '=', u.id).execute();
    await this.#o.sessions.endAll(u.id, 'account-disabled');
    await securityEvent(
      this.#o.db,
      ctx,
      { action: 'user-disabled', resourceType: 'user', resourceId: u.id, outcome: 'success' },
      this.#o.clock(),
    );
  }

  async enable(ctx: AccessContext, userId: string): Promise<void> {
    const u = await this.#user(ctx, userId);
    if (u.status !== 'disabled') {
      throw validationError('user', 'is not disabled');
    }
    await this.#o.db
      .updateTable('users')
      .set({ status: u.password_hash && u.totp_secret ? 'active' : 'enrolling' })
      .where('id', '=', u.id)
      .execute();
    await securityEvent(
      this.#o.db,
      ctx,
      { action: 'user-enabled', resourceType: 'user', resourceId: u.id, outcome: 'success' },
      this.#o.clock(),
    );
  }

  /** Clears password and second factor, ends sessions and lockout, and issues a new enrollment link. */
  async reset(ctx: AccessContext, userId: string): Promise<{ token: string; expiresAt: Date }> {
    const u = await this.#user(ctx, userId);
    await this.#o.db
      .updateTable('users')
      .set({
        status: 'enrolling',
        password_hash: null,
        totp_secret: null,
        totp_last_step: null,
        recovery_hashes: [],
        failed_logins: 0,
        lockouts: 0,
        locked_until: null,
      })
      .where('id', '=', u.id)
      .execute();
    await this.#o.db.deleteFrom('webauthn_credentials').where('user_id', '=', u.id).execute();
    await this.#o.sessions.endAll(u.id, 'account-reset');
    const link = await this.#newEnrollment(u.id, ctx.practiceId);
    await securityEvent(
      this.#o.db,
      ctx,
      { action: 'user-reset', resourceType: 'user', resourceId: u.id, outcome: 'success' },
      this.#o.clock(),
    );
    return link;
  }

  /**
   * Changes a user's roles; every session of that user ends, so the new rights apply from the
   * next login (HIPAA 164.308(a)(4) access authorization). An admin cannot drop their own admin
   * role (the practice would lose its last way to manage accounts through this path).
   */
  async setRoles(ctx: AccessContext, userId: string, roles: unknown): Promise<void> {
    const u = await this.#user(ctx, userId);
    const next = parseRoles(roles);
    if (u.id === ctx.actor.id && u.roles.includes('admin') && !next.includes('admin')) {
      throw validationError('roles', 'an administrator cannot remove their own admin role');
    }
    await this.#o.db.updateTable('users').set({ roles: next }).where('id', '=', u.id).execute();
    const ended = await this.#o.sessions.endAll(u.id, 'role-changed');
    await securityEvent(
      this.#o.db,
      ctx,
      {
        action: 'role-changed',
        resourceType: 'user',
        resourceId: u.id,
        outcome: 'success',
        detail: { from: u.roles.join(','), to: next.join(','), sessionsEnded: ended },
      },
      this.#o.clock(),
    );
  }

  /** Clears a lockout (admin). */
  async unlock(ctx: AccessContext, userId: string): Promise<void> {
    const u = await this.#user(ctx, userId);
    await this.#o.db
      .updateTable('users')
      .set({ failed_logins: 0, lockouts: 0, locked_until: null })
      .where('id', '=', u.id)
      .execute();
    await securityEvent(
      this.#o.db,
      ctx,
      { action: 'unlock', resourceType: 'user', resourceId: u.id, outcome: 'success' },
      this.#o.clock(),
    );
  }

  async list(practiceId: string) {
    const rows = await this.#o.db
      .selectFrom('users')
      .select(['id', 'username', 'roles', 'status', 'last_login_at', 'locked_until', 'created_at'])
      .where('practice_id', '=', practiceId)
      .orderBy('username')
      .execute();
    return rows.map((r) => ({
      id: r.id,
      username: r.username,
      roles: r.roles,
      status: r.status,
      lastLoginAt: r.last_login_at,
      lockedUntil: r.locked_until,
      createdAt: r.created_at,
    }));
  }
}

export function parseRoles(input: unknown): Role[] {
  const list = typeof input === 'string' ? input.split(',').map((r) => r.trim()) : input;
  if (!Array.isArray(list) || list.length === 0) {
    throw validationError('roles', `must name at least one role of ${ROLES.join(', ')}`);
  }
  for (const r of list) {
    if (!(ROLES as readonly string[]).includes(r as string)) {
      throw validationError('roles', `must be among ${ROLES.join(', ')}`);
    }
  }
  return [...new Set(list as Role[])];
}

export function parseNewPassword(input: unknown, username: string, field: string): string {
  if (typeof input !== 'string') {
    throw validationError(field, 'must be a string');
  }
  const check = checkNewPassword(input, { username });
  if (!check.ok) {
    throw validationError(field, check.problem);
  }
  return input.normalize('NFKC');
}

import { createHash } from 'node:crypto';
import {
  type AuthenticationResponseJSON,
  generateAuthenticationOptions,
  generateRegistrationOptions,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from '@simplewebauthn/server';
import type { Kysely } from 'kysely';
import type { AccessContext } from '../access/context.ts';
import type { CoreDb } from '../db/schema.ts';
import { CustosError } from '../errors.ts';
import type { Blocks } from '../guard/blocks.ts';
import type { IdentityPolicy } from './config.ts';
import { type RequestMeta, securityContext, securityEvent } from './events.ts';
import type { LoginResult } from './login.ts';
import { completeLogin, type Sessions, sessionHandle } from './sessions.ts';

/** How long a registration or authentication ceremony may take, and how long its challenge lives. */
export const PASSKEY_CEREMONY_MS = 5 * 60_000;
/** A cap per user: a passkey is a second factor, not a collection; it also bounds the table. */
const MAX_PASSKEYS_PER_USER = 10;
/** COSE algorithms accepted: ES256, EdDSA, RS256 (the algorithms every platform authenticator offers). */
const ALGORITHMS = [-7, -8, -257];
const TRANSPORTS = new Set(['ble', 'cable', 'hybrid', 'internal', 'nfc', 'smart-card', 'usb']);

/** The public handle of a passkey (list, delete): SHA-256 of its credential id, 16 bytes in hex, like session handles. */
export const passkeyHandle = (credentialId: string): string =>
  createHash('sha256').update(credentialId, 'utf8').digest().subarray(0, 16).toString('hex');

/** The handle of a session, as `AccessContext.sessionId` carries it (never the token). */

type Ceremony = 'register' | 'authenticate';

/**
 * Challenges handed out and not yet answered, keyed by ceremony and session handle, each bound to
 * its user and expiring after {@link PASSKEY_CEREMONY_MS}. `take` removes the entry before anything
 * is verified, so a challenge is single-use whatever the outcome; JavaScript runs the lookup and
 * delete without interleaving, so two concurrent answers cannot both get it.
 *
 * Why in memory: WebAuthn's replay protection rests on the server remembering which challenges are
 * still open, so a stateless alternative (an HMAC'd challenge the client sends back) would still
 * need a "used" list to be single-use, and authenticators that always report signCount 0 (synced
 * passkeys) make the challenge the only replay defense. A restart just drops open ceremonies (the
 * user asks again). A deployment with several servers behind one address needs these in the
 * database (a `webauthn_challenges` table: session hash, ceremony, challenge, expires_at, deleted
 * by `DELETE … RETURNING` to stay single-use) or sticky sessions.
 */
class PendingChallenges {
  readonly #entries = new Map<string, { challenge: string; userId: string; expiresAt: number }>();
  readonly #clock: () => Date;
  /** Bounds memory however many half-finished ceremonies are opened; the oldest go first. */
  readonly #max = 10_000;

  constructor(clock: () => Date) {
    this.#clock = clock;
  }

  put(ceremony: Ceremony, session: string, userId: string, challenge: string): void {
    const now = this.#clock().getTime();
    for (const [k, v] of this.#entries) {
      if (v.expiresAt <= now) {
        this.#entries.delete(k);
      }
    }
    const key = `${ceremony}:${session}`;
    // A new request for the same session replaces the old challenge (and moves it to the end).
    this.#entries.delete(key);
    while (this.#entries.size >= this.#max) {
      const oldest = this.#entries.keys().next();
      if (oldest.done) {
        break;
      }
      this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, { challenge, userId, expiresAt: now + PASSKEY_CEREMONY_MS });
  }

  take(ceremony: Ceremony, session: string, userId: string): string | undefined {
    const key = `${ceremony}:${session}`;
    const e = this.#entries.get(key);
    this.#entries.delete(key);
    if (!e || e.userId !== userId || e.expiresAt <= this.#clock().getTime()) {
      return undefined;
    }
    return e.challenge;
  }
}

export interface PasskeysOptions {
  readonly db: Kysely<CoreDb>;
  readonly clock: () => Date;
  readonly sessions: Sessions;
  readonly blocks: Blocks;
  readonly policy: IdentityPolicy;
  /** The relying party id: the server's registrable domain (`localhost` by default). Never an IP address in browsers. */
  readonly rpId?: string;
  readonly rpName?: string;
  /** The origins pages run on (`https://localhost:8443` by default, the default `custos serve` address). */
  readonly origins?: readonly string[];
}

export interface PasskeyInfo {
  readonly id: string;
  readonly createdAt: Date;
  readonly transports: readonly string[];
}

/**
 * WebAuthn passkeys as a second factor (W3C Web Authentication Level 3; NIST SP 800-63B §5.1.8,
 * a multi-factor-capable cryptographic authenticator used here after the password, so AAL2).
 * Registration runs on a full session with a recent step-up; authentication replaces the TOTP
 * code on the `mfa-pending` session. Verification (signature, challenge, origin, RP id hash, user
 * presence and verification, signature counter) is done by `@simplewebauthn/server`; this class
 * owns the challenges, the stored credentials, the session change and the audit entries.
 *
 * @example
 * const options = await passkeys.registrationOptions(ctx, { reauthAt: session.reauthAt });
 * // … navigator.credentials.create({ publicKey: options }) in the browser …
 * const r = await passkeys.verifyRegistration(ctx, { reauthAt: session.reauthAt }, response);
 */
export class Passkeys {
  readonly #o: PasskeysOptions;
  readonly #rpId: string;
  readonly #origins: string[];
  readonly #pending: PendingChallenges;

  constructor(options: PasskeysOptions) {
    this.#o = options;
    this.#rpId = options.rpId ?? 'localhost';
    this.#origins = [...(options.origins ?? ['https://localhost:8443'])];
    this.#pending = new PendingChallenges(options.clock);
  }

  /** Options for `navigator.credentials.create()`; needs a step-up within `policy.stepUpMs`. */
  async registrationOptions(
    ctx: AccessContext,
    session: { reauthAt: Date | null },
  ): Promise<PublicKeyCredentialCreationOptionsJSON> {
    await this.#requireStepUp(ctx, session.reauthAt);
    const { db } = this.#o;
    const user = await db
      .selectFrom('users')
      .select(['id', 'username'])
      .where('id', '=', ctx.actor.id)
      .executeTakeFirstOrThrow();
    const existing = await this.#credentials(user.id);
    const options = await generateRegistrationOptions({
      rpName: this.#o.rpName ?? 'Custos',
      rpID: this.#rpId,
      userName: user.username,
      // The user handle is the account's random UUID: no name or other personal data in it.
      userID: new Uint8Array(Buffer.from(user.id.replaceAll('-', ''), 'hex')),
      timeout: PASSKEY_CEREMONY_MS,
      attestationType: 'none',
      excludeCredentials: existing.map((c) => ({ id: c.id, transports: c.transports })),
      authenticatorSelection: { residentKey: 'discouraged', userVerification: 'required' },
      supportedAlgorithmIDs: ALGORITHMS,
    });
    this.#pending.put('register', this.#sessionOf(ctx), user.id, options.challenge);
    return options;
  }

  /**
   * Verifies the authenticator's attestation against the open challenge and stores the credential.
   * Returns `{ ok: false }` (audited as `passkey-add-failed`) for any answer that does not verify.
   */
  async verifyRegistration(
    ctx: AccessContext,
    session: { reauthAt: Date | null },
    response: RegistrationResponseJSON,
  ): Promise<{ ok: true; passkey: PasskeyInfo } | { ok: false }> {
    await this.#requireStepUp(ctx, session.reauthAt);
    const { db, clock } = this.#o;
    const userId = ctx.actor.id;
    const challenge = this.#pending.take('register', this.#sessionOf(ctx), userId);
    const denied = async (reason: string) => {
      await securityEvent(
        db,
        ctx,
        { action: 'passkey-add-failed', resourceType: 'user', resourceId: userId, outcome: 'denied', reason },
        clock(),
      );
      return { ok: false as const };
    };
    if (!challenge) {
      return denied('challenge');
    }
    if ((await this.#credentials(userId)).length >= MAX_PASSKEYS_PER_USER) {
      return denied('too-many');
    }
    let info: Awaited<ReturnType<typeof verifyRegistrationResponse>>['registrationInfo'];
    try {
      const v = await verifyRegistrationResponse({
        response,
        expectedChallenge: challenge,
        expectedOrigin: this.#origins,
        expectedRPID: this.#rpId,
        requireUserPresence: true,
        requireUserVerification: true,
        supportedAlgorithmIDs: ALGORITHMS,
      });
      info = v.verified ? v.registrationInfo : undefined;
    } catch (e) {
      // The library reports every failed check by throwing; each is an expected, audited refusal.
      return denied(failedCheck(e));
    }
    if (!info) {
      return denied('signature');
    }
    const { credential } = info;
    const transports = (response.response.transports ?? credential.transports ?? []).filter((t) =>
      TRANSPORTS.has(t),
    );
    const now = clock();
    const stored = await db.transaction().execute(async (tx) => {
      // A credential id is globally unique; one already stored (for anyone) is refused, not replaced.
      const r = await tx
        .insertInto('webauthn_credentials')
        .values({
          id: credential.id,
          user_id: userId,
          practice_id: ctx.practiceId,
          public_key: Buffer.from(credential.publicKey),
          counter: String(credential.counter),
          transports,
          created_at: now,
        })
        .onConflict((oc) => oc.column('id').doNothing())
        .executeTakeFirst();
      if (Number(r.numInsertedOrUpdatedRows ?? 0n) !== 1) {
        return false;
      }
      await securityEvent(
        tx,
        ctx,
        {
          action: 'passkey-added',
          resourceType: 'user',
          resourceId: userId,
          outcome: 'success',
          detail: { passkey: passkeyHandle(credential.id), userVerified: info.userVerified },
        },
        now,
      );
      return true;
    });
    if (!stored) {
      return denied('duplicate');
    }
    return { ok: true, passkey: { id: passkeyHandle(credential.id), createdAt: now, transports } };
  }

  /** The caller's own passkeys, oldest first (handles only: the credential id stays on the server). */
  async list(ctx: AccessContext): Promise<PasskeyInfo[]> {
    const rows = await this.#credentials(ctx.actor.id);
    return rows.map((r) => ({ id: passkeyHandle(r.id), createdAt: r.created_at, transports: r.transports }));
  }

  /** Removes one of the caller's own passkeys by handle; false (audited) if it is not theirs. */
  async remove(ctx: AccessContext, session: { reauthAt: Date | null }, handle: string): Promise<boolean> {
    await this.#requireStepUp(ctx, session.reauthAt);
    const { db, clock } = this.#o;
    const match = (await this.#credentials(ctx.actor.id)).find((c) => passkeyHandle(c.id) === handle);
    const now = clock();
    return db.transaction().execute(async (tx) => {
      const r = match
        ? await tx
            .deleteFrom('webauthn_credentials')
            .where('id', '=', match.id)
            .where('user_id', '=', ctx.actor.id)
            .executeTakeFirst()
        : undefined;
      const removed = Number(r?.numDeletedRows ?? 0n) === 1;
      await securityEvent(
        tx,
        ctx,
        {
          action: 'passkey-removed',
          resourceType: 'user',
          resourceId: ctx.actor.id,
          outcome: removed ? 'success' : 'denied',
          ...(removed ? {} : { reason: 'not-found' }),
          detail: { passkey: handle },
        },
        now,
      );
      return removed;
    });
  }

  /**
   * Options for `navigator.credentials.get()` on the `mfa-pending` session: the user's passkeys as
   * `allowCredentials`. Undefined when the user has none (they use TOTP).
   */
  async authenticationOptions(
    ctx: AccessContext,
  ): Promise<PublicKeyCredentialRequestOptionsJSON | undefined> {
    const creds = await this.#credentials(ctx.actor.id);
    if (creds.length === 0) {
      return undefined;
    }
    const options = await generateAuthenticationOptions({
      rpID: this.#rpId,
      allowCredentials: creds.map((c) => ({ id: c.id, transports: c.transports })),
      timeout: PASSKEY_CEREMONY_MS,
      userVerification: 'required',
    });
    this.#pending.put('authenticate', this.#sessionOf(ctx), ctx.actor.id, options.challenge);
    return options;
  }

  /**
   * Step 2 of login with a passkey instead of a TOTP code: verifies the assertion against the
   * session's open challenge and the stored credential, advances the signature counter (a counter
   * that does not increase means a cloned authenticator or a replay, and is refused), then ends the
   * pending session and starts a full one, exactly as `Login.secondFactor` does.
   *
   * A failure is audited as `mfa-failed` (reason `passkey`, the failed check in `detail.check`). It
   * does not count toward the account lockout: the lockout defends against guessing, and a signature
   * cannot be guessed, while counting would let anyone who knows the password lock the user out with
   * garbage assertions. (Login's counter is private to it; exposing it would be the way to change this.)
   */
  async secondFactor(
    meta: RequestMeta,
    pendingToken: string,
    response: AuthenticationResponseJSON,
  ): Promise<LoginResult> {
    const { db, clock, sessions, blocks } = this.#o;
    if (await blocks.isBlocked(meta.clientAddress)) {
      return { ok: false, reason: 'blocked' };
    }
    const pending = await sessions.check(pendingToken);
    if (!pending.ok || pending.session.kind !== 'mfa-pending') {
      return { ok: false, reason: 'failed' };
    }
    const user = await db
      .selectFrom('users')
      .select(['id', 'practice_id', 'roles', 'status', 'locked_until'])
      .where('id', '=', pending.session.userId)
      .executeTakeFirstOrThrow();
    const now = clock();
    // Taken before any check so that this challenge can never be answered again, pass or fail.
    const challenge = this.#pending.take('authenticate', sessionHandle(pending.session.idHash), user.id);
    if (user.status !== 'active' || (user.locked_until && user.locked_until > now)) {
      await sessions.end(pending.session.idHash, 'login-failed');
      return { ok: false, reason: 'failed' };
    }
    const ctx = securityContext(meta, { id: user.id, role: user.roles.join(',') });
    const failed = async (check: string): Promise<LoginResult> => {
      await securityEvent(
        db,
        ctx,
        {
          action: 'mfa-failed',
          resourceType: 'user',
          resourceId: user.id,
          outcome: 'denied',
          reason: 'passkey',
          detail: { check },
        },
        now,
      );
      return { ok: false, reason: 'failed' };
    };
    if (!challenge) {
      return failed('challenge');
    }
    const cred = await db
      .selectFrom('webauthn_credentials')
      .selectAll()
      .where('id', '=', response.id)
      .where('user_id', '=', user.id)
      .executeTakeFirst();
    if (!cred) {
      return failed('credential');
    }
    let newCounter: number;
    try {
      const v = await verifyAuthenticationResponse({
        response,
        expectedChallenge: challenge,
        expectedOrigin: this.#origins,
        expectedRPID: this.#rpId,
        credential: {
          id: cred.id,
          publicKey: new Uint8Array(cred.public_key),
          counter: Number(cred.counter),
          transports: cred.transports,
        },
        requireUserVerification: true,
      });
      if (!v.verified) {
        return failed('signature');
      }
      newCounter = v.authenticationInfo.newCounter;
    } catch (e) {
      // Every failed check is thrown by the library; each is an expected, audited refusal.
      return failed(failedCheck(e));
    }
    // Compare-and-set: of two assertions verified against the same stored counter, one wins.
    const advanced = await db
      .updateTable('webauthn_credentials')
      .set({ counter: String(newCounter) })
      .where('id', '=', cred.id)
      .where('counter', '=', cred.counter)
      .executeTakeFirst();
    if (Number(advanced.numUpdatedRows) !== 1) {
      return failed('counter');
    }
    const full = await completeLogin(
      { db, sessions, clock: this.#o.clock },
      {
        ctx,
        pendingIdHash: pending.session.idHash,
        user,
        clientAddress: meta.clientAddress,
        userAgentHash: meta.userAgentHash,
        detail: { factor: 'passkey', passkey: passkeyHandle(cred.id) },
      },
    );
    if (!full) {
      return { ok: false, reason: 'failed' };
    }
    return { ok: true, token: full.token, kind: 'full', userId: user.id };
  }

  #sessionOf(ctx: AccessContext): string {
    if (!ctx.sessionId) {
      // Only session routes reach here; a context without a session is a programming error.
      throw new Error('passkey ceremonies need a session');
    }
    return ctx.sessionId;
  }

  async #requireStepUp(ctx: AccessContext, reauthAt: Date | null): Promise<void> {
    const now = this.#o.clock();
    if (reauthAt && now.getTime() - reauthAt.getTime() <= this.#o.policy.stepUpMs) {
      return;
    }
    await securityEvent(
      this.#o.db,
      ctx,
      {
        action: 'passkey-change-denied',
        resourceType: 'user',
        resourceId: ctx.actor.id,
        outcome: 'denied',
        reason: 'step-up',
      },
      now,
    );
    throw new CustosError('CUSTOS_ERR_STEP_UP', 'confirm your password and a code first (re-authenticate)');
  }

  async #credentials(userId: string) {
    return this.#o.db
      .selectFrom('webauthn_credentials')
      .select(['id', 'transports', 'created_at'])
      .where('user_id', '=', userId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
  }
}

/**
 * Names the check a library error is about, for the audit entry only (the decision is the
 * library's). Its messages echo the submitted values, so they are never stored or sent.
 */
function failedCheck(e: unknown): string {
  // Quoted parts are submitted values (an attacker could write "counter" into a challenge).
  const m = e instanceof Error ? e.message.replace(/"[^"]*"/g, '""') : '';
  const checks: [RegExp, string][] = [
    [/counter/i, 'counter'],
    [/origin/i, 'origin'],
    [/RP ?ID/i, 'rp-id'],
    [/challenge/i, 'challenge'],
    [/verification|present/i, 'user-verification'],
    [/type/i, 'type'],
  ];
  return checks.find(([re]) => re.test(m))?.[1] ?? 'malformed';
}

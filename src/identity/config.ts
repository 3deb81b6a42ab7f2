/** Session and login-defense parameters (defaults; per-practice settings come with access control). */
export interface IdentityPolicy {
  /** Automatic logoff after this much inactivity (HIPAA 164.312(a)(2)(iii)). */
  readonly idleTimeoutMs: number;
  /** A session ends this long after login, active or not. */
  readonly absoluteTimeoutMs: number;
  /** Sensitive actions need a re-authentication this recent. */
  readonly stepUpMs: number;
  /** Between password and second factor. */
  readonly mfaPendingMs: number;
  /** Consecutive failures before an account locks. */
  readonly lockoutThreshold: number;
  /** First lockout lasts this long, doubling each time, capped at `lockoutMaxMs`. */
  readonly lockoutBaseMs: number;
  readonly lockoutMaxMs: number;
  /** Login attempts per address per minute before throttling. */
  readonly loginAttemptsPerMinute: number;
  /** Distinct usernames failed from one address within the window that mark credential stuffing. */
  readonly stuffingUsernames: number;
  readonly stuffingWindowMs: number;
  /** Injection attempts from one address within the window before it is blocked. */
  readonly injectionStrikes: number;
  readonly injectionWindowMs: number;
  readonly blockMs: number;
  /** Enrollment links expire after this long. */
  readonly enrollmentMs: number;
}

const MINUTE = 60_000;

export const DEFAULT_POLICY: IdentityPolicy = Object.freeze({
  idleTimeoutMs: 15 * MINUTE,
  absoluteTimeoutMs: 12 * 60 * MINUTE,
  stepUpMs: 5 * MINUTE,
  mfaPendingMs: 5 * MINUTE,
  lockoutThreshold: 5,
  lockoutBaseMs: MINUTE,
  lockoutMaxMs: 60 * MINUTE,
  loginAttemptsPerMinute: 30,
  stuffingUsernames: 5,
  stuffingWindowMs: 10 * MINUTE,
  injectionStrikes: 3,
  injectionWindowMs: 10 * MINUTE,
  blockMs: 60 * MINUTE,
  enrollmentMs: 24 * 60 * MINUTE,
});

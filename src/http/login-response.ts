import type { FastifyReply } from 'fastify';
import { CustosError } from '../errors.ts';
import { cookieOptions, MFA_COOKIE, SESSION_COOKIE } from './cookies.ts';
import type { Services } from './services.ts';

/** The one answer for every failed login step: no hint which check failed (no enumeration). */
export const loginFailed = (): CustosError =>
  new CustosError(
    'CUSTOS_ERR_LOGIN_FAILED',
    'login failed: wrong username or password, or the account is locked',
  );

export function setCookie(reply: FastifyReply, name: string, token: string, maxAgeMs: number): void {
  reply.setCookie(name, token, { ...cookieOptions, maxAge: Math.floor(maxAgeMs / 1000) });
}

/** When a session ends by itself, for the UI's logoff warning. */
export function sessionView(
  session: { idleExpiresAt: Date; absoluteExpiresAt: Date } | undefined,
  now: Date,
) {
  if (!session) {
    return {};
  }
  return {
    idleExpiresAt: session.idleExpiresAt.toISOString(),
    absoluteExpiresAt: session.absoluteExpiresAt.toISOString(),
    remainingMs: Math.max(
      0,
      Math.min(session.idleExpiresAt.getTime(), session.absoluteExpiresAt.getTime()) - now.getTime(),
    ),
  };
}

/** After a second factor: drop the pending cookie, set the session cookie, answer with the session's times. */
export async function startSession(reply: FastifyReply, s: Services, token: string) {
  reply.clearCookie(MFA_COOKIE, cookieOptions);
  setCookie(reply, SESSION_COOKIE, token, s.policy.absoluteTimeoutMs);
  const check = await s.sessions.check(token, { touch: false });
  return sessionView(check.ok ? check.session : undefined, s.clock());
}

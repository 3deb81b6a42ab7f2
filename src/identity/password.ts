import { foldForComparison, isCommonPassword } from './password-list.ts';

export type { PasswordHasherOptions, PasswordVerification } from './password-hasher.ts';
export { PasswordHasher } from './password-hasher.ts';

/**
 * Shortest accepted password, in Unicode code points after NFKC. NIST SP 800-63B-4 3.1.1.2 asks
 * for 15 when a password is the only factor and at least 8 when it is one factor of several.
 */
export const PASSWORD_MIN_LENGTH = 12;
/** Longest accepted password, in code points (NIST SP 800-63B asks to allow at least 64). */
export const PASSWORD_MAX_LENGTH = 128;

/** Outcome of `checkNewPassword`; `problem` names the broken rule and never repeats the password. */
export type PasswordCheck = { readonly ok: true } | { readonly ok: false; readonly problem: string };

/** Context-specific words a new password must not contain (NIST SP 800-63B 5.1.1.2). */
export interface PasswordContext {
  readonly username: string;
}

/**
 * Checks a password a user chose, following NIST SP 800-63B 3.1.1.2 / 5.1.1.2 and the OWASP
 * Authentication Cheat Sheet: after NFKC normalization, 12 to 128 Unicode code points, any
 * characters (spaces and emoji included), no composition rules; rejected when it is on the
 * bundled list of common or breached passwords or contains the username, both compared
 * case-insensitively.
 *
 * Only length, context and the blocklist are checked: composition rules ("one digit, one
 * symbol") push users to predictable patterns and NIST says not to impose them.
 *
 * @example
 * checkNewPassword('correct horse battery staple', { username: 'anna' }); // { ok: true }
 * checkNewPassword('password1234', { username: 'anna' });
 * // { ok: false, problem: 'is in a list of commonly used or breached passwords' }
 */
export function checkNewPassword(password: string, context: PasswordContext): PasswordCheck {
  const normalized = password.normalize('NFKC');
  // Code points, not UTF-16 units: an emoji is one character to the user, as NIST counts it.
  const length = [...normalized].length;
  if (length < PASSWORD_MIN_LENGTH) {
    return { ok: false, problem: `must be at least ${PASSWORD_MIN_LENGTH} characters` };
  }
  if (length > PASSWORD_MAX_LENGTH) {
    return { ok: false, problem: `must be at most ${PASSWORD_MAX_LENGTH} characters` };
  }
  const folded = foldForComparison(normalized);
  // An empty username would be contained in every password, so it imposes nothing.
  const username = foldForComparison(context.username).trim();
  if (username.length > 0 && folded.includes(username)) {
    return { ok: false, problem: 'must not contain the username' };
  }
  if (isCommonPassword(folded)) {
    return { ok: false, problem: 'is in a list of commonly used or breached passwords' };
  }
  return { ok: true };
}

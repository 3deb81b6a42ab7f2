/** `__Host-` cookies: Secure, Path=/, no Domain, so no other host or path can set or read them. */
export const SESSION_COOKIE = '__Host-custos-session';
export const MFA_COOKIE = '__Host-custos-mfa';
export const cookieOptions = { httpOnly: true, secure: true, sameSite: 'strict' as const, path: '/' };

import { BreakGlassReviews } from '../access/break-glass.ts';
import { AccessReviews } from '../access/reviews.ts';
import type { Custos } from '../app/custos.ts';
import { Blocks } from '../guard/blocks.ts';
import { Accounts } from '../identity/accounts.ts';
import { DEFAULT_POLICY, type IdentityPolicy } from '../identity/config.ts';
import { Login } from '../identity/login.ts';
import { Passkeys } from '../identity/passkeys.ts';
import { PasswordHasher } from '../identity/password.ts';
import { PracticeSettings } from '../identity/practice-settings.ts';
import { Sessions } from '../identity/sessions.ts';

/** Everything the HTTP layer calls, built once per server. */
export interface Services {
  readonly custos: Custos;
  readonly clock: () => Date;
  readonly policy: IdentityPolicy;
  readonly hasher: PasswordHasher;
  readonly sessions: Sessions;
  readonly settings: PracticeSettings;
  readonly blocks: Blocks;
  readonly accounts: Accounts;
  readonly login: Login;
  readonly passkeys: Passkeys;
  readonly reviews: AccessReviews;
  readonly breakGlass: BreakGlassReviews;
}

export function buildServices(
  custos: Custos,
  options: {
    clock?: () => Date;
    policy?: Partial<IdentityPolicy>;
    hasher?: PasswordHasher;
    /** WebAuthn relying party: id (default `localhost`) and the page origins (default `https://localhost:8443`). */
    passkeys?: { rpId?: string; origins?: readonly string[] };
  } = {},
): Services {
  const clock = options.clock ?? (() => new Date());
  const policy: IdentityPolicy = { ...DEFAULT_POLICY, ...options.policy };
  const db = custos.database.db;
  const hasher = options.hasher ?? new PasswordHasher();
  const settings = new PracticeSettings({ db, defaults: policy });
  const sessions = new Sessions({
    db,
    clock,
    policy,
    limits: (practiceId) => settings.sessionLimits(practiceId),
  });
  const blocks = new Blocks({ db, clock });
  const accounts = new Accounts({ db, keyring: custos.keyring, hasher, sessions, policy, clock });
  const login = new Login({ db, keyring: custos.keyring, hasher, sessions, blocks, policy, clock });
  const passkeys = new Passkeys({ db, clock, sessions, blocks, policy, ...options.passkeys });
  const reviews = new AccessReviews({ db, accounts, settings, clock });
  const breakGlass = new BreakGlassReviews({ db, keyring: custos.keyring, settings, clock });
  return {
    custos,
    clock,
    policy,
    hasher,
    sessions,
    settings,
    blocks,
    accounts,
    login,
    passkeys,
    reviews,
    breakGlass,
  };
}

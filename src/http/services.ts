import type { Custos } from '../app/custos.ts';
import { Blocks } from '../guard/blocks.ts';
import { Accounts } from '../identity/accounts.ts';
import { DEFAULT_POLICY, type IdentityPolicy } from '../identity/config.ts';
import { Login } from '../identity/login.ts';
import { PasswordHasher } from '../identity/password.ts';
import { Sessions } from '../identity/sessions.ts';

/** Everything the HTTP layer calls, built once per server. */
export interface Services {
  readonly custos: Custos;
  readonly clock: () => Date;
  readonly policy: IdentityPolicy;
  readonly hasher: PasswordHasher;
  readonly sessions: Sessions;
  readonly blocks: Blocks;
  readonly accounts: Accounts;
  readonly login: Login;
}

export function buildServices(
  custos: Custos,
  options: { clock?: () => Date; policy?: Partial<IdentityPolicy>; hasher?: PasswordHasher } = {},
): Services {
  const clock = options.clock ?? (() => new Date());
  const policy: IdentityPolicy = { ...DEFAULT_POLICY, ...options.policy };
  const db = custos.database.db;
  const hasher = options.hasher ?? new PasswordHasher();
  const sessions = new Sessions({ db, clock, policy });
  const blocks = new Blocks({ db, clock });
  const accounts = new Accounts({ db, keyring: custos.keyring, hasher, sessions, policy, clock });
  const login = new Login({ db, keyring: custos.keyring, hasher, sessions, blocks, policy, clock });
  return { custos, clock, policy, hasher, sessions, blocks, accounts, login };
}

import type { Identifier, PatientIdentity } from './model.ts';

/**
 * What the identity store indexes for search, and how values are normalized before they are
 * hashed into blind indexes. Exact match on family name + birth date, identifiers, phone and
 * e-mail; prefix match on the family name through a bounded set of prefix lengths.
 */
export const PREFIX_MIN = 3;
export const PREFIX_MAX = 8;

/** Lowercase, no diacritics, letters and digits only: "O'Brien" and "obrien" match; "Müller" and "Muller" match. */
export function normalizeName(name: string): string {
  return name
    .normalize('NFKD')
    .replace(/\p{M}/gu, '')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]/gu, '');
}

export const normalizePhone = (phone: string): string => phone.replace(/\D/g, '').replace(/^00/, '');
export const normalizeEmail = (email: string): string => email.normalize('NFKC').trim().toLowerCase();
export const normalizeIdentifier = (value: string): string =>
  value
    .normalize('NFKC')
    .toUpperCase()
    .replace(/[\s\-./]/g, '');

export interface IndexTerm {
  readonly kind: string;
  readonly value: string;
}

const identifierTerm = (id: Pick<Identifier, 'type' | 'value'>): IndexTerm => ({
  kind: `id:${id.type}`,
  value: normalizeIdentifier(id.value),
});

/** Every index term for one identity (what gets a blind-index row). */
export function indexTerms(identity: PatientIdentity): IndexTerm[] {
  const family = normalizeName(identity.name.family);
  const terms: IndexTerm[] = [
    { kind: 'family-birth', value: `${family}|${identity.birthDate}` },
    // The whole family name: compared with staff members' own (namesake check), never searched.
    { kind: 'family', value: family },
  ];
  for (let n = PREFIX_MIN; n <= Math.min(PREFIX_MAX, family.length); n++) {
    terms.push({ kind: `family-prefix-${n}`, value: family.slice(0, n) });
  }
  for (const id of identity.identifiers) {
    terms.push(identifierTerm(id));
  }
  if (identity.phone) {
    terms.push({ kind: 'phone', value: normalizePhone(identity.phone) });
  }
  if (identity.email) {
    terms.push({ kind: 'email', value: normalizeEmail(identity.email) });
  }
  return terms;
}

/** A patient search. Terms travel in request bodies, never in URLs (DESIGN.md invariant 5). */
export interface PatientQuery {
  readonly familyPrefix?: string;
  readonly family?: string;
  readonly birthDate?: string;
  readonly identifier?: { readonly type: Identifier['type']; readonly value: string };
  readonly phone?: string;
  readonly email?: string;
  readonly limit?: number;
}

/**
 * The index terms a query must all match, plus a check on the decrypted identity for what the
 * bounded prefix index cannot decide (prefixes longer than PREFIX_MAX).
 */
export function queryTerms(q: PatientQuery): {
  terms: IndexTerm[];
  recheck: (identity: PatientIdentity) => boolean;
} {
  const terms: IndexTerm[] = [];
  let recheck: (identity: PatientIdentity) => boolean = () => true;
  if (q.family !== undefined && q.birthDate !== undefined) {
    terms.push({ kind: 'family-birth', value: `${normalizeName(q.family)}|${q.birthDate}` });
  } else if (q.family !== undefined) {
    const f = normalizeName(q.family);
    if (f.length >= PREFIX_MIN) {
      terms.push({ kind: `family-prefix-${Math.min(f.length, PREFIX_MAX)}`, value: f.slice(0, PREFIX_MAX) });
    }
    recheck = (id) => normalizeName(id.name.family) === f;
  }
  if (q.familyPrefix !== undefined) {
    const p = normalizeName(q.familyPrefix);
    const n = Math.min(p.length, PREFIX_MAX);
    terms.push({ kind: `family-prefix-${n}`, value: p.slice(0, n) });
    if (p.length > PREFIX_MAX) {
      const prev = recheck;
      recheck = (id) => prev(id) && normalizeName(id.name.family).startsWith(p);
    }
  }
  if (q.identifier) {
    terms.push(identifierTerm(q.identifier));
  }
  if (q.phone !== undefined) {
    terms.push({ kind: 'phone', value: normalizePhone(q.phone) });
  }
  if (q.email !== undefined) {
    terms.push({ kind: 'email', value: normalizeEmail(q.email) });
  }
  return { terms, recheck };
}

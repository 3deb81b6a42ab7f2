import type { Identifier, PatientIdentity } from '../chart/model.ts';
import { isoDate } from './context.ts';
import type { Random } from './random.ts';
import {
  EMAIL_DOMAINS,
  GENDER_IDENTITIES,
  NAME_GROUPS,
  NL_CITIES,
  NL_POSTCODE_LETTERS,
  NL_STREETS,
  PAYERS,
  PREFERRED_NAMES,
  US_CITIES,
  US_STREETS,
  US_UNITS,
} from './vocabulary.ts';

/**
 * Synthetic patient identities. Contact details use reserved or fictional ranges: e-mail under
 * example.org/.com/.net, US phone numbers in 555-0100..0199, US SSNs in the never-issued 9xx area,
 * and Dutch BSNs that pass the 11-test but are randomly made up.
 */

export type Locale = 'US' | 'NL';

const SEXES = [
  ['female', 51],
  ['male', 47],
  ['other', 1],
  ['unknown', 1],
] as const;

const DAY_MS = 86_400_000;
const BIRTH_FIRST = Date.UTC(1930, 0, 1);
const BIRTH_LAST = Date.UTC(2020, 11, 31);
const CHILD_FIRST = Date.UTC(2006, 0, 1);

export const SSN_SYSTEM = 'http://hl7.org/fhir/sid/us-ssn';
export const BSN_SYSTEM = 'http://fhir.nl/fhir/NamingSystem/bsn';
export const MRN_SYSTEM = 'urn:custos:demo:mrn';

/** The MRN for a run index: an affine permutation of 0..10^8-1, so unique for index < 10^8. */
export function demoMrn(index: number): string {
  const n = (index * 48_271 + 10_000_019) % 100_000_000;
  return `MRN-${String(n).padStart(8, '0')}`;
}

/** True when a 9-digit string passes the Dutch BSN 11-test. */
export function isValidBsn(value: string): boolean {
  if (!/^\d{9}$/.test(value)) {
    return false;
  }
  let sum = 0;
  for (let i = 0; i < 8; i++) {
    sum += Number(value[i]) * (9 - i);
  }
  sum -= Number(value[8]);
  return sum % 11 === 0;
}

function bsn(rng: Random): string {
  for (;;) {
    let digits = String(rng.int(1, 9));
    let sum = Number(digits) * 9;
    for (let i = 1; i < 8; i++) {
      const d = rng.int(0, 9);
      digits += d;
      sum += d * (9 - i);
    }
    const check = sum % 11;
    if (check < 10) {
      return digits + check;
    }
  }
}

function digits(rng: Random, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) {
    s += rng.int(0, 9);
  }
  return s;
}

const pad2 = (n: number): string => (n < 10 ? `0${n}` : String(n));

const ASCII_FOLD: Readonly<Record<string, string>> = { ø: 'o', æ: 'ae', ß: 'ss', ł: 'l', đ: 'd', ı: 'i' };
const asciiCache = new Map<string, string>();

/** A name folded to lower-case ASCII letters, digits and hyphens, for e-mail local parts. */
export function asciiFold(name: string): string {
  let out = asciiCache.get(name);
  if (out === undefined) {
    out = name
      .toLowerCase()
      .replace(/[øæßłđı]/g, (ch) => ASCII_FOLD[ch] ?? '')
      .normalize('NFD')
      .replace(/[^a-z0-9-]/g, '');
    asciiCache.set(name, out);
  }
  return out;
}

export function demoIdentity(rng: Random, index: number, locale: Locale): PatientIdentity {
  const sex = rng.weighted(SEXES);
  const group =
    locale === 'NL' && rng.chance(0.4) ? (NAME_GROUPS[5] ?? rng.pick(NAME_GROUPS)) : rng.pick(NAME_GROUPS);
  const givenPool =
    sex === 'female'
      ? group.female
      : sex === 'male'
        ? group.male
        : rng.chance(0.5)
          ? group.female
          : group.male;
  const given = [rng.pick(givenPool)];
  if (rng.chance(0.25)) {
    const second = rng.pick(givenPool);
    if (second !== given[0]) {
      given.push(second);
    }
  }
  // One family name in eight comes from another tradition, as in any mixed population.
  const family = rng.pick(rng.chance(0.125) ? rng.pick(NAME_GROUPS).family : group.family);
  const first = given[0] as string;
  const nicknames = PREFERRED_NAMES[first];
  const preferred = nicknames && rng.chance(0.5) ? rng.pick(nicknames) : undefined;

  const birthMs = rng.chance(0.15)
    ? CHILD_FIRST + rng.int(0, (BIRTH_LAST - CHILD_FIRST) / DAY_MS) * DAY_MS
    : BIRTH_FIRST + rng.int(0, (CHILD_FIRST - BIRTH_FIRST) / DAY_MS - 1) * DAY_MS;

  const identity: PatientIdentity = {
    name: preferred ? { given, family, preferred } : { given, family },
    birthDate: isoDate(birthMs),
    sex,
    identifiers: identifiers(rng, index, locale),
  };
  if (rng.chance(0.03)) {
    identity.gender = rng.pick(GENDER_IDENTITIES);
  }
  if (rng.chance(0.95)) {
    identity.address = locale === 'US' ? usAddress(rng) : nlAddress(rng);
  }
  if (rng.chance(0.9)) {
    const area = rng.pick(locale === 'US' ? US_CITIES : NL_CITIES).area;
    identity.phone =
      locale === 'US' ? `+1 ${area}-555-01${digits(rng, 2)}` : `+31 ${area} 555 01${digits(rng, 2)}`;
  }
  if (rng.chance(0.75)) {
    const suffix = rng.chance(0.5) ? String(rng.int(1, 99)) : '';
    const local = `${asciiFold(preferred ?? first)}.${asciiFold(family)}${suffix}`;
    identity.email = `${local}@${rng.pick(EMAIL_DOMAINS)}`;
  }
  return identity;
}

function identifiers(rng: Random, index: number, locale: Locale): Identifier[] {
  const ids: Identifier[] = [{ type: 'mrn', system: MRN_SYSTEM, value: demoMrn(index) }];
  if (rng.chance(0.85)) {
    ids.push(
      locale === 'US'
        ? {
            type: 'national',
            system: SSN_SYSTEM,
            value: `9${digits(rng, 2)}-${pad2(rng.int(1, 99))}-${String(rng.int(1, 9999)).padStart(4, '0')}`,
          }
        : { type: 'national', system: BSN_SYSTEM, value: bsn(rng) },
    );
  }
  if (rng.chance(0.8)) {
    const payer = rng.pick(PAYERS);
    ids.push({ type: 'insurance', system: payer.system, value: `${payer.prefix}${digits(rng, 9)}` });
  }
  return ids;
}

function usAddress(rng: Random): NonNullable<PatientIdentity['address']> {
  const city = rng.pick(US_CITIES);
  const lines = [`${rng.int(1, 9999)} ${rng.pick(US_STREETS)}`];
  if (rng.chance(0.25)) {
    lines.push(rng.pick(US_UNITS));
  }
  return {
    lines,
    city: city.city,
    postalCode: `${city.postal}${digits(rng, 2)}`,
    ...(city.state ? { state: city.state } : {}),
    country: 'US',
  };
}

function nlAddress(rng: Random): NonNullable<PatientIdentity['address']> {
  const city = rng.pick(NL_CITIES);
  const letters = NL_POSTCODE_LETTERS;
  const letter = (): string => letters[rng.int(0, letters.length - 1)] ?? 'A';
  return {
    lines: [`${rng.pick(NL_STREETS)} ${rng.int(1, 250)}${rng.chance(0.1) ? 'A' : ''}`],
    city: city.city,
    postalCode: `${city.postal}${digits(rng, 2)} ${letter()}${letter()}`,
    country: 'NL',
  };
}
